package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// Named contexts: a config file holds servers by name, each a URL and optionally a token, and
// which one is current, as kubectl's and docker's contexts do. The file is JSON:
//
//	{"current_context": "prod", "contexts": {"prod": {"url": "https://pb.example.com", "token": "pbk_..."}}}
//
// It is written with mode 0600 in a directory made with mode 0700. A token is read from it only
// while nobody but its owner can read it (ssh refuses a private key the same way).

// config is the CLI's config file.
type config struct {
	// Current names the context commands use when neither --context nor PLUGBOARD_CONTEXT names one.
	Current string `json:"current_context,omitempty"`
	// Contexts are the servers by name.
	Contexts map[string]*contextEntry `json:"contexts"`
}

// contextEntry is one named server.
type contextEntry struct {
	URL string `json:"url"`
	// Token is the bearer token sent to URL; empty means none is stored.
	Token string `json:"token,omitempty"`
}

// loadedConfig is the config file as read, with where it is and how open its mode is.
type loadedConfig struct {
	config
	path string
	// mode is the file's permission bits; 0 when the file does not exist yet.
	mode fs.FileMode
}

// tooOpen reports whether anyone but the owner may read or write the file.
func (l *loadedConfig) tooOpen() bool { return l.mode&0o077 != 0 }

// configPath is $PLUGBOARD_CONFIG, else $XDG_CONFIG_HOME/plugboard/config.json, else
// $HOME/.config/plugboard/config.json; "" when none of the three is set.
func (c *cli) configPath() string {
	if p := c.getenv("PLUGBOARD_CONFIG"); p != "" {
		return p
	}
	if d := c.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "plugboard", "config.json")
	}
	if h := c.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "plugboard", "config.json")
	}
	return ""
}

// errNoConfigPath says why there is no config file at all.
var errNoConfigPath = errors.New("no config file: set PLUGBOARD_CONFIG (or HOME) to the file that should hold the contexts")

// loadConfig reads the config file; a file that does not exist yet reads as no contexts.
func (c *cli) loadConfig() (*loadedConfig, error) {
	path := c.configPath()
	if path == "" {
		return nil, errNoConfigPath
	}
	l := &loadedConfig{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		l.Contexts = map[string]*contextEntry{}
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the config file: %w", err)
	}
	if fi, err := os.Stat(path); err == nil {
		l.mode = fi.Mode().Perm()
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l.config); err != nil {
		return nil, fmt.Errorf("the config file %s does not decode: %v (fix it by hand, or move it away and add the contexts again with `plugboard context add`)", path, err)
	}
	if l.Contexts == nil {
		l.Contexts = map[string]*contextEntry{}
	}
	for name, e := range l.Contexts {
		if e == nil {
			return nil, fmt.Errorf("the config file %s: context %q is null (give it a url, or remove it)", path, name)
		}
	}
	return l, nil
}

// save writes the config file atomically with mode 0600, making its directory with mode 0700
// when it does not exist.
func (l *loadedConfig) save() error {
	dir := filepath.Dir(l.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making the config directory: %w", err)
	}
	b, err := json.MarshalIndent(l.config, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".plugboard-config-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("writing the config file: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing the config file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), l.path); err != nil {
		return fmt.Errorf("writing the config file: %w", err)
	}
	l.mode = 0o600
	return nil
}

// names returns the contexts' names, sorted.
func (l *loadedConfig) names() []string { return slices.Sorted(maps.Keys(l.Contexts)) }

// unknownContext is the error for a context name the file does not hold.
func (l *loadedConfig) unknownContext(name string) error {
	msg := fmt.Sprintf("no context named %q in %s", name, l.path)
	if len(l.Contexts) == 0 {
		return errors.New(msg + ": add one with `plugboard context add NAME --url URL --token-stdin`")
	}
	return errors.New(msg + ": `plugboard context list` shows them (" + strings.Join(l.names(), ", ") + ")")
}

// endpoint is where the client commands send their requests, with which token, and where
// each setting came from (for hints).
type endpoint struct {
	url, urlFrom     string // urlFrom: "--url", "PLUGBOARD_URL", "context NAME" or "the default"
	token, tokenFrom string // tokenFrom: "--token", "PLUGBOARD_TOKEN", "context NAME" or ""
	// context is the context in use, "" for none.
	context string
	// withheld is set when the context holds a token that was not sent because the URL came
	// from elsewhere: a context's token goes only to its own URL.
	withheld string
	// err makes every call fail: an unreadable config file, an unknown context, a token in a
	// file others can read.
	err error
}

