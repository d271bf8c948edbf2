package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

func TestConnectionCreate(t *testing.T) {
	s := plugboardtest.New(t)
	e := serverEnv(s)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("github", "1.0.0", "https://api.github.com"))).ok(t)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("jira", "1.0.0"))).ok(t)
	secretFile := filepath.Join(t.TempDir(), "signing")
	os.WriteFile(secretFile, []byte("whsec_file\n"), 0o600)

	tests := []struct {
		name   string
		args   []string
		stdin  string
		stdout []string
		stderr []string
		// what the server must have stored
		apiKey, user, password string
		secrets                map[string]string
	}{
		{name: "api key from stdin, trailing newline dropped", args: []string{"gh-main", "--connector", "github", "--auth", "api_key", "--api-key-stdin"},
			stdin: "ghp_secret\n", apiKey: "ghp_secret",
			stdout: []string{"Created connection gh-main (ready).", "Connectors:  github", "Auth:        api_key", "Hosts:       https://api.github.com"}},
		{name: "--auth is implied by --api-key-stdin", args: []string{"gh-implied", "--connector", "github", "--api-key-stdin"},
			stdin: "ghp_2", apiKey: "ghp_2", stdout: []string{"Created connection gh-implied (ready)."}},
		{name: "api key on the command line warns", args: []string{"gh-visible", "--connector", "github", "--api-key", "ghp_visible"},
			apiKey: "ghp_visible", stderr: []string{"warning: --api-key puts the secret in your shell history", "prefer --api-key-stdin"}},
		{name: "basic auth with extra secrets", args: []string{"jira", "--connector", "jira", "--auth", "basic", "--username", "bot", "--password-stdin",
			"--secret", "extra=plain", "--secret-file", "signing_secret=" + secretFile},
			stdin: "pw\r\n", user: "bot", password: "pw", secrets: map[string]string{"extra": "plain", "signing_secret": "whsec_file"},
			stderr: []string{"warning: --secret puts the secret"}},
		{name: "two connectors and params", args: []string{"both", "--connector", "github", "--connector", "jira", "--auth", "none",
			"--params-json", `{"base_url": "https://x.example", "retries": 3}`, "--param", "org=acme"},
			stdout: []string{"Connectors:  github, jira", "Params:      base_url=https://x.example, org=acme, retries=3"}},
		{name: "oauth2 prints the consent URL", args: []string{"gh-oauth", "--connector", "github", "--auth", "oauth2", "--client-id", "Iv1.abc",
			"--client-secret-stdin", "--scope", "repo"}, stdin: "cs",
			stdout: []string{"Created connection gh-oauth (pending_consent).", "Open this URL in a browser to grant access:\n  " + s.URL + "/v1/oauth/authorize?state=st_gh-oauth"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := plugboard(t, e, tt.stdin, append([]string{"connection", "create"}, tt.args...)...)
			r.want(t, exitOK, tt.stdout, tt.stderr)
			key, user, pw, secrets, ok := s.Secret(tt.args[0])
			if !ok {
				t.Fatal("not stored")
			}
			if key != tt.apiKey || user != tt.user || pw != tt.password {
				t.Errorf("stored key %q user %q password %q", key, user, pw)
			}
			for k, v := range tt.secrets {
				if secrets[k] != v {
					t.Errorf("secret %s = %q, want %q", k, secrets[k], v)
				}
			}
			for _, secret := range []string{"ghp_secret", "ghp_2", "pw", "cs", "whsec_file"} {
				if strings.Contains(r.stdout, secret) {
					t.Errorf("stdout shows the secret %q", secret)
				}
			}
		})
	}

	usage := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no connector", []string{"x", "--auth", "none"}, "--connector is required"},
		{"no auth type", []string{"x", "--connector", "github"}, "choose the auth type with --auth none, api_key, basic or oauth2"},
		{"flag of another auth type", []string{"x", "--connector", "github", "--auth", "basic", "--api-key-stdin"}, "--api-key-stdin applies to --auth api_key, not basic"},
		{"both api key flags", []string{"x", "--connector", "github", "--api-key-stdin", "--api-key", "k"}, "use --api-key-stdin or --api-key, not both"},
		{"api key missing", []string{"x", "--connector", "github", "--auth", "api_key"}, "pipe it to --api-key-stdin"},
		{"basic without password", []string{"x", "--connector", "github", "--username", "u"}, "--auth basic needs --username and the password piped to --password-stdin"},
		{"two stdin readers", []string{"x", "--connector", "github", "--api-key-stdin", "--params-json", "-"}, "only one flag can read standard input"},
		{"unknown auth type", []string{"x", "--connector", "github", "--auth", "kerberos"}, `unknown auth type "kerberos"`},
		{"bad grant", []string{"x", "--connector", "github", "--client-id", "c", "--grant", "password"}, "--grant must be authorization_code or client_credentials"},
		{"params not an object", []string{"x", "--connector", "github", "--auth", "none", "--params-json", "[1]"}, "--params-json must be a JSON object"},
		{"bad --param", []string{"x", "--connector", "github", "--auth", "none", "--param", "novalue"}, `want KEY=VALUE, got "novalue"`},
	}
	for _, tt := range usage {
		t.Run("usage: "+tt.name, func(t *testing.T) {
			plugboard(t, e, "", append([]string{"connection", "create"}, tt.args...)...).want(t, exitUsage, nil, []string{tt.stderr})
		})
	}

	t.Run("empty stdin is an error", func(t *testing.T) {
		plugboard(t, e, "", "connection", "create", "x", "--connector", "github", "--api-key-stdin").
			want(t, exitError, nil, []string{"no API key on standard input"})
	})
	t.Run("server refusal", func(t *testing.T) {
		plugboard(t, e, "", "connection", "create", "x", "--connector", "nope", "--auth", "none").
			want(t, exitError, nil, []string{"connector_not_found", "hint: list the connectors"})
	})
}

