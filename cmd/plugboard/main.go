// Command plugboard is the Plugboard binary: `plugboard serve` runs the server, and the other
// commands are its HTTP API client for operators: upload connector plugins and switch their
// versions, manage connections, and invoke actions.
//
// The client commands follow the habits of gh and kubectl: `plugboard <group> <verb> ARGS
// [flags]`, flags anywhere after the command, `-o json` for scripts, `help` and `-h` everywhere,
// secrets read from stdin, named contexts for servers (`plugboard context`), shell completion
// (`plugboard completion bash|zsh|fish`). See README.md in this directory for every command.
//
// Exit codes: 0 success, 1 error, 2 usage error, 3 the store is damaged (serve refused to start,
// or store check found problems).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitStore: the data directory's store is damaged or unreadable (truncated, failed its
	// consistency check); `plugboard serve` did not start. Restore a backup or move the file away.
	exitStore = 3
)

// defaultURL is the server URL when neither --url nor PLUGBOARD_URL says otherwise; it matches
// the default of `plugboard serve --listen`.
const defaultURL = "http://127.0.0.1:8080"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one plugboard command line (without the program name) and returns the exit
// code. Everything it touches comes in as arguments, so tests run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr, serve: runServe, now: time.Now}
	return c.main(ctx, args)
}

// cli is one run of the command: its streams, its environment and the global flags.
type cli struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	serve          func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	now            func() time.Time
	httpClient     *http.Client // nil: the client package's default

	// Global flags; empty means "from the environment".
	url, token, correlationID string

	// named holds the running command's positional arguments by the names of its usage line
	// ("NAME" -> "github"), so error hints show the real values.
	named map[string]string
	// contextName is --context; empty means PLUGBOARD_CONTEXT, else the config file's current one.
	contextName string
	// ep caches endpoint(); setting a global flag clears it.
	ep *endpoint
}

// command is one node of the command tree: a group with subcommands, or a leaf that runs.
type command struct {
	name    string
	args    string // the positional arguments in the usage line, e.g. "NAME VERSION"
	short   string // one line for command lists
	long    string // the help text's first paragraph; short when empty
	example string // lines of "# comment" and "plugboard ..." commands
	sub     []*command
	parent  *command
	// nargs checks the positional arguments; nil means none are allowed.
	nargs func(args []string) error
	// flags registers the command's own flags.
	flags func(fs *flagSet)
	run   func(ctx context.Context, args []string) error
	// ownFlags hands the arguments to run unparsed (serve parses its own).
	ownFlags bool
	// hidden leaves the command out of command lists (old names kept working).
	hidden bool
}

func (cmd *command) fullName() string {
	if cmd.parent == nil {
		return cmd.name
	}
	return cmd.parent.fullName() + " " + cmd.name
}

func (cmd *command) lookup(name string) *command {
	for _, s := range cmd.sub {
		if s.name == name {
			return s
		}
	}
	return nil
}

// link sets the parent of every command below cmd.
func link(cmd *command) *command {
	for _, s := range cmd.sub {
		s.parent = cmd
		link(s)
	}
	return cmd
}

func (c *cli) root() *command {
	return link(&command{
		name:  "plugboard",
		short: "Plugboard: a self-hosted connector platform",
		long: "Plugboard runs WebAssembly connector plugins behind one HTTP API.\n" +
			"Run the server with `plugboard serve`; the other commands talk to it.",
		example: "# Start a server, then use it from another shell\n" +
			"plugboard serve\n" +
			"export PLUGBOARD_TOKEN=$(cat ./var/admin.token)\n" +
			"plugboard connector push ./github.wasm\n" +
			"plugboard connector actions github",
		sub: []*command{
			c.serveCommand(),
			c.connectorCommand(),
			c.connectionCommand(),
			c.keyCommand("key", false),
			c.keyCommand("keys", true),
			c.masterKeyCommand(),
			c.storeCommand(),
			c.auditCommand(),
			c.invokeCommand(),
			c.subscribeCommand(),
			c.subscriptionsCommand(),
			c.rescheduleCommand(),
			c.unsubscribeCommand(),
			c.eventsCommand(),
			c.devCommand(),
			c.mcpCommand(),
			c.catalogCommand(),
			c.contextCommand(),
			c.versionCommand(),
			c.completionCommand(),
			c.helpCommand(),
			c.completeCommand(),
		},
	})
}

func (c *cli) serveCommand() *command {
	cmd := &command{
		name:     "serve",
		args:     "[flags]",
		short:    "Run the Plugboard server",
		example:  serveExamples,
		ownFlags: true, // its flags are also PLUGBOARD_<FLAG> variables; its help is serve_help.go's
	}
	cmd.run = func(ctx context.Context, args []string) error {
		err := c.serve(ctx, args, c.stdout, c.stderr)
		if ue, ok := errors.AsType[*usageError](err); ok && ue.cmd == nil {
			ue.cmd = cmd
		}
		return err
	}
	return cmd
}

// serveFlags returns the flag set of `plugboard serve`, for completion: runServe with -h
// defines its flags and returns before it starts anything.
func serveFlags() *flag.FlagSet {
	fc := &flagCollector{Writer: io.Discard}
	_ = runServe(context.Background(), []string{"-h"}, fc, io.Discard)
	return fc.fs
}