// endpoint resolves the server URL and the token. Precedence, for each: the flag (--url,
// --token), then the variable (PLUGBOARD_URL, PLUGBOARD_TOKEN), then the context (--context,
// else PLUGBOARD_CONTEXT, else the config file's current one), then the default URL and no
// token. A context's token is sent only to that context's URL. The config file is read only
// when a setting is left to the context.
func (c *cli) endpoint() *endpoint {
	if c.ep != nil {
		return c.ep
	}
	ep := &endpoint{}
	c.ep = ep
	switch {
	case c.url != "":
		ep.url, ep.urlFrom = c.url, "--url"
	case c.getenv("PLUGBOARD_URL") != "":
		ep.url, ep.urlFrom = c.getenv("PLUGBOARD_URL"), "PLUGBOARD_URL"
	}
	switch {
	case c.token != "":
		ep.token, ep.tokenFrom = c.token, "--token"
	case c.getenv("PLUGBOARD_TOKEN") != "":
		ep.token, ep.tokenFrom = c.getenv("PLUGBOARD_TOKEN"), "PLUGBOARD_TOKEN"
	}
	name, named := c.contextName, "--context"
	if name == "" {
		name, named = c.getenv("PLUGBOARD_CONTEXT"), "PLUGBOARD_CONTEXT"
	}
	if ep.url == "" || ep.token == "" || name != "" {
		ep.err = c.applyContext(ep, name, named)
	}
	if ep.url == "" {
		ep.url, ep.urlFrom = defaultURL, "the default"
	}
	return ep
}

// applyContext fills what ep lacks from the context name (named by the flag or variable
// named), else from the config file's current context.
func (c *cli) applyContext(ep *endpoint, name, named string) error {
	cfg, err := c.loadConfig()
	if errors.Is(err, errNoConfigPath) && name == "" {
		return nil // no config file and none asked for: the defaults
	}
	if err != nil {
		return err
	}
	if name == "" {
		if name = cfg.Current; name == "" {
			return nil
		}
		named = "the current context of " + cfg.path
	}
	e := cfg.Contexts[name]
	if e == nil {
		err := cfg.unknownContext(name)
		if named != "--context" && named != "PLUGBOARD_CONTEXT" {
			err = fmt.Errorf("%w; the current context names it: pick another with `plugboard context use NAME`", err)
		}
		return err
	}
	ep.context = name
	if ep.url == "" {
		ep.url, ep.urlFrom = e.URL, "context "+name
	}
	if ep.token != "" || e.Token == "" {
		return nil
	}
	if strings.TrimSuffix(ep.url, "/") != strings.TrimSuffix(e.URL, "/") {
		ep.withheld = fmt.Sprintf("context %s holds a token for %s, not sent to %s (from %s)", name, e.URL, ep.url, ep.urlFrom)
		return nil
	}
	if cfg.tooOpen() {
		return fmt.Errorf("%s holds tokens and others may read it (mode %04o), so its token is not used: run `chmod 600 %s`",
			cfg.path, cfg.mode, cfg.path)
	}
	ep.token, ep.tokenFrom = e.Token, "context "+name
	return nil
}

// contextNameRE is what a context may be called: it is typed on command lines and completed.
var contextNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// contextDoc is the JSON shape of a context in the output of the context commands. It never
// holds the token, only whether one is stored.
type contextDoc struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	HasToken bool   `json:"has_token"`
	Current  bool   `json:"current"`
}

func (c *cli) printContextJSON(d contextDoc) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return printJSON(c.stdout, b)
}

func (c *cli) contextCommand() *command {
	return &command{
		name:  "context",
		short: "Name servers and switch between them",
		long: "A context is a named server: its URL and, optionally, a token. The client commands use the\n" +
			"current context (or the one --context or PLUGBOARD_CONTEXT names) for what the flags and\n" +
			"variables leave unset: --url and PLUGBOARD_URL win over the context's URL, --token and\n" +
			"PLUGBOARD_TOKEN over its token. A context's token is sent only to its own URL.\n\n" +
			"The contexts are kept in $PLUGBOARD_CONFIG, else $XDG_CONFIG_HOME/plugboard/config.json,\n" +
			"else ~/.config/plugboard/config.json, written with mode 0600 (its directory 0700). A token\n" +
			"is not read from a config file that others may read: chmod 600 it. No command prints a\n" +
			"stored token.",
		example: "# Store a server and its token (read from standard input), and make it current\n" +
			"plugboard context add local --url http://127.0.0.1:8080 --token-stdin < ./var/admin.token\n" +
			"printf %s \"$PROD_TOKEN\" | plugboard context add prod --url https://plugboard.example.com --token-stdin\n" +
			"plugboard context use prod\n" +
			"plugboard context list\n" +
			"# One command against another context\n" +
			"plugboard connector list --context local",
		sub: []*command{c.contextAdd(), c.contextUse(), c.contextList(), c.contextCurrent(), c.contextRemove()},
	}
}