func TestConnectionLifecycle(t *testing.T) {
	s := plugboardtest.New(t)
	e := serverEnv(s)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("github", "1.0.0", "https://api.github.com"))).ok(t)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("jira", "1.0.0"))).ok(t)

	r := plugboard(t, e, "", "connection", "list").ok(t)
	if r.stdout != "" || !strings.Contains(r.stderr, "No connections.") {
		t.Errorf("empty list: stdout %q stderr %q", r.stdout, r.stderr)
	}
	plugboard(t, e, "k1", "connection", "create", "gh-main", "--connector", "github", "--api-key-stdin", "--param", "base_url=https://api.github.com").ok(t)
	plugboard(t, e, "", "connection", "create", "open", "--connector", "jira", "--auth", "none").ok(t)

	t.Run("list", func(t *testing.T) {
		r := plugboard(t, e, "", "connection", "list").ok(t)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID        CONNECTORS   AUTH      STATUS   AGE") ||
			!strings.HasPrefix(lines[1], "gh-main   github       api_key   ready    ") {
			t.Errorf("list =\n%s", r.stdout)
		}
		r = plugboard(t, e, "", "connection", "list", "-o", "json").ok(t)
		var doc struct {
			Connections []map[string]any `json:"connections"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Connections) != 2 {
			t.Errorf("json = %s (%v)", r.stdout, err)
		}
	})
	t.Run("get", func(t *testing.T) {
		plugboard(t, e, "", "connection", "get", "gh-main").want(t, exitOK, []string{
			"ID:          gh-main\n", "Status:      ready\n", "Params:      base_url=https://api.github.com\n", "Created:     ",
		}, nil)
		plugboard(t, e, "", "connection", "get", "nope").want(t, exitError, nil, []string{
			"connection_not_found", "hint: list the connections with `plugboard connection list`",
		})
	})
	t.Run("update", func(t *testing.T) {
		plugboard(t, e, "", "connection", "update", "gh-main", "--host", "https://api.github.com", "--host", "https://uploads.github.com").
			want(t, exitOK, []string{"Updated connection gh-main.", "Hosts:       https://api.github.com, https://uploads.github.com"}, nil)
		if body := string(s.LastRequest().Body); body != `{"hosts":["https://api.github.com","https://uploads.github.com"]}` {
			t.Errorf("PATCH body = %s", body)
		}
		plugboard(t, e, "", "connection", "update", "gh-main").want(t, exitUsage, nil, []string{"nothing to change"})
	})
	t.Run("rotate", func(t *testing.T) {
		plugboard(t, e, "k2\n", "connection", "rotate", "gh-main", "--api-key-stdin").
			want(t, exitOK, []string{"Rotated the credentials of gh-main (api_key); new calls use the new secret."}, nil)
		if key, _, _, _, _ := s.Secret("gh-main"); key != "k2" {
			t.Errorf("stored key = %q", key)
		}
		if body := string(s.LastRequest().Body); body != `{"auth":{"type":"api_key","api_key":"k2"}}` {
			t.Errorf("PUT body = %s", body)
		}
	})
	t.Run("delete", func(t *testing.T) {
		plugboard(t, e, "", "connection", "delete", "gh-main").want(t, exitOK, []string{"Deleted connection gh-main.\n"}, nil)
		plugboard(t, e, "", "connection", "delete", "gh-main").want(t, exitError, nil, []string{"connection_not_found"})
	})
}
