package egress

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

func TestAllowList(t *testing.T) {
	up := newUpstream(t, nil)
	res := newResolver().
		set("api.example.test", "127.0.0.1").
		set("deep.api.example.test", "127.0.0.1").
		set("example.test", "127.0.0.1").
		set("other.test", "127.0.0.1")
	api := up.origin("api.example.test")

	tests := []struct {
		name       string
		grant      *Grant
		url        string
		wantCode   string   // "" expects 200
		wantInMsg  []string // parts of the error message
		wantLookup bool     // the name was resolved (the request got past the allow-list)
	}{
		{
			name:       "host in manifest and connection is allowed",
			grant:      &Grant{ManifestOrigins: []string{api}, ConnectionOrigins: []string{api}},
			url:        up.url("api.example.test", "/x"),
			wantLookup: true,
		},
		{
			name:      "host not in the manifest is refused",
			grant:     &Grant{ManifestOrigins: []string{up.origin("other.test")}, ConnectionOrigins: []string{api}},
			url:       up.url("api.example.test", "/x"),
			wantCode:  "host_not_allowed",
			wantInMsg: []string{api, "manifest"},
		},
		{
			name:      "host in manifest but not in connection is refused",
			grant:     &Grant{ManifestOrigins: []string{api}, ConnectionOrigins: []string{up.origin("other.test")}},
			url:       up.url("api.example.test", "/x"),
			wantCode:  "host_not_allowed",
			wantInMsg: []string{api, "connection"},
		},
		{
			name:       "wildcard origin matches subdomain",
			grant:      &Grant{ManifestOrigins: []string{up.origin("*.example.test")}},
			url:        up.url("deep.api.example.test", "/x"),
			wantLookup: true,
		},
		{
			name:     "wildcard origin does not match the bare domain",
			grant:    &Grant{ManifestOrigins: []string{up.origin("*.example.test")}},
			url:      up.url("example.test", "/x"),
			wantCode: "host_not_allowed",
		},
		{
			name:     "scheme is part of the origin",
			grant:    &Grant{ManifestOrigins: []string{strings.Replace(api, "http:", "https:", 1)}},
			url:      up.url("api.example.test", "/x"),
			wantCode: "host_not_allowed",
		},
		{
			name:     "port is part of the origin",
			grant:    &Grant{ManifestOrigins: []string{"http://api.example.test"}},
			url:      up.url("api.example.test", "/x"),
			wantCode: "host_not_allowed",
		},
		{
			name:       "host name case does not matter",
			grant:      &Grant{ManifestOrigins: []string{api}},
			url:        up.url("API.Example.TEST", "/x"),
			wantLookup: true,
		},
		{
			name:       "nil connection origins leave the manifest alone to decide",
			grant:      &Grant{ManifestOrigins: []string{api}},
			url:        up.url("api.example.test", "/x"),
			wantLookup: true,
		},
		{
			name:     "empty connection origins allow nothing",
			grant:    &Grant{ManifestOrigins: []string{api}, ConnectionOrigins: []string{}},
			url:      up.url("api.example.test", "/x"),
			wantCode: "host_not_allowed",
		},
		{
			name:     "nil grant allows nothing",
			grant:    nil,
			url:      up.url("api.example.test", "/x"),
			wantCode: "host_not_allowed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver()
			r.answers = res.answers
			c, dials := newClient(t, Config{AllowNetworks: loopback, Resolver: r})
			var rec records
			got := c.Do(context.Background(), tt.grant, NewBudget(10), get(tt.url), rec.add)
			if tt.wantCode == "" {
				wantOK(t, got, http.StatusOK)
			} else {
				wantErr(t, got, tt.wantCode, tt.wantInMsg...)
			}
			if looked := r.total() > 0; looked != tt.wantLookup {
				t.Errorf("resolved = %v, want %v", looked, tt.wantLookup)
			}
			if !tt.wantLookup && len(dials.list()) > 0 {
				t.Errorf("dialed %v for a refused request", dials.list())
			}
			if out := rec.list(); len(out) != 1 || (out[0].Err == "") != (tt.wantCode == "") {
				t.Errorf("records = %+v, want one", out)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	const origin = "https://api.example.test"
	tests := []struct {
		name     string
		req      *abi.HTTPRequest
		maxBody  int64
		wantCode string
		notInMsg string // a part of the request the message must not repeat
	}{
		{name: "missing request", req: nil, wantCode: "invalid_request"},
		{name: "lower-case method", req: &abi.HTTPRequest{Method: "get", URL: origin}, wantCode: "invalid_request"},
		{name: "method with a space", req: &abi.HTTPRequest{Method: "GET /", URL: origin}, wantCode: "invalid_request"},
		{name: "CONNECT is refused", req: &abi.HTTPRequest{Method: "CONNECT", URL: origin}, wantCode: "invalid_request"},
		{name: "TRACE is refused", req: &abi.HTTPRequest{Method: "TRACE", URL: origin}, wantCode: "invalid_request"},
		{name: "relative URL", req: get("/repos/o/r"), wantCode: "invalid_request"},
		{name: "scheme-relative URL", req: get("//api.example.test/x"), wantCode: "invalid_request"},
		{name: "ftp URL", req: get("ftp://api.example.test/x"), wantCode: "invalid_request"},
		{name: "opaque URL", req: get("https:api.example.test"), wantCode: "invalid_request"},
		{name: "unparsable URL", req: get("https://api.example.test/%zz"), wantCode: "invalid_request"},
		{name: "user info in URL", req: get("https://bob:hunter2@api.example.test/x"), wantCode: "invalid_request", notInMsg: "hunter2"},
		{name: "port out of range", req: get("https://api.example.test:70000/"), wantCode: "invalid_request"},
		{name: "port zero", req: get("https://api.example.test:0/"), wantCode: "invalid_request"},
		{name: "missing host", req: get("https://:443/"), wantCode: "invalid_request"},
		{name: "both body and body_base64", req: &abi.HTTPRequest{Method: "POST", URL: origin, Body: ptr("a"), BodyBase64: ptr("YQ==")}, wantCode: "invalid_request"},
		{name: "bad base64", req: &abi.HTTPRequest{Method: "POST", URL: origin, BodyBase64: ptr("not base64!")}, wantCode: "invalid_request"},
		{name: "unpadded base64", req: &abi.HTTPRequest{Method: "POST", URL: origin, BodyBase64: ptr("YQ")}, wantCode: "invalid_request"},
		{name: "body over MaxRequestBytes is too_large", req: &abi.HTTPRequest{Method: "POST", URL: origin, Body: ptr("12345")}, maxBody: 4, wantCode: "too_large"},
		{name: "base64 body over MaxRequestBytes is too_large", req: &abi.HTTPRequest{Method: "POST", URL: origin, BodyBase64: ptr("MTIzNDU=")}, maxBody: 4, wantCode: "too_large"},
		{name: "negative timeout", req: &abi.HTTPRequest{Method: "GET", URL: origin, TimeoutMS: -1}, wantCode: "invalid_request"},
		{name: "header value with CRLF", req: &abi.HTTPRequest{Method: "GET", URL: origin, Headers: map[string]string{"X-A": "a\r\nX-Injected: 1"}}, wantCode: "invalid_request"},
		{name: "header name with a colon", req: &abi.HTTPRequest{Method: "GET", URL: origin, Headers: map[string]string{":authority": "evil"}}, wantCode: "invalid_request"},
		{name: "empty header name", req: &abi.HTTPRequest{Method: "GET", URL: origin, Headers: map[string]string{"": "x"}}, wantCode: "invalid_request"},
		{name: "header names differing only in case", req: &abi.HTTPRequest{Method: "GET", URL: origin, Headers: map[string]string{"accept": "a", "Accept": "b"}}, wantCode: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := newResolver()
			c, dials := newClient(t, Config{Resolver: res, MaxRequestBytes: tt.maxBody})
			b := NewBudget(10)
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{origin}}, b, tt.req, nil)
			wantErr(t, got, tt.wantCode)
			if tt.notInMsg != "" && strings.Contains(got.Error.Message, tt.notInMsg) {
				t.Errorf("message %q repeats %q", got.Error.Message, tt.notInMsg)
			}
			if res.total() != 0 || len(dials.list()) != 0 || b.Used() != 0 {
				t.Errorf("an invalid request was resolved, dialed or charged")
			}
		})
	}
}