func (c *cli) contextAdd() *command {
	var tokenStdin, force, use bool
	var output outputFormat
	return &command{
		name:  "add",
		args:  "NAME",
		short: "Add a context: a server URL and, optionally, its token",
		long: "Add the context NAME with the server's URL (--url, required: http://, https:// or\n" +
			"unix:/path/to.sock) and, with --token-stdin, a token read from standard input. The first\n" +
			"context becomes the current one; --use makes this one current. An existing NAME is\n" +
			"replaced only with --force.",
		example: "plugboard context add local --url http://127.0.0.1:8080 --token-stdin < ./var/admin.token\n" +
			"printf %s \"$PROD_TOKEN\" | plugboard context add prod --url https://plugboard.example.com --token-stdin --use\n" +
			"# A management API on a unix socket (serve --admin-listen unix:...)\n" +
			"plugboard context add admin --url unix:/run/plugboard/admin.sock --token-stdin < ./var/admin.token",
		nargs: exactArgs("NAME"),
		flags: func(fs *flagSet) {
			fs.BoolVar(&tokenStdin, "token-stdin", false, "read the context's token from standard input")
			fs.BoolVar(&force, "force", false, "replace a context of the same name")
			fs.BoolVar(&use, "use", false, "make it the current context")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			name := args[0]
			if !contextNameRE.MatchString(name) {
				return usagef("context name %q: use letters, digits, '.', '_', '@' and '-', starting with a letter or digit", name)
			}
			// The global --url and --token are the context's here: this command calls no server.
			url := c.url
			if url == "" {
				return usagef("--url is required: the server's URL, e.g. --url http://127.0.0.1:8080")
			}
			if err := client.CheckBaseURL(url); err != nil {
				return usagef("--url: %v", err)
			}
			token := ""
			switch {
			case tokenStdin && c.token != "":
				return usagef("use --token-stdin or --token, not both")
			case tokenStdin:
				t, err := c.readSecret("token")
				if err != nil {
					return err
				}
				token = t
			case c.token != "":
				c.warnVisible("--token", "--token-stdin")
				token = c.token
			}
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			if old := cfg.Contexts[name]; old != nil && !force {
				return fmt.Errorf("context %s already exists (url %s): pass --force to replace it, or `plugboard context remove %s` first", name, old.URL, name)
			}
			cfg.Contexts[name] = &contextEntry{URL: url, Token: token}
			if use || cfg.Current == "" || cfg.Contexts[cfg.Current] == nil {
				cfg.Current = name
			}
			if err := cfg.save(); err != nil {
				return err
			}
			if output == outputJSON {
				return c.printContextJSON(contextDoc{Name: name, URL: url, HasToken: token != "", Current: cfg.Current == name})
			}
			what := "no token"
			if token != "" {
				what = "token stored"
			}
			fmt.Fprintf(c.stdout, "Added context %s (%s, %s) to %s.\n", name, url, what, cfg.path)
			if cfg.Current == name {
				fmt.Fprintf(c.stdout, "It is the current context.\n")
			} else {
				fmt.Fprintf(c.stdout, "Use it with `plugboard context use %s` or --context %s.\n", name, name)
			}
			return nil
		},
	}
}

// selectedContext is the context the commands use now (--context, PLUGBOARD_CONTEXT, else the
// file's current one) and what chose it; "" when none.
func (c *cli) selectedContext(cfg *loadedConfig) (name, from string) {
	switch {
	case c.contextName != "":
		return c.contextName, "--context"
	case c.getenv("PLUGBOARD_CONTEXT") != "":
		return c.getenv("PLUGBOARD_CONTEXT"), "PLUGBOARD_CONTEXT"
	}
	return cfg.Current, "the config file"
}

func (c *cli) contextUse() *command {
	var output outputFormat
	return &command{
		name:    "use",
		args:    "NAME",
		short:   "Make a context the current one",
		long:    "Make NAME the current context: the client commands use its URL and token from now on.",
		example: "plugboard context use prod",
		nargs:   exactArgs("NAME"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			e := cfg.Contexts[args[0]]
			if e == nil {
				return cfg.unknownContext(args[0])
			}
			cfg.Current = args[0]
			if err := cfg.save(); err != nil {
				return err
			}
			if output == outputJSON {
				return c.printContextJSON(contextDoc{Name: args[0], URL: e.URL, HasToken: e.Token != "", Current: true})
			}
			fmt.Fprintf(c.stdout, "Switched to context %s (%s).\n", args[0], e.URL)
			c.noteOverrides(e)
			return nil
		},
	}
}

