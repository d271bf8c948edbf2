package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// result is what one in-process run of plugboard produced.
type result struct {
	code           int
	stdout, stderr string
}

// env is the environment of a test run; the zero value has neither URL nor token.
type env map[string]string

// serverEnv points the command at s with the accepted token.
func serverEnv(s *plugboardtest.Server) env {
	return env{"PLUGBOARD_URL": s.URL, "PLUGBOARD_TOKEN": plugboardtest.Token}
}

// plugboard runs the command line args in-process.
func plugboard(t *testing.T, e env, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr strings.Builder
	code := run(t.Context(), args, func(k string) string { return e[k] }, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// ok fails the test unless r exited 0.
func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

// want fails the test unless r exited with code and each part occurs in its output.
func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
		return
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

func testManifest(name, version string, hosts ...string) abi.Manifest {
	return abi.Manifest{
		ABI: 1, Name: name, Version: version, Title: "Test " + name,
		Auth:  abi.Auth{Types: []string{"api_key", "basic", "oauth2", "none"}},
		Hosts: hosts,
		Actions: []abi.Action{
			{Name: "create_issue", Title: "Create an issue", InputSchema: json.RawMessage(`{"type":"object","required":["title","owner"]}`),
				Annotations: &abi.Annotations{Destructive: true}},
			{Name: "get_repo", Title: "Read a repository", InputSchema: json.RawMessage(`{"type":"object"}`),
				Annotations: &abi.Annotations{ReadOnly: true, Idempotent: true}},
		},
	}
}

// writeWasm writes a fake plugin for m into the test's temporary directory.
func writeWasm(t *testing.T, m abi.Manifest) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), m.Name+"-"+m.Version+".wasm")
	if err := os.WriteFile(path, plugboardtest.Wasm(m), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// walk calls f for every command of the tree.
func walk(cmd *command, f func(*command)) {
	f(cmd)
	for _, s := range cmd.sub {
		walk(s, f)
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	c := &cli{getenv: func(string) string { return "" }}
	walk(c.root(), func(cmd *command) {
		if cmd.ownFlags {
			return
		}
		name := cmd.fullName()
		t.Run(name, func(t *testing.T) {
			if cmd.short == "" || cmd.example == "" {
				t.Errorf("%s lacks a short description or an example", name)
			}
			args := append(strings.Fields(name)[1:], "-h")
			r := plugboard(t, nil, "", args...)
			r.want(t, exitOK, []string{"USAGE\n  " + name, "EXAMPLES", "GLOBAL FLAGS", "--url URL"}, nil)
			if r.stderr != "" {
				t.Errorf("stderr = %q", r.stderr)
			}
			viaHelp := plugboard(t, nil, "", append([]string{"help"}, strings.Fields(name)[1:]...)...)
			if viaHelp.code != exitOK || viaHelp.stdout != r.stdout {
				t.Errorf("plugboard help %s differs from -h:\n%s", name, viaHelp.stdout)
			}
		})
	})
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"no command shows the help", nil, []string{"COMMANDS", "error: a command is required"}},
		{"group without subcommand", []string{"connector"}, []string{"push", "error: a command is required"}},
		{"unknown command suggests", []string{"conector", "list"}, []string{`unknown command "conector" for "plugboard"`, "Did you mean this?\n\tconnector"}},
		{"unknown subcommand", []string{"connector", "lst"}, []string{`unknown command "lst"`, "list", "Run 'plugboard connector --help' for usage."}},
		{"missing argument", []string{"connector", "get"}, []string{"error: missing NAME", "Run 'plugboard connector get --help' for usage."}},
		{"missing second argument", []string{"connector", "activate", "github"}, []string{"error: missing VERSION"}},
		{"too many arguments", []string{"connection", "get", "a", "b"}, []string{"too many arguments"}},
		{"unexpected argument", []string{"connector", "list", "x"}, []string{`unexpected argument "x"`}},
		{"unknown flag", []string{"connector", "list", "--wide"}, []string{"flag provided but not defined: -wide"}},
		{"bad output format", []string{"connector", "list", "-o", "yaml"}, []string{`invalid value "yaml" for flag -o: must be "table" or "json"`}},
		{"unknown help topic", []string{"help", "nope"}, []string{`unknown command "nope"`}},
		{"invalid JSON input", []string{"invoke", "github", "get_repo", "--input", "{nope"}, []string{"--input is not valid JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plugboard(t, nil, "", tt.args...).want(t, exitUsage, nil, tt.stderr)
		})
	}
}

func TestServeIsHandedItsArguments(t *testing.T) {
	var got []string
	var stdout, stderr strings.Builder
	c := &cli{getenv: func(string) string { return "" }, stdout: &stdout, stderr: &stderr,
		serve: func(ctx context.Context, args []string, out, errw io.Writer) error {
			got = args
			return nil
		}}
	if code := c.main(t.Context(), []string{"serve", "--listen", ":0", "--data", "x"}); code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	if !slices.Equal(got, []string{"--listen", ":0", "--data", "x"}) {
		t.Errorf("serve got %q", got)
	}
	if code := c.main(t.Context(), []string{"help", "serve"}); code != exitOK || !slices.Equal(got, []string{"-h"}) {
		t.Errorf("help serve: exit %d, serve got %q", code, got)
	}
}

