package plugboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// manifest returns a test manifest with one action that requires "title".
func manifest(name, version string, hosts ...string) abi.Manifest {
	return abi.Manifest{
		ABI: 1, Name: name, Version: version, Title: "Test " + name,
		Auth:  abi.Auth{Types: []string{"api_key"}},
		Hosts: hosts,
		Actions: []abi.Action{
			{Name: "create_issue", Title: "Create an issue", InputSchema: json.RawMessage(`{"type":"object","required":["title"]}`),
				Annotations: &abi.Annotations{Destructive: true}},
			{Name: "get_repo", InputSchema: json.RawMessage(`{"type":"object"}`),
				Annotations: &abi.Annotations{ReadOnly: true, Idempotent: true}},
		},
	}
}

func setup(t *testing.T) (*plugboardtest.Server, *plugboard.Client) {
	t.Helper()
	s := plugboardtest.New(t)
	return s, plugboard.New(s.URL, plugboardtest.Token, plugboard.WithHTTPClient(s.Client()))
}

func mustUpload(t *testing.T, c *plugboard.Client, m abi.Manifest, activate bool) plugboard.Version {
	t.Helper()
	v, _, err := c.UploadConnector(t.Context(), plugboardtest.Wasm(m), activate)
	if err != nil {
		t.Fatalf("upload %s %s: %v", m.Name, m.Version, err)
	}
	return v
}

func problemOf(t *testing.T, err error) *plugboard.Problem {
	t.Helper()
	p, ok := errors.AsType[*plugboard.Problem](err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *plugboard.Problem", err, err)
	}
	return p
}

