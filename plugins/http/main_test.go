package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
)

// echo answers every request with a JSON description of what it received.
func echo(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/v1/text":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout")
			return
		case "/v1/binary":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write([]byte{0xff, 0xfe, 0x00})
			return
		case "/v1/broken-json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "{not json")
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		if r.URL.Path == "/v1/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
		json.NewEncoder(w).Encode(map[string]any{
			"method":        r.Method,
			"path":          r.URL.EscapedPath(),
			"query":         r.URL.Query(),
			"authorization": r.Header.Get("Authorization"),
			"content_type":  r.Header.Get("Content-Type"),
			"x_custom":      r.Header.Get("X-Custom"),
			"body":          string(body),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type echoed struct {
	Method        string              `json:"method"`
	Path          string              `json:"path"`
	Query         map[string][]string `json:"query"`
	Authorization string              `json:"authorization"`
	ContentType   string              `json:"content_type"`
	XCustom       string              `json:"x_custom"`
	Body          string              `json:"body"`
}

type output struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       json.RawMessage   `json:"body"`
	BodyBase64 string            `json:"body_base64"`
}

func harness(t *testing.T, baseURL string, cred pdktest.Credential) *pdktest.Harness {
	return pdktest.New(t, pdktest.Options{
		Connection: &abi.Connection{ID: "api", Params: map[string]any{"base_url": baseURL}},
		Credential: cred,
	})
}

func TestManifest(t *testing.T) {
	m := harness(t, "https://api.example.com", pdktest.Credential{}).Describe()
	if m.Name != "http" || len(m.Actions) != 1 || m.Actions[0].Name != "request" {
		t.Errorf("manifest = %+v", m)
	}
	if len(m.Hosts) != 1 || m.Hosts[0] != "{base_url}" {
		t.Errorf("hosts = %v", m.Hosts)
	}
}

func TestRequest(t *testing.T) {
	srv := echo(t)
	tests := []struct {
		name  string
		cred  pdktest.Credential
		input map[string]any
		check func(t *testing.T, out output, got echoed)
	}{
		{
			name:  "a GET joins the base path and the query",
			input: map[string]any{"path": "/users/42?expand=teams", "query": map[string]string{"fields": "name,email"}},
			check: func(t *testing.T, out output, got echoed) {
				if out.Status != 200 || got.Method != "GET" || got.Path != "/v1/users/42" ||
					got.Query["expand"][0] != "teams" || got.Query["fields"][0] != "name,email" || got.Query["v"][0] != "1" {
					t.Errorf("got %+v", got)
				}
				if out.Headers["Content-Type"] != "application/json; charset=utf-8" || out.Headers["X-Multi"] != "a, b" {
					t.Errorf("headers = %v", out.Headers)
				}
			},
		},
		{
			name:  "a JSON body is sent as JSON",
			input: map[string]any{"method": "POST", "path": "/items", "body": json.RawMessage(`{"name":"x","n":12345678901234567}`)},
			check: func(t *testing.T, out output, got echoed) {
				if got.Method != "POST" || got.ContentType != "application/json" || got.Body != `{"name":"x","n":12345678901234567}` {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name:  "a string body is sent as it is with the caller's content type",
			input: map[string]any{"method": "PUT", "path": "/raw", "body": "a=1&b=2", "headers": map[string]string{"content-type": "application/x-www-form-urlencoded", "X-Custom": "yes"}},
			check: func(t *testing.T, out output, got echoed) {
				if got.Body != "a=1&b=2" || got.ContentType != "application/x-www-form-urlencoded" || got.XCustom != "yes" {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name:  "an escaped slash in the path survives",
			input: map[string]any{"path": "/files/a%2Fb"},
			check: func(t *testing.T, out output, got echoed) {
				if got.Path != "/v1/files/a%2Fb" {
					t.Errorf("path = %q", got.Path)
				}
			},
		},
		{
			name:  "an api_key is injected as a bearer token",
			cred:  pdktest.Credential{APIKey: "k-123"},
			input: map[string]any{"path": "/me", "headers": map[string]string{"Authorization": "forged"}},
			check: func(t *testing.T, out output, got echoed) {
				if got.Authorization != "Bearer k-123" {
					t.Errorf("authorization = %q", got.Authorization)
				}
			},
		},
		{
			name:  "basic auth is injected",
			cred:  pdktest.Credential{Username: "ann", Password: "pw"},
			input: map[string]any{"path": "/me"},
			check: func(t *testing.T, out output, got echoed) {
				if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("ann:pw")); got.Authorization != want {
					t.Errorf("authorization = %q, want %q", got.Authorization, want)
				}
			},
		},
		{
			name:  "an error status is output, not an error",
			input: map[string]any{"path": "/missing"},
			check: func(t *testing.T, out output, got echoed) {
				if out.Status != 404 || got.Path != "/v1/missing" {
					t.Errorf("status %d, got %+v", out.Status, got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := harness(t, srv.URL+"/v1/?v=1", tt.cred)
			var out output
			if err := h.InvokeInto("request", tt.input, &out); err != nil {
				t.Fatal(err)
			}
			var got echoed
			if err := json.Unmarshal(out.Body, &got); err != nil {
				t.Fatalf("body %s: %v", out.Body, err)
			}
			tt.check(t, out, got)
		})
	}
}

func TestResponseBodies(t *testing.T) {
	srv := echo(t)
	h := harness(t, srv.URL+"/v1", pdktest.Credential{})
	tests := []struct {
		path, body, base64 string
		status             int
	}{
		{"/text", `"short and stout"`, "", 418},
		{"/binary", "", "//4A", 200},
		{"/broken-json", `"{not json"`, "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var out output
			if err := h.InvokeInto("request", map[string]any{"path": tt.path}, &out); err != nil {
				t.Fatal(err)
			}
			if out.Status != tt.status || string(out.Body) != tt.body || out.BodyBase64 != tt.base64 {
				t.Errorf("got %d %s %q", out.Status, out.Body, out.BodyBase64)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	srv := echo(t)
	tests := []struct {
		name  string
		base  string
		input map[string]any
		code  string
	}{
		{"a path that is a URL is refused by the schema", srv.URL, map[string]any{"path": "https://evil.example/x"}, abi.CodeInvalidInput},
		{"a path without a leading slash is refused", srv.URL, map[string]any{"path": "users"}, abi.CodeInvalidInput},
		{"an unknown method is refused by the schema", srv.URL, map[string]any{"method": "BREW"}, abi.CodeInvalidInput},
		{"an unknown input field is refused", srv.URL, map[string]any{"verb": "GET"}, abi.CodeInvalidInput},
		{"an unreachable upstream is unavailable", "http://127.0.0.1:1", map[string]any{"path": "/"}, abi.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := harness(t, tt.base, pdktest.Credential{}).Invoke("request", tt.input)
			if err == nil || err.Code != tt.code {
				t.Errorf("got %+v, want %s", err, tt.code)
			}
		})
	}
}

func TestWithoutAConnection(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{})
	_, err := h.Invoke("request", map[string]any{"path": "/"})
	if err == nil || err.Code != abi.CodeInvalidInput {
		t.Errorf("got %+v", err)
	}
}

func TestBuildURL(t *testing.T) {
	tests := []struct {
		base, path string
		query      map[string]string
		want       string
	}{
		{"https://api.example.com", "/users", nil, "https://api.example.com/users"},
		{"https://api.example.com/", "/users", nil, "https://api.example.com/users"},
		{"https://api.example.com/v2/", "", nil, "https://api.example.com/v2"},
		{"https://api.example.com/v2?key=1", "/x?b=2", map[string]string{"a": "1 2"}, "https://api.example.com/v2/x?a=1+2&b=2&key=1"},
		{"https://api.example.com", "/a b", nil, "https://api.example.com/a%20b"},
	}
	for _, tt := range tests {
		got, err := buildURL(tt.base, tt.path, tt.query)
		if err != nil || got != tt.want {
			t.Errorf("buildURL(%q, %q) = %q, %v; want %q", tt.base, tt.path, got, err, tt.want)
		}
	}
}