func TestValidRequestsPass(t *testing.T) {
	tests := []struct {
		name string
		req  abi.HTTPRequest
	}{
		{name: "empty method means GET", req: abi.HTTPRequest{URL: "https://a.example/"}},
		{name: "extension method", req: abi.HTTPRequest{Method: "PROPFIND", URL: "https://a.example/"}},
		{name: "fragment is dropped", req: abi.HTTPRequest{Method: "GET", URL: "https://a.example/x#frag"}},
		{name: "IPv6 literal", req: abi.HTTPRequest{Method: "GET", URL: "https://[2001:4860::8888]:8443/"}},
		{name: "tab in header value", req: abi.HTTPRequest{Method: "GET", URL: "https://a.example/", Headers: map[string]string{"X-A": "a\tb"}}},
		{name: "empty body", req: abi.HTTPRequest{Method: "POST", URL: "https://a.example/", Body: ptr("")}},
		{name: "huge timeout", req: abi.HTTPRequest{Method: "GET", URL: "https://a.example/", TimeoutMS: 1 << 62}},
	}
	c := New(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, e := c.prepare(&tt.req)
			if e != nil {
				t.Fatalf("prepare: %v", e)
			}
			if p.url.Fragment != "" || p.method == "" {
				t.Errorf("prepared %+v", p)
			}
		})
	}
}