func TestUploadConnector(t *testing.T) {
	wasm := plugboardtest.Wasm(manifest("github", "1.0.0", "https://api.github.com"))
	tests := []struct {
		name      string
		prepare   func(t *testing.T, c *plugboard.Client)
		maxUpload int64
		body      []byte
		activate  bool
		// want
		created    bool
		active     bool
		code       string
		status     int
		errMessage string
	}{
		{name: "first version is stored and activated", body: wasm, created: true, active: true},
		{name: "same bytes again answer 200, not created", body: wasm, created: false, active: true,
			prepare: func(t *testing.T, c *plugboard.Client) {
				mustUpload(t, c, manifest("github", "1.0.0", "https://api.github.com"), false)
			}},
		{name: "a later version is stored inactive", body: plugboardtest.Wasm(manifest("github", "1.1.0")), created: true, active: false,
			prepare: func(t *testing.T, c *plugboard.Client) { mustUpload(t, c, manifest("github", "1.0.0"), false) }},
		{name: "a later version with activate=true becomes active", body: plugboardtest.Wasm(manifest("github", "1.1.0")), activate: true, created: true, active: true,
			prepare: func(t *testing.T, c *plugboard.Client) { mustUpload(t, c, manifest("github", "1.0.0"), false) }},
		{name: "same version with other bytes is 409 version_exists", body: plugboardtest.Wasm(manifest("github", "1.0.0", "https://other.example")),
			prepare: func(t *testing.T, c *plugboard.Client) { mustUpload(t, c, manifest("github", "1.0.0"), false) },
			code:    plugboard.CodeVersionExists, status: 409},
		{name: "not wasm is 400 invalid_wasm", body: []byte("hello"), code: plugboard.CodeInvalidWasm, status: 400,
			errMessage: "invalid_wasm: invalid_wasm: not a WebAssembly binary (bad magic number) (HTTP 400)"},
		{name: "over the cap is 413 too_large", body: make([]byte, 4096), maxUpload: 1024, code: plugboard.CodeTooLarge, status: 413,
			errMessage: "too_large: the body exceeds 1024 bytes (HTTP 413)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := setup(t)
			if tt.maxUpload > 0 {
				s.MaxUpload = tt.maxUpload
			}
			if tt.prepare != nil {
				tt.prepare(t, c)
			}
			v, created, err := c.UploadConnector(t.Context(), tt.body, tt.activate)
			req := s.LastRequest()
			if got := req.Header.Get("Content-Type"); got != "application/wasm" {
				t.Errorf("Content-Type = %q, want application/wasm", got)
			}
			if wantQ := map[bool]string{true: "activate=true", false: ""}[tt.activate]; req.Query != wantQ {
				t.Errorf("query = %q, want %q", req.Query, wantQ)
			}
			if tt.code != "" {
				p := problemOf(t, err)
				if p.Code != tt.code || p.Status != tt.status {
					t.Fatalf("problem = %s/%d, want %s/%d", p.Code, p.Status, tt.code, tt.status)
				}
				if tt.errMessage != "" && err.Error() != tt.errMessage {
					t.Errorf("Error() = %q, want %q", err.Error(), tt.errMessage)
				}
				if !errors.Is(err, &plugboard.Problem{Code: tt.code}) {
					t.Errorf("errors.Is(err, &Problem{Code: %q}) = false", tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if created != tt.created || v.Active != tt.active {
				t.Errorf("created, active = %v, %v; want %v, %v", created, v.Active, tt.created, tt.active)
			}
			if v.Name != "github" || !strings.HasPrefix(v.Digest, "sha256:") || v.Size != int64(len(tt.body)) || v.Manifest == nil {
				t.Errorf("version = %+v", v)
			}
			if !json.Valid(v.Raw) || !strings.Contains(string(v.Raw), `"digest"`) {
				t.Errorf("Raw = %s, want the server's document", v.Raw)
			}
		})
	}
}

func TestUploadProgress(t *testing.T) {
	_, c := setup(t)
	var last, total int64
	c.UploadProgress = func(sent, tot int64) { last, total = sent, tot }
	wasm := plugboardtest.Wasm(manifest("big", "1.0.0"))
	if _, _, err := c.UploadConnector(t.Context(), wasm, false); err != nil {
		t.Fatal(err)
	}
	if last != int64(len(wasm)) || total != int64(len(wasm)) {
		t.Errorf("last report %d/%d, want %d/%d", last, total, len(wasm), len(wasm))
	}
}

func TestConnectorReads(t *testing.T) {
	s, c := setup(t)
	ctx := t.Context()
	mustUpload(t, c, manifest("github", "1.0.0", "https://api.github.com"), false)
	mustUpload(t, c, manifest("github", "1.1.0", "https://api.github.com"), false)
	mustUpload(t, c, manifest("slack", "0.1.0"), false)
	mustUpload(t, c, manifest("zendesk", "2.0.0"), false)

	t.Run("list follows next cursors", func(t *testing.T) {
		s.PageSize = 1
		defer func() { s.PageSize = 0 }()
		list, err := c.ListConnectors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, x := range list {
			names = append(names, x.Name)
		}
		if !slices.Equal(names, []string{"github", "slack", "zendesk"}) {
			t.Errorf("names = %v", names)
		}
		if list[0].ActiveVersion != "1.0.0" || !slices.Equal(list[0].Versions, []string{"1.0.0", "1.1.0"}) || list[0].Title != "Test github" {
			t.Errorf("github = %+v", list[0])
		}
		if q := s.LastRequest().Query; q != "cursor=2" {
			t.Errorf("last query = %q, want cursor=2", q)
		}
	})
	t.Run("get connector", func(t *testing.T) {
		got, err := c.GetConnector(ctx, "github")
		if err != nil {
			t.Fatal(err)
		}
		if got.ActiveVersion != "1.0.0" || len(got.Versions) != 2 || got.Manifest == nil || len(got.Manifest.Actions) != 2 {
			t.Errorf("connector = %+v", got)
		}
		if !got.Versions[0].Active || got.Versions[1].Active || got.Versions[1].UploadedAt.IsZero() {
			t.Errorf("versions = %+v", got.Versions)
		}
		if len(got.Versions[0].Raw) == 0 {
			t.Error("nested version lost its Raw document")
		}
	})
	t.Run("get version", func(t *testing.T) {
		got, err := c.GetVersion(ctx, "github", "1.1.0")
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != "1.1.0" || got.Active {
			t.Errorf("version = %+v", got)
		}
	})
	t.Run("unknown connector is connector_not_found", func(t *testing.T) {
		_, err := c.GetConnector(ctx, "nope")
		if p := problemOf(t, err); p.Code != plugboard.CodeConnectorNotFound || p.Status != 404 || p.Source != plugboard.SourcePlugboard {
			t.Errorf("problem = %+v", p)
		}
	})
	t.Run("names are escaped in paths", func(t *testing.T) {
		_, err := c.GetVersion(ctx, "a/b", "1.0.0+x y")
		problemOf(t, err)
		if got := s.LastRequest().Path; got != "/v1/connectors/a%2Fb/versions/1.0.0+x%20y" {
			t.Errorf("path = %q", got)
		}
	})
	t.Run("dot segments are refused before sending", func(t *testing.T) {
		before := len(s.Requests())
		for _, name := range []string{"", ".", ".."} {
			if _, err := c.GetConnector(ctx, name); err == nil || !strings.Contains(err.Error(), "invalid name") {
				t.Errorf("GetConnector(%q) error = %v", name, err)
			}
		}
		if n := len(s.Requests()) - before; n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
	t.Run("actions", func(t *testing.T) {
		actions, err := c.ListActions(ctx, "github")
		if err != nil {
			t.Fatal(err)
		}
		if len(actions) != 2 || actions[0].Name != "create_issue" || !actions[0].Annotations.Destructive || !actions[1].Annotations.ReadOnly {
			t.Errorf("actions = %+v", actions)
		}
		if !strings.Contains(string(actions[0].Raw), "input_schema") {
			t.Errorf("Raw = %s", actions[0].Raw)
		}
	})
}

func TestActivateAndDelete(t *testing.T) {
	s, c := setup(t)
	ctx := t.Context()
	mustUpload(t, c, manifest("github", "1.0.0", "https://api.github.com"), false)
	mustUpload(t, c, manifest("github", "1.1.0", "https://api.github.com", "https://uploads.github.com"), false)

	_, err := c.Activate(ctx, "github", "1.1.0", false)
	if p := problemOf(t, err); p.Code != plugboard.CodeCapabilitiesChanged || !strings.Contains(p.Detail, "uploads.github.com") {
		t.Fatalf("activate without approval: %+v", p)
	}
	v, err := c.Activate(ctx, "github", "1.1.0", true)
	if err != nil {
		t.Fatal(err)
	}
	if req := s.LastRequest(); req.Method != http.MethodPut || req.Query != "approve=capabilities" || string(req.Body) != `{"version":"1.1.0"}` {
		t.Errorf("request = %s %s?%s %s", req.Method, req.Path, req.Query, req.Body)
	}
	if !v.Active || v.Version != "1.1.0" {
		t.Errorf("version = %+v", v)
	}
	err = c.DeleteVersion(ctx, "github", "1.1.0")
	if p := problemOf(t, err); p.Status != 409 {
		t.Errorf("deleting the active version: %+v", p)
	}
	if err := c.DeleteVersion(ctx, "github", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetConnector(ctx, "github"); len(got.Versions) != 1 {
		t.Errorf("versions after delete = %+v", got.Versions)
	}
}

func TestInvoke(t *testing.T) {
	s, c := setup(t)
	mustUpload(t, c, manifest("github", "1.0.0"), false)
	tests := []struct {
		name     string
		action   string
		req      plugboard.InvokeRequest
		invoke   func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem)
		wantOut  string
		wantErr  string
		wantPath []plugboard.FieldError
		source   string
	}{
		{name: "output comes back", action: "create_issue", req: plugboard.InvokeRequest{Input: json.RawMessage(`{"title":"Bug"}`), Version: "1.0.0"},
			wantOut: `{"title":"Bug"}`},
		{name: "nil input sends an empty object", action: "get_repo", wantOut: `{}`},
		{name: "schema errors are listed with paths", action: "create_issue", req: plugboard.InvokeRequest{Input: json.RawMessage(`{"body":"x"}`)},
			wantErr: "invalid_input: input.title: missing property (HTTP 400)", wantPath: []plugboard.FieldError{{Path: "/title", Message: "missing property"}}},
		{name: "unknown action", action: "nope", wantErr: "action_not_found: github has no action \"nope\" (HTTP 404)"},
		{name: "unknown connection", action: "get_repo", req: plugboard.InvokeRequest{Connection: "missing"},
			wantErr: "connection_not_found: no connection \"missing\" (HTTP 404)"},
		{name: "plugin errors say so", action: "get_repo",
			invoke: func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
				return nil, &plugboardtest.Problem{Status: 404, Code: "not_found", Detail: "repo o/r not found", Source: "plugin"}
			},
			wantErr: "not_found: repo o/r not found (HTTP 404, reported by the plugin)", source: plugboard.SourcePlugin},
		{name: "rate limits carry Retry-After", action: "get_repo",
			invoke: func(string, string, plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
				return nil, &plugboardtest.Problem{Status: 429, Code: "rate_limited", Detail: "slow down", RetryAfter: "120"}
			},
			wantErr: "rate_limited: slow down (HTTP 429)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Invoke = tt.invoke
			ctx := plugboard.WithCorrelationID(t.Context(), "c_test_"+strings.ReplaceAll(tt.name, " ", "_"))
			out, err := c.Invoke(ctx, "github", tt.action, tt.req)
			wantID := "c_test_" + strings.ReplaceAll(tt.name, " ", "_")
			if got := s.LastRequest().Header.Get("X-Correlation-ID"); got != wantID {
				t.Errorf("sent X-Correlation-ID %q, want %q", got, wantID)
			}
			if tt.wantErr != "" {
				p := problemOf(t, err)
				if err.Error() != tt.wantErr {
					t.Errorf("Error() = %q, want %q", err.Error(), tt.wantErr)
				}
				if p.CorrelationID != wantID {
					t.Errorf("CorrelationID = %q, want %q", p.CorrelationID, wantID)
				}
				if tt.wantPath != nil && !slices.Equal(p.Errors, tt.wantPath) {
					t.Errorf("Errors = %+v, want %+v", p.Errors, tt.wantPath)
				}
				if tt.source != "" && p.Source != tt.source {
					t.Errorf("Source = %q, want %q", p.Source, tt.source)
				}
				if p.Status == 429 && p.RetryAfter != 2*time.Minute {
					t.Errorf("RetryAfter = %v, want 2m", p.RetryAfter)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(out.Output) != tt.wantOut || out.Connector != "github" || out.Version != "1.0.0" || out.CorrelationID != wantID {
				t.Errorf("response = %+v (output %s)", out, out.Output)
			}
		})
	}
}

func TestConnections(t *testing.T) {
	s, c := setup(t)
	ctx := t.Context()
	mustUpload(t, c, manifest("github", "1.0.0", "https://api.github.com"), false)

	conn, err := c.CreateConnection(ctx, plugboard.ConnectionRequest{
		ID: "gh-main", Connectors: []string{"github"}, Params: map[string]any{"base_url": "https://api.github.com"},
		Auth:    plugboard.Auth{Type: plugboard.AuthAPIKey, APIKey: "ghp_secret"},
		Secrets: map[string]string{"signing_secret": "shh"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if conn.Status != plugboard.StatusReady || !slices.Equal(conn.Hosts, []string{"https://api.github.com"}) || conn.Auth.Type != "api_key" || conn.CreatedAt.IsZero() {
		t.Errorf("created = %+v", conn)
	}
	if key, _, _, secrets, _ := s.Secret("gh-main"); key != "ghp_secret" || secrets["signing_secret"] != "shh" {
		t.Errorf("server stored key %q, secrets %v", key, secrets)
	}
	if strings.Contains(string(conn.Raw), "ghp_secret") {
		t.Error("the answer carries the secret")
	}

	_, err = c.CreateConnection(ctx, plugboard.ConnectionRequest{ID: "x", Connectors: []string{"nope"}, Auth: plugboard.Auth{Type: plugboard.AuthNone}})
	if p := problemOf(t, err); p.Code != plugboard.CodeConnectorNotFound {
		t.Errorf("create with an unknown connector: %+v", p)
	}
	oauth, err := c.CreateConnection(ctx, plugboard.ConnectionRequest{ID: "gh-oauth", Connectors: []string{"github"},
		Auth: plugboard.Auth{Type: plugboard.AuthOAuth2, Grant: plugboard.GrantAuthorizationCode, ClientID: "cid", ClientSecret: "cs", Scopes: []string{"repo"}}})
	if err != nil {
		t.Fatal(err)
	}
	if oauth.Status != plugboard.StatusPendingConsent || oauth.ConsentURL == "" || oauth.Auth.ClientID != "cid" {
		t.Errorf("oauth connection = %+v", oauth)
	}

	list, err := c.ListConnections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "gh-main" || list[1].ID != "gh-oauth" {
		t.Errorf("list = %+v", list)
	}

	patched, err := c.PatchConnection(ctx, "gh-main", plugboard.ConnectionPatch{Hosts: []string{"https://api.github.com", "https://uploads.github.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if req := s.LastRequest(); string(req.Body) != `{"hosts":["https://api.github.com","https://uploads.github.com"]}` {
		t.Errorf("PATCH body = %s, want only hosts", req.Body)
	}
	if len(patched.Hosts) != 2 || patched.Params["base_url"] != "https://api.github.com" {
		t.Errorf("patched = %+v", patched)
	}

	rotated, err := c.RotateCredentials(ctx, "gh-main", plugboard.Credentials{Auth: plugboard.Auth{Type: plugboard.AuthBasic, Username: "u", Password: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, user, pass, _, _ := s.Secret("gh-main"); user != "u" || pass != "p" || rotated.Auth.Type != "basic" {
		t.Errorf("after rotate: user %q pass %q, answer %+v", user, pass, rotated)
	}

	got, err := c.GetConnection(ctx, "gh-main")
	if err != nil || got.Auth.Type != "basic" {
		t.Errorf("get = %+v, %v", got, err)
	}
	if err := c.DeleteConnection(ctx, "gh-main"); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetConnection(ctx, "gh-main")
	if p := problemOf(t, err); p.Code != plugboard.CodeConnectionNotFound {
		t.Errorf("after delete: %+v", p)
	}
}

func TestAuthRedactsSecrets(t *testing.T) {
	a := plugboard.Auth{Type: "api_key", APIKey: "ghp_secret", Password: "pw", ClientSecret: "cs"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		sec := plugboard.Secrets{"signing_secret": "sig_value"}
		for _, v := range []any{a, &a, plugboard.Credentials{Auth: a, Secrets: sec}, plugboard.ConnectionRequest{Auth: a, Secrets: sec}, &plugboard.ConnectionRequest{Auth: a, Secrets: sec}} {
			s := fmt.Sprintf(verb, v)
			if strings.Contains(s, "ghp_secret") || strings.Contains(s, "pw ") || strings.Contains(s, "cs ") || strings.Contains(s, "sig_value") {
				t.Errorf("%s of %T = %s", verb, v, s)
			}
		}
	}
}

func TestProblemDecoding(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    plugboard.Problem
		wantErr string
	}{
		{
			name: "problem with schema errors",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(400)
				w.Write([]byte(`{"type":"about:blank","title":"Bad Request","status":400,"code":"invalid_input","correlation_id":"c_1",
					"errors":[{"path":"/title","message":"missing property"},{"path":"/owner","message":"expected string"}],"source":"plugboard","extra":1}`))
			},
			want: plugboard.Problem{Type: "about:blank", Title: "Bad Request", Status: 400, Code: "invalid_input", CorrelationID: "c_1", Source: "plugboard",
				Errors: []plugboard.FieldError{{Path: "/title", Message: "missing property"}, {Path: "/owner", Message: "expected string"}}},
			wantErr: "invalid_input: /title: missing property (and 1 more) (HTTP 400)",
		},
		{
			name: "401 problem",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.Header().Set("X-Correlation-ID", "c_hdr")
				w.WriteHeader(401)
				w.Write([]byte(`{"title":"Unauthorized","status":401,"code":"unauthenticated","detail":"missing or invalid bearer token"}`))
			},
			want:    plugboard.Problem{Title: "Unauthorized", Status: 401, Code: "unauthenticated", Detail: "missing or invalid bearer token", CorrelationID: "c_hdr"},
			wantErr: "unauthenticated: missing or invalid bearer token (HTTP 401)",
		},
		{
			name: "HTML error page from a proxy",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(502)
				w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>"))
			},
			want:    plugboard.Problem{Title: "Bad Gateway", Status: 502},
			wantErr: "Bad Gateway (HTTP 502)",
		},
		{
			name: "plain text body with Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(503)
				w.Write([]byte("server is\nrestarting\n"))
			},
			want:    plugboard.Problem{Title: "Service Unavailable", Status: 503, Detail: "server is restarting", RetryAfter: 30 * time.Second},
			wantErr: "server is restarting (HTTP 503)",
		},
		{
			name: "JSON error that is not a problem",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(500)
				w.Write([]byte(`{"error":"boom"}`))
			},
			want:    plugboard.Problem{Title: "Internal Server Error", Status: 500, Detail: "boom"},
			wantErr: "boom (HTTP 500)",
		},
		{
			name: "broken JSON",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(500)
				w.Write([]byte(`{"code": `))
			},
			want:    plugboard.Problem{Title: "Internal Server Error", Status: 500},
			wantErr: "Internal Server Error (HTTP 500)",
		},
		{
			name: "redirects are reported, not followed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://login.example/", http.StatusFound)
			},
			want:    plugboard.Problem{Title: "Found", Status: 302, Detail: "the server answered a redirect", Location: "https://login.example/"},
			wantErr: "the server answered a redirect to https://login.example/ (HTTP 302)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugboardtest.New(t)
			s.Intercept = func(w http.ResponseWriter, r *http.Request) bool { tt.handler(w, r); return true }
			// No WithHTTPClient: the client's own, which must not follow redirects. No retries:
			// the 503 is decoded, not waited for.
			c := plugboard.New(s.URL, plugboardtest.Token, plugboard.WithMaxRetries(0))
			_, err := c.ListConnectors(plugboard.WithCorrelationID(t.Context(), "c_req"))
			got := *problemOf(t, err)
			if len(got.Raw) == 0 {
				t.Error("Problem.Raw is empty")
			}
			got.Raw = nil
			if tt.want.CorrelationID == "" {
				tt.want.CorrelationID = "c_req" // echoed in the header
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("problem =\n %+v\nwant\n %+v", got, tt.want)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantErr)
			}
		})
	}
}

func TestBadAnswersAndURLs(t *testing.T) {
	t.Run("a 200 that is not JSON names the likely cause", func(t *testing.T) {
		s := plugboardtest.New(t)
		s.Intercept = func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>welcome</html>"))
			return true
		}
		_, err := plugboard.New(s.URL, "").GetConnector(t.Context(), "github")
		if err == nil || !strings.Contains(err.Error(), "not JSON") || !strings.Contains(err.Error(), "Plugboard server") {
			t.Errorf("err = %v", err)
		}
	})
	for _, u := range []string{"127.0.0.1:8080", "ftp://x", "http://", "http://h/?q=1", "http://u:p@h/"} {
		t.Run("unusable URL "+u, func(t *testing.T) {
			err := plugboard.New(u, "").Health(t.Context())
			if err == nil || !strings.Contains(err.Error(), "invalid server URL") {
				t.Errorf("err = %v", err)
			}
		})
	}
	t.Run("a path prefix is kept", func(t *testing.T) {
		s := plugboardtest.New(t)
		var path string
		s.Intercept = func(w http.ResponseWriter, r *http.Request) bool { path = r.URL.Path; return true }
		_ = plugboard.New(s.URL+"/plugboard/", "").Health(t.Context())
		if path != "/plugboard/healthz" {
			t.Errorf("path = %q", path)
		}
	})
	t.Run("no token, no Authorization header", func(t *testing.T) {
		s := plugboardtest.New(t)
		_, err := plugboard.New(s.URL, "").ListConnectors(t.Context())
		if p := problemOf(t, err); p.Code != plugboard.CodeUnauthenticated {
			t.Errorf("problem = %+v", p)
		}
		if h := s.LastRequest().Header.Get("Authorization"); h != "" {
			t.Errorf("Authorization = %q", h)
		}
	})
	t.Run("health and ready", func(t *testing.T) {
		s := plugboardtest.New(t)
		c := plugboard.New(s.URL, "")
		if err := c.Health(t.Context()); err != nil {
			t.Error(err)
		}
		if err := c.Ready(t.Context()); err != nil {
			t.Error(err)
		}
	})
	t.Run("a cancelled context stops the call", func(t *testing.T) {
		s := plugboardtest.New(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := plugboard.New(s.URL, "").Health(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
}