func (c *cli) helpCommand() *command {
	return &command{
		name:    "help",
		args:    "[COMMAND...]",
		short:   "Show help for any command",
		example: "plugboard help connector push",
		nargs:   anyArgs,
		run: func(ctx context.Context, args []string) error {
			cmd := c.root()
			for i, name := range args {
				next := cmd.lookup(name)
				if next == nil {
					return unknownCommand(cmd, name)
				}
				if next.ownFlags && next.name == "serve" {
					return c.serve(ctx, append([]string{"-h"}, args[i+1:]...), c.stdout, c.stderr)
				}
				cmd = next
			}
			c.printHelp(c.stdout, cmd)
			return nil
		},
	}
}

func (c *cli) main(ctx context.Context, args []string) int {
	root := c.root()
	err := c.execute(ctx, root, args)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, storage.ErrCorrupt):
		c.report(err)
		return exitStore
	}
	return c.report(err)
}

// execute runs cmd with args: a group parses the global flags before the subcommand's name and
// descends; a leaf parses its flags wherever they stand among its arguments.
func (c *cli) execute(ctx context.Context, cmd *command, args []string) error {
	if cmd.ownFlags {
		return cmd.run(ctx, args)
	}
	fs := c.newFlagSet(cmd)
	if cmd.sub != nil {
		if err := fs.Parse(args); err != nil {
			return c.flagError(cmd, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			c.printHelp(c.stderr, cmd)
			return &usageError{cmd: cmd, msg: "a command is required", helpShown: true}
		}
		next := cmd.lookup(rest[0])
		if next == nil {
			return unknownCommand(cmd, rest[0])
		}
		return c.execute(ctx, next, rest[1:])
	}
	pos, err := parseInterspersed(fs.FlagSet, args)
	if err != nil {
		return c.flagError(cmd, err)
	}
	check := cmd.nargs
	if check == nil {
		check = exactArgs()
	}
	if err := check(pos); err != nil {
		return &usageError{cmd: cmd, msg: err.Error()}
	}
	if c.correlationID != "" {
		ctx = client.WithCorrelationID(ctx, c.correlationID)
	}
	c.named = namedArgs(cmd.args, pos)
	if cmd.parent != nil && cmd.parent.name == "connector" && c.named["NAME"] != "" {
		c.named["CONNECTOR"] = c.named["NAME"] // a connector command's NAME is a connector's
	}
	err = cmd.run(ctx, pos)
	if ue, ok := errors.AsType[*usageError](err); ok && ue.cmd == nil {
		ue.cmd = cmd
	}
	return err
}

// flagError turns a parse error into help (for -h) or a usage error.
func (c *cli) flagError(cmd *command, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		c.printHelp(c.stdout, cmd)
		return err
	}
	return &usageError{cmd: cmd, msg: err.Error()}
}

func unknownCommand(parent *command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, parent.fullName())
	if s := suggest(parent, name); s != "" {
		msg += fmt.Sprintf("\n\nDid you mean this?\n\t%s", s)
	}
	return &usageError{cmd: parent, msg: msg}
}

// suggest returns the subcommand of parent closest to name: a prefix match or an edit distance
// of at most 2.
func suggest(parent *command, name string) string {
	best, bestD := "", 3
	for _, s := range parent.sub {
		if strings.HasPrefix(s.name, name) && len(name) >= 2 {
			return s.name
		}
		if d := editDistance(name, s.name); d < bestD {
			best, bestD = s.name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// serverURL is --url, else PLUGBOARD_URL, else the context's URL, else the default.
func (c *cli) serverURL() string { return c.endpoint().url }

// authToken is --token, else PLUGBOARD_TOKEN, else the context's token when the URL is the
// context's own.
func (c *cli) authToken() string { return c.endpoint().token }

// api returns a client for the configured server. When the settings cannot be read (a broken
// config file, an unknown --context) every call of the client fails with the reason.
func (c *cli) api() *client.Client {
	ep := c.endpoint()
	if ep.err != nil {
		return client.Unusable(ep.err)
	}
	api := client.New(ep.url, ep.token, client.WithHTTPClient(c.httpClient), client.WithUserAgent("plugboard-cli/"+buildVersion()))
	return api
}

// usageError is a command line that cannot run as written: exit code 2.
type usageError struct {
	cmd       *command
	msg       string
	helpShown bool
}

func (e *usageError) Error() string { return e.msg }

// usagef returns a usage error; execute names the command it belongs to.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Argument count checks for command.nargs.

func anyArgs([]string) error { return nil }

// exactArgs wants one argument per name.
func exactArgs(names ...string) func([]string) error {
	return func(args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(names) == 0 {
			return fmt.Errorf("unexpected argument %q", args[0])
		}
		if len(args) < len(names) {
			return fmt.Errorf("missing %s", strings.Join(names[len(args):], " "))
		}
		return fmt.Errorf("too many arguments: want %s, got %q", strings.Join(names, " "), strings.Join(args, " "))
	}
}

// namedArgs pairs the names of a usage line's positional arguments ("NAME VERSION",
// "[FILE]") with the arguments given.
func namedArgs(usage string, pos []string) map[string]string {
	m := map[string]string{}
	for i, f := range strings.Fields(usage) {
		name := strings.Trim(f, "[].")
		if i >= len(pos) || name == "" || strings.ToUpper(name) != name {
			break
		}
		m[name] = pos[i]
	}
	return m
}
