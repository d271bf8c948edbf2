package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
	"github.com/plugboard/plugboard/server"
)

// TestContextCommands: add (token from stdin), use, list (the current one marked, never a
// token), current, remove, in a config file under $XDG_CONFIG_HOME written with mode 0600 in a
// directory made with mode 0700.
func TestContextCommands(t *testing.T) {
	xdg := filepath.Join(t.TempDir(), "xdg")
	e := env{"XDG_CONFIG_HOME": xdg, "HOME": t.TempDir()}
	path := filepath.Join(xdg, "plugboard", "config.json")
	const secret = "pbk_context_secret_1f2e"

	plugboard(t, e, secret+"\n", "context", "add", "local", "--url", "http://127.0.0.1:8080", "--token-stdin").
		want(t, exitOK, []string{"Added context local (http://127.0.0.1:8080, token stored) to " + path, "It is the current context."}, nil)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %04o, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("config directory mode %04o, want 0700", di.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	var cfg config
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Current != "local" || cfg.Contexts["local"].Token != secret {
		t.Fatalf("config file %s: %+v %v", b, cfg, err)
	}

	// A second context does not become current by itself.
	plugboard(t, e, "", "context", "add", "prod", "--url", "https://pb.example.com").
		want(t, exitOK, []string{"Added context prod (https://pb.example.com, no token)", "plugboard context use prod"}, nil)
	plugboard(t, e, "", "context", "add", "prod", "--url", "https://other.example.com").
		want(t, exitError, nil, []string{"context prod already exists (url https://pb.example.com): pass --force"})

	r := plugboard(t, e, "", "context", "list").ok(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "*") || !strings.Contains(lines[1], "local") ||
		!strings.Contains(lines[1], "stored") || !strings.HasPrefix(lines[2], "   ") || !strings.Contains(lines[2], "prod") ||
		!strings.HasSuffix(lines[2], "none") {
		t.Errorf("context list:\n%s", r.stdout)
	}
	plugboard(t, e, "", "context", "current").want(t, exitOK, []string{"local\n"}, nil)

	plugboard(t, e, "", "context", "use", "prod").want(t, exitOK, []string{"Switched to context prod (https://pb.example.com)."}, nil)
	plugboard(t, e, "", "context", "current").want(t, exitOK, []string{"prod\n"}, nil)
	// --context and PLUGBOARD_CONTEXT choose another one for one command.
	plugboard(t, e, "", "context", "current", "--context", "local").want(t, exitOK, []string{"local\n"}, nil)
	withVar := env{"XDG_CONFIG_HOME": xdg, "PLUGBOARD_CONTEXT": "local"}
	plugboard(t, withVar, "", "context", "current").want(t, exitOK, []string{"local\n"}, nil)

	r = plugboard(t, e, "", "context", "list", "-o", "json").ok(t)
	var doc struct {
		Contexts []contextDoc `json:"contexts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Contexts) != 2 ||
		doc.Contexts[0] != (contextDoc{Name: "local", URL: "http://127.0.0.1:8080", HasToken: true}) ||
		doc.Contexts[1] != (contextDoc{Name: "prod", URL: "https://pb.example.com", Current: true}) {
		t.Errorf("context list -o json: %v\n%s", err, r.stdout)
	}

	plugboard(t, e, "", "context", "use", "staging").want(t, exitError, nil, []string{`no context named "staging"`, "`plugboard context list` shows them (local, prod)"})
	plugboard(t, e, "", "context", "add", "bad name", "--url", "http://x").want(t, exitUsage, nil, []string{`context name "bad name"`})
	plugboard(t, e, "", "context", "add", "x", "--url", "localhost:8080").want(t, exitUsage, nil, []string{`--url: invalid server URL "localhost:8080"`})
	plugboard(t, e, "", "context", "add", "x").want(t, exitUsage, nil, []string{"--url is required"})

	plugboard(t, e, "", "context", "remove", "prod").want(t, exitOK, []string{"Removed context prod."}, []string{"It was the current context"})
	plugboard(t, e, "", "context", "current").want(t, exitError, nil, []string{"no current context: choose one with `plugboard context use NAME`"})
	plugboard(t, e, "", "context", "remove", "prod").want(t, exitError, nil, []string{`no context named "prod"`})

	// No command printed the token.
	for _, args := range [][]string{{"context", "list"}, {"context", "list", "-o", "json"}, {"context", "current", "--context", "local"},
		{"context", "current", "--context", "local", "-o", "json"}, {"context", "use", "local"}} {
		r := plugboard(t, e, "", args...).ok(t)
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("plugboard %s printed the token", strings.Join(args, " "))
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("after rewrites the config file mode is %04o", fi.Mode().Perm())
	}
}

// TestContextConfigPath: $PLUGBOARD_CONFIG, else $XDG_CONFIG_HOME/plugboard/config.json, else
// ~/.config/plugboard/config.json.
func TestContextConfigPath(t *testing.T) {
	tests := []struct {
		env  env
		want string
	}{
		{env{"PLUGBOARD_CONFIG": "/a/pb.json", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/a/pb.json"},
		{env{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/plugboard/config.json"},
		{env{"HOME": "/h"}, "/h/.config/plugboard/config.json"},
		{env{}, ""},
	}
	for _, tt := range tests {
		c := &cli{getenv: func(k string) string { return tt.env[k] }}
		if got := c.configPath(); got != tt.want {
			t.Errorf("configPath with %v = %q, want %q", tt.env, got, tt.want)
		}
	}
	// Without any of them the context commands say what to set.
	plugboard(t, env{}, "", "context", "list").want(t, exitError, nil, []string{"set PLUGBOARD_CONFIG (or HOME)"})
}

// writeConfig writes a config file with mode 0600 and returns its path.
func writeConfig(t *testing.T, cfg config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestContextPrecedence: for the URL and the token each, the flag wins over the variable, the
// variable over the context (--context, else PLUGBOARD_CONTEXT, else the current one), and the
// context over the default; a context's token goes only to its own URL.
func TestContextPrecedence(t *testing.T) {
	a, b, other := plugboardtest.New(t), plugboardtest.New(t), plugboardtest.New(t)
	a.Token, b.Token, other.Token = "tok_a", "tok_b", "tok_other"
	path := writeConfig(t, config{Current: "a", Contexts: map[string]*contextEntry{
		"a": {URL: a.URL, Token: "tok_a"},
		"b": {URL: b.URL + "/", Token: "tok_b"}, // a trailing slash is the same URL
	}})
	cfgEnv := func(kv ...string) env {
		e := env{"PLUGBOARD_CONFIG": path}
		for i := 0; i+1 < len(kv); i += 2 {
			e[kv[i]] = kv[i+1]
		}
		return e
	}
	tests := []struct {
		name   string
		env    env
		args   []string
		server *plugboardtest.Server
		token  string // the Authorization the server must have seen; "" for none
		code   int
		stderr []string
	}{
		{"the current context", cfgEnv(), nil, a, "Bearer tok_a", exitOK, nil},
		{"--context before the command", cfgEnv(), []string{"--context", "b", "connector", "list"}, b, "Bearer tok_b", exitOK, nil},
		{"--context after the command", cfgEnv(), []string{"connector", "list", "--context", "b"}, b, "Bearer tok_b", exitOK, nil},
		{"PLUGBOARD_CONTEXT", cfgEnv("PLUGBOARD_CONTEXT", "b"), nil, b, "Bearer tok_b", exitOK, nil},
		{"--context wins over PLUGBOARD_CONTEXT", cfgEnv("PLUGBOARD_CONTEXT", "b"), []string{"--context", "a"}, a, "Bearer tok_a", exitOK, nil},
		{"PLUGBOARD_TOKEN wins over the context's token", cfgEnv("PLUGBOARD_TOKEN", "tok_other"), nil, a, "Bearer tok_other", exitError, nil},
		{"--token wins over PLUGBOARD_TOKEN", cfgEnv("PLUGBOARD_TOKEN", "tok_other"), []string{"--token", "tok_a"}, a, "Bearer tok_a", exitOK, nil},
		{"PLUGBOARD_URL wins over the context's URL, and its token is not sent there", cfgEnv("PLUGBOARD_URL", other.URL), nil, other, "", exitError,
			[]string{"hint: no token was sent: context a holds a token for " + a.URL + ", not sent to " + other.URL + " (from PLUGBOARD_URL)"}},
		{"--url wins over PLUGBOARD_URL and the context", cfgEnv("PLUGBOARD_URL", b.URL), []string{"--url", other.URL, "--token", "tok_other"}, other, "Bearer tok_other", exitOK, nil},
		{"--url with --context: the URL of the flag, the token of neither", cfgEnv(), []string{"--context", "b", "--url", a.URL}, a, "", exitError,
			[]string{"context b holds a token for " + b.URL + "/, not sent to " + a.URL + " (from --url)"}},
		{"the variables alone, as before contexts", env{"PLUGBOARD_URL": b.URL, "PLUGBOARD_TOKEN": "tok_b"}, nil, b, "Bearer tok_b", exitOK, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !slices.Contains(args, "connector") {
				args = append([]string{"connector", "list"}, args...)
			}
			before := len(tt.server.Requests())
			r := plugboard(t, tt.env, "", args...)
			r.want(t, tt.code, nil, tt.stderr)
			if len(tt.server.Requests()) != before+1 {
				t.Fatalf("the request did not reach the expected server:\n%s", r.stderr)
			}
			if got := tt.server.LastRequest().Header.Get("Authorization"); got != tt.token {
				t.Errorf("Authorization = %q, want %q", got, tt.token)
			}
		})
	}

	t.Run("no config file: the default URL", func(t *testing.T) {
		e := map[string]string{"PLUGBOARD_CONFIG": filepath.Join(t.TempDir(), "none.json")}
		c := &cli{getenv: func(k string) string { return e[k] }}
		if ep := c.endpoint(); ep.url != defaultURL || ep.token != "" || ep.err != nil {
			t.Errorf("endpoint = %+v", ep)
		}
	})
	t.Run("an unknown --context fails the command with the names there are", func(t *testing.T) {
		plugboard(t, cfgEnv(), "", "connector", "list", "--context", "nope").
			want(t, exitError, nil, []string{`error: no context named "nope" in ` + path + ": `plugboard context list` shows them (a, b)"})
	})
	t.Run("a current context that is gone", func(t *testing.T) {
		p := writeConfig(t, config{Current: "gone", Contexts: map[string]*contextEntry{}})
		plugboard(t, env{"PLUGBOARD_CONFIG": p}, "", "connector", "list").
			want(t, exitError, nil, []string{`no context named "gone"`, "pick another with `plugboard context use NAME`"})
	})
	t.Run("a config file that does not decode", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "config.json")
		os.WriteFile(p, []byte(`{"contexts": {"a": {"url": "http://x", "tokn": "t"}}}`), 0o600)
		plugboard(t, env{"PLUGBOARD_CONFIG": p}, "", "connector", "list").
			want(t, exitError, nil, []string{"the config file " + p + ` does not decode: json: unknown field "tokn"`})
		// With the URL and the token from the environment the file is not read.
		plugboard(t, env{"PLUGBOARD_CONFIG": p, "PLUGBOARD_URL": a.URL, "PLUGBOARD_TOKEN": "tok_a"}, "", "connector", "list").ok(t)
	})
}

// TestContextTokenFileMode: a token is not read from a config file others may read; the
// error says how to fix it, and `context add` writes the file back with mode 0600.
func TestContextTokenFileMode(t *testing.T) {
	s := plugboardtest.New(t)
	path := writeConfig(t, config{Current: "a", Contexts: map[string]*contextEntry{"a": {URL: s.URL, Token: plugboardtest.Token}}})
	e := env{"PLUGBOARD_CONFIG": path}
	plugboard(t, e, "", "connector", "list").ok(t)

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(s.Requests())
	plugboard(t, e, "", "connector", "list").want(t, exitError, nil,
		[]string{"error: " + path + " holds tokens and others may read it (mode 0644), so its token is not used: run `chmod 600 " + path + "`"})
	if len(s.Requests()) != before {
		t.Error("a request was sent with the token of a file others can read")
	}
	plugboard(t, e, "", "context", "list").want(t, exitOK, nil, []string{"warning: others may read " + path + " (mode 0644)"})
	// A token from the environment does not need the file's.
	plugboard(t, env{"PLUGBOARD_CONFIG": path, "PLUGBOARD_TOKEN": plugboardtest.Token}, "", "connector", "list").ok(t)

	plugboard(t, e, "", "context", "add", "b", "--url", "http://127.0.0.1:1").ok(t)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("context add left mode %04o", fi.Mode().Perm())
	}
	plugboard(t, e, "", "connector", "list").ok(t)
}

// TestContextAgainstRealServer: a context made from the admin token file reaches a real server
// with no URL or token in the environment or on the command line.
func TestContextAgainstRealServer(t *testing.T) {
	srv, err := server.New(context.Background(), &server.Options{DataDir: t.TempDir(), AdminToken: "pba_ctx",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close(context.Background()) }()

	e := env{"PLUGBOARD_CONFIG": filepath.Join(t.TempDir(), "pb", "config.json")}
	plugboard(t, e, "pba_ctx\n", "context", "add", "dev", "--url", hs.URL, "--token-stdin").ok(t)
	r := plugboard(t, e, "", "key", "list").ok(t)
	if !strings.Contains(r.stdout, "key_admin") {
		t.Errorf("key list through the context:\n%s", r.stdout)
	}
	// Without the context the same command has no server.
	plugboard(t, env{}, "", "key", "list", "--url", hs.URL).want(t, exitError, nil, []string{"unauthenticated", "no token was sent"})
}