// noteOverrides warns on stderr when a flag or variable wins over the context e.
func (c *cli) noteOverrides(e *contextEntry) {
	switch {
	case c.url != "":
	case c.getenv("PLUGBOARD_URL") != "":
		if e.URL != c.getenv("PLUGBOARD_URL") {
			fmt.Fprintf(c.stderr, "note: PLUGBOARD_URL is set (%s): it wins over the context's URL, and the context's token is not sent to it; unset it to use the context\n",
				c.getenv("PLUGBOARD_URL"))
		}
	}
	if c.getenv("PLUGBOARD_TOKEN") != "" && e.Token != "" {
		fmt.Fprintln(c.stderr, "note: PLUGBOARD_TOKEN is set: it wins over the context's token; unset it to use the context's")
	}
}

func (c *cli) contextList() *command {
	var output outputFormat
	return &command{
		name:  "list",
		short: "List the contexts, marking the current one",
		long: "List the contexts: the current one marked *, name, URL and whether a token is stored (the\n" +
			"token itself is never shown).",
		example: "plugboard context list\nplugboard context list -o json | jq -r '.contexts[] | select(.current) | .url'",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			current, _ := c.selectedContext(cfg)
			if cfg.tooOpen() {
				fmt.Fprintf(c.stderr, "warning: others may read %s (mode %04o): its tokens are not used until you run `chmod 600 %s`\n", cfg.path, cfg.mode, cfg.path)
			}
			if output == outputJSON {
				docs := []contextDoc{}
				for _, n := range cfg.names() {
					e := cfg.Contexts[n]
					docs = append(docs, contextDoc{Name: n, URL: e.URL, HasToken: e.Token != "", Current: n == current})
				}
				b, err := json.Marshal(map[string]any{"contexts": docs})
				if err != nil {
					return err
				}
				return printJSON(c.stdout, b)
			}
			if len(cfg.Contexts) == 0 {
				fmt.Fprintln(c.stderr, "No contexts. Add one with `plugboard context add NAME --url URL --token-stdin`.")
				return nil
			}
			t := newTable(c.stdout, "CURRENT", "NAME", "URL", "TOKEN")
			for _, n := range cfg.names() {
				e := cfg.Contexts[n]
				mark := " "
				if n == current {
					mark = "*"
				}
				token := "none"
				if e.Token != "" {
					token = "stored"
				}
				// Written past row, which would show the blank mark as <none>.
				fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\n", mark, cleanCell(n), cleanCell(e.URL), token)
			}
			return t.flush()
		},
	}
}

func (c *cli) contextCurrent() *command {
	var output outputFormat
	return &command{
		name:  "current",
		short: "Print the name of the context in use",
		long: "Print the name of the context the client commands use: --context, else PLUGBOARD_CONTEXT,\n" +
			"else the config file's current one. A note on standard error says when PLUGBOARD_URL or\n" +
			"PLUGBOARD_TOKEN wins over it.",
		example: "plugboard context current\nplugboard context current -o json | jq -r .url",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			name, _ := c.selectedContext(cfg)
			if name == "" {
				return fmt.Errorf("no current context: choose one with `plugboard context use NAME` (`plugboard context list` shows them)")
			}
			e := cfg.Contexts[name]
			if e == nil {
				return cfg.unknownContext(name)
			}
			if output == outputJSON {
				return c.printContextJSON(contextDoc{Name: name, URL: e.URL, HasToken: e.Token != "", Current: true})
			}
			fmt.Fprintln(c.stdout, name)
			c.noteOverrides(e)
			return nil
		},
	}
}

func (c *cli) contextRemove() *command {
	var output outputFormat
	return &command{
		name:    "remove",
		args:    "NAME",
		short:   "Remove a context and its token",
		long:    "Remove the context NAME and the token stored with it. Removing the current context leaves none current.",
		example: "plugboard context remove prod",
		nargs:   exactArgs("NAME"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			name := args[0]
			if cfg.Contexts[name] == nil {
				return cfg.unknownContext(name)
			}
			delete(cfg.Contexts, name)
			wasCurrent := cfg.Current == name
			if wasCurrent {
				cfg.Current = ""
			}
			if err := cfg.save(); err != nil {
				return err
			}
			if output == outputJSON {
				b, _ := json.Marshal(map[string]any{"name": name, "deleted": true})
				return printJSON(c.stdout, b)
			}
			fmt.Fprintf(c.stdout, "Removed context %s.\n", name)
			if wasCurrent {
				fmt.Fprintln(c.stderr, "It was the current context: none is current now; choose one with `plugboard context use NAME`.")
			}
			return nil
		},
	}
}
