package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

func TestInvoke(t *testing.T) {
	s := plugboardtest.New(t)
	e := serverEnv(s)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("github", "1.0.0"))).ok(t)
	plugboard(t, e, "k", "connection", "create", "gh-main", "--connector", "github", "--api-key-stdin").ok(t)
	input := filepath.Join(t.TempDir(), "issue.json")
	os.WriteFile(input, []byte(`{"owner": "o", "title": "Bug"}`), 0o644)

	tests := []struct {
		name   string
		args   []string
		stdin  string
		invoke func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem)
		code   int
		stdout string
		stderr []string
		// the request body the server must have seen
		body string
	}{
		{name: "output is pretty-printed", args: []string{"github", "create_issue", "--connection", "gh-main", "--input", `{"title":"Bug","owner":"o"}`},
			stdout: "{\n  \"title\": \"Bug\",\n  \"owner\": \"o\"\n}\n",
			body:   `{"connection":"gh-main","input":{"title":"Bug","owner":"o"}}`},
		{name: "no input sends {}", args: []string{"github", "get_repo"},
			stdout: "{}\n", body: `{"input":{}}`},
		{name: "input from a file, pinned version", args: []string{"github", "create_issue", "--input", "@" + input, "--version", "1.0.0"},
			stdout: "{\n  \"owner\": \"o\",\n  \"title\": \"Bug\"\n}\n",
			body:   `{"input":{"owner":"o","title":"Bug"},"version":"1.0.0"}`},
		{name: "input from stdin", args: []string{"github", "get_repo", "--input", "-"}, stdin: "{\"owner\": \"o\"}\n",
			stdout: "{\n  \"owner\": \"o\"\n}\n"},
		{name: "schema errors with paths and the correlation id", args: []string{"github", "create_issue", "--input", `{"body": "x"}`, "--correlation-id", "c_42"},
			code: exitError, stderr: []string{
				"error: invalid_input: input.title: missing property (HTTP 400)\n",
				"  /title: missing property\n  /owner: missing property\n",
				"correlation id: c_42\n",
				"hint: see the input schema with `plugboard connector actions github -o json`",
			}},
		{name: "unknown action", args: []string{"github", "nope"}, code: exitError,
			stderr: []string{"action_not_found", "hint: list the actions with `plugboard connector actions github`"}},
		{name: "unknown connector", args: []string{"other", "get_repo"}, code: exitError,
			stderr: []string{"connector_not_found"}},
		{name: "plugin error with details", args: []string{"github", "get_repo", "--connection", "gh-main"},
			invoke: func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
				return nil, &plugboardtest.Problem{Status: 404, Code: "not_found", Detail: "repo o/r not found", Source: "plugin"}
			},
			code: exitError, stderr: []string{"error: not_found: repo o/r not found (HTTP 404, reported by the plugin)", "correlation id: c_"}},
		{name: "plugin failure points at the invocation log", args: []string{"github", "get_repo", "--correlation-id", "c_trap"},
			invoke: func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
				return nil, &plugboardtest.Problem{Status: 502, Code: "plugin_failed", Detail: "the plugin trapped: unreachable"}
			},
			code: exitError, stderr: []string{"plugin_failed", "GET /v1/invocations/c_trap"}},
		{name: "upstream refusing the credentials suggests rotating them", args: []string{"github", "get_repo", "--connection", "gh-main"},
			invoke: func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
				return nil, &plugboardtest.Problem{Status: 502, Code: "unauthorized", Detail: "GitHub answered 401", Source: "plugin"}
			},
			code: exitError, stderr: []string{"(HTTP 502, reported by the plugin)", "hint: the upstream service rejected the connection's credentials: replace them with `plugboard connection rotate ID`"}},
		{name: "rate limited says when to retry", args: []string{"github", "get_repo"},
			invoke: func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
				return nil, &plugboardtest.Problem{Status: 429, Code: "rate_limited", Detail: "too many calls", RetryAfter: "120"}
			},
			code: exitError, stderr: []string{"hint: retry after 2m0s"}},
		{name: "rate limited once is retried after Retry-After", args: []string{"github", "get_repo"},
			invoke: rateLimitedOnce(),
			stdout: "{\n  \"attempt\": 2\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Invoke = tt.invoke
			r := plugboard(t, e, tt.stdin, append([]string{"invoke"}, tt.args...)...)
			r.want(t, tt.code, nil, tt.stderr)
			if tt.code == exitOK && r.stdout != tt.stdout {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.stdout)
			}
			if tt.code != exitOK && r.stdout != "" {
				t.Errorf("stdout = %q on failure", r.stdout)
			}
			if got := string(s.LastRequest().Body); tt.body != "" && got != tt.body {
				t.Errorf("request body = %s, want %s", got, tt.body)
			}
		})
	}
}

// rateLimitedOnce answers 429 with Retry-After: 0 to the first call and the attempt's number
// to the next.
func rateLimitedOnce() func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
	n := 0
	return func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
		n++
		if n == 1 {
			return nil, &plugboardtest.Problem{Status: 429, Code: "rate_limited", Detail: "too many calls", RetryAfter: "0"}
		}
		return map[string]int{"attempt": n}, nil
	}
}
