package server

import (
	"net/http"
	"strings"
	"testing"
)

func TestAuthRequired(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct{ name, header string }{
		{"no token", ""},
		{"wrong token", "Bearer nope"},
		{"basic scheme", "Basic " + testToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do("GET", "/v1/connectors", nil, "Authorization", tc.header)
			if r.Status != http.StatusUnauthorized || r.code(t) != "unauthenticated" {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
	// An unknown /v1 path without a token reveals nothing either.
	if r := ts.do("GET", "/v1/nope", nil, "Authorization", ""); r.Status != http.StatusUnauthorized {
		t.Errorf("unknown path without token: %d", r.Status)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := ts.do("GET", path, nil, "Authorization", ""); r.Status != http.StatusOK {
			t.Errorf("%s without token: %d %s", path, r.Status, r.Body)
		}
	}
}

// TestMetricsHaveHelp: every metric family says what it counts.
func TestMetricsHaveHelp(t *testing.T) {
	ts := startServer(t, nil)
	body := string(ts.must(200, ts.do("GET", "/metrics", nil, "Authorization", "")).Body)
	families := 0
	for _, line := range strings.Split(body, "\n") {
		name, help, ok := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
		if !strings.HasPrefix(line, "# HELP ") {
			continue
		}
		families++
		if !ok || strings.TrimSpace(help) == "" {
			t.Errorf("metric %s has no help text: add it to the help map in metrics.go", name)
		}
	}
	if families < 5 {
		t.Fatalf("only %d metric families in /metrics:\n%s", families, body)
	}
}

func TestCorrelationID(t *testing.T) {
	ts := startServer(t, nil)
	r := ts.do("GET", "/v1/connectors/nope", nil, "X-Correlation-ID", "req-42")
	if got := r.Header.Get("X-Correlation-ID"); got != "req-42" {
		t.Errorf("echoed correlation id = %q", got)
	}
	p := r.json(t)
	if p["correlation_id"] != "req-42" || p["code"] != "connector_not_found" || p["source"] != "plugboard" || p["status"].(float64) != 404 {
		t.Errorf("problem = %v", p)
	}
	r = ts.do("GET", "/v1/connectors", nil, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if got := r.Header.Get("X-Correlation-ID"); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("correlation id from traceparent = %q", got)
	}
	r = ts.do("GET", "/v1/connectors", nil)
	if got := r.Header.Get("X-Correlation-ID"); !strings.HasPrefix(got, "c_") || len(got) != 28 {
		t.Errorf("generated correlation id = %q", got)
	}
}

func TestBadRequests(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxUploadBytes = 1 << 20 })
	tests := []struct {
		name           string
		method, path   string
		body           any
		status         int
		code           string
		detailContains string
	}{
		{"upload not wasm", "POST", "/v1/connectors", []byte("hello, world"), 400, "invalid_wasm", "\\0asm"},
		{"upload truncated wasm", "POST", "/v1/connectors", []byte("\x00asm\x01\x00\x00\x00\x01\x05\x01\x60"), 400, "invalid_wasm", "does not compile"},
		{"upload empty", "POST", "/v1/connectors", []byte{}, 400, "invalid_wasm", ""},
		{"upload over the cap", "POST", "/v1/connectors", make([]byte, 1<<20+1), 413, "too_large", "limit"},
		{"upload as json", "POST", "/v1/connectors", `{}`, 415, "unsupported_media_type", "application/wasm"},
		{"unknown field", "POST", "/v1/connections", `{"id":"x","connectors":["a"],"auth":{"type":"none"},"colour":1}`, 400, "invalid_request", "colour"},
		{"empty body", "POST", "/v1/connections", ``, 400, "invalid_request", "empty"},
		{"not json", "POST", "/v1/connections", `{"id":`, 400, "invalid_request", ""},
		{"null body", "POST", "/v1/connections", `null`, 400, "invalid_request", "not null"},
		{"array body", "POST", "/v1/connections", `[{"id":"x"}]`, 400, "invalid_request", "not an array"},
		{"garbage body", "POST", "/v1/connections", `nope`, 400, "invalid_request", "invalid"},
		{"connection without auth", "POST", "/v1/connections", `{"id":"x","connectors":["a"]}`, 400, "invalid_request", "auth"},
		{"connection for unknown connector", "POST", "/v1/connections", `{"id":"x","connectors":["nope"],"auth":{"type":"none"}}`, 404, "connector_not_found", "nope"},
		{"connection with bad id", "POST", "/v1/connections", `{"id":"../x","connectors":["a"],"auth":{"type":"none"}}`, 400, "invalid_request", "id"},
		{"unknown connection", "GET", "/v1/connections/nope", nil, 404, "connection_not_found", "nope"},
		{"invoke unknown connector", "POST", "/v1/connectors/nope/actions/x", `{}`, 404, "connector_not_found", ""},
		{"activate without version", "PUT", "/v1/connectors/nope/active", `{}`, 400, "invalid_request", "version"},
		{"unknown endpoint", "GET", "/v1/nope", nil, 404, "not_found", ""},
		{"wrong method", "DELETE", "/v1/connectors", nil, 405, "method_not_allowed", ""},
		{"bad activate query", "POST", "/v1/connectors?activate=maybe", []byte("\x00asm"), 400, "invalid_request", "activate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, tt.body)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			p := r.json(t)
			if p["code"] != tt.code {
				t.Errorf("code %v, want %s", p["code"], tt.code)
			}
			if d, _ := p["detail"].(string); !strings.Contains(d, tt.detailContains) {
				t.Errorf("detail %q does not mention %q", d, tt.detailContains)
			}
			if p["correlation_id"] == "" || p["type"] != "about:blank" || p["title"] == "" {
				t.Errorf("incomplete problem document: %s", r.Body)
			}
		})
	}
}