func TestGlobalFlagsAndEnvironment(t *testing.T) {
	s := plugboardtest.New(t)
	other := plugboardtest.New(t)
	tests := []struct {
		name   string
		env    env
		args   []string
		server *plugboardtest.Server
	}{
		{"environment", serverEnv(s), []string{"connector", "list"}, s},
		{"--url before the command wins over PLUGBOARD_URL", serverEnv(s), []string{"--url", other.URL, "connector", "list"}, other},
		{"--url after the command", serverEnv(s), []string{"connector", "list", "--url", other.URL}, other},
		{"--url=value between group and verb", serverEnv(s), []string{"connector", "--url=" + other.URL, "list"}, other},
		{"--token overrides PLUGBOARD_TOKEN", env{"PLUGBOARD_URL": s.URL, "PLUGBOARD_TOKEN": "wrong"}, []string{"connector", "list", "--token", plugboardtest.Token}, s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tt.server.Requests())
			plugboard(t, tt.env, "", tt.args...).ok(t)
			if len(tt.server.Requests()) != before+1 {
				t.Errorf("the request did not reach the expected server")
			}
			if ua := tt.server.LastRequest().Header.Get("User-Agent"); !strings.HasPrefix(ua, "plugboard-go/") || !strings.Contains(ua, " plugboard-cli/") {
				t.Errorf("User-Agent = %q", ua)
			}
		})
	}
	t.Run("default URL", func(t *testing.T) {
		c := &cli{getenv: func(string) string { return "" }}
		if got := c.serverURL(); got != "http://127.0.0.1:8080" {
			t.Errorf("serverURL() = %q", got)
		}
	})
	t.Run("--correlation-id is sent", func(t *testing.T) {
		plugboard(t, serverEnv(s), "", "connector", "list", "--correlation-id", "c_mine").ok(t)
		if got := s.LastRequest().Header.Get("X-Correlation-ID"); got != "c_mine" {
			t.Errorf("X-Correlation-ID = %q", got)
		}
	})
}

func TestConnectionErrorsSayWhatToDo(t *testing.T) {
	s := plugboardtest.New(t)
	closed := httptest.NewServer(nil)
	closed.Close()
	tests := []struct {
		name   string
		env    env
		stderr []string
	}{
		{"wrong token", env{"PLUGBOARD_URL": s.URL, "PLUGBOARD_TOKEN": "nope"}, []string{
			"error: unauthenticated: missing or invalid bearer token (HTTP 401)",
			"hint: the server rejected the token: set PLUGBOARD_TOKEN (printed by `plugboard serve` at first start, stored in ./var/admin.token)",
		}},
		{"no token", env{"PLUGBOARD_URL": s.URL, "PLUGBOARD_DATA": "/srv/plugboard/"}, []string{
			"hint: no token was sent: set PLUGBOARD_TOKEN or pass --token",
			"export PLUGBOARD_TOKEN=$(cat /srv/plugboard/admin.token)",
		}},
		{"server not running", env{"PLUGBOARD_URL": closed.URL, "PLUGBOARD_TOKEN": "x"}, []string{
			"connection refused",
			"hint: is the server running at " + closed.URL + "? Start it with `make run` or `plugboard serve`",
		}},
		{"unusable URL", env{"PLUGBOARD_URL": "localhost:8080"}, []string{`error: invalid server URL "localhost:8080"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plugboard(t, tt.env, "", "connector", "list").want(t, exitError, nil, tt.stderr)
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args []string
		pos  []string
		flag string
	}{
		{[]string{"a", "--f", "x", "b"}, []string{"a", "b"}, "x"},
		{[]string{"--f=x", "a"}, []string{"a"}, "x"},
		{[]string{"a", "--", "--f", "b"}, []string{"a", "--f", "b"}, ""},
		{[]string{"-", "--f", "-"}, []string{"-"}, "-"},
	}
	for _, tt := range tests {
		c := &cli{getenv: func(string) string { return "" }}
		var f string
		fs := c.newFlagSet(&command{name: "t", flags: func(fs *flagSet) { fs.StringVar(&f, "f", "", "") }})
		pos, err := parseInterspersed(fs.FlagSet, tt.args)
		if err != nil || !slices.Equal(pos, tt.pos) || f != tt.flag {
			t.Errorf("parse %q = %q, f=%q, %v; want %q, f=%q", tt.args, pos, f, err, tt.pos, tt.flag)
		}
	}
}

func TestVersion(t *testing.T) {
	r := plugboard(t, nil, "", "version").ok(t)
	if !strings.HasPrefix(r.stdout, "plugboard ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("version = %q", r.stdout)
	}
}

func TestPrintJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":[]}`, "{\n  \"b\": 1,\n  \"a\": []\n}\n"},
		{`"\u003chtml\u003e \u0026 \u003E"`, "\"<html> & >\"\n"},
		{`"\\u003c stays escaped, \u2028 too"`, "\"\\\\u003c stays escaped, \\u2028 too\"\n"},
		{``, "null\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		if err := printJSON(&b, json.RawMessage(tt.in)); err != nil || b.String() != tt.want {
			t.Errorf("printJSON(%s) = %q, %v; want %q", tt.in, b.String(), err, tt.want)
		}
	}
}
