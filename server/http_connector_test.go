package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestHTTPConnectorEndToEnd uploads the bundled http connector, creates an api_key connection to
// a loopback upstream, and invokes it over real HTTP: the upstream sees the injected credential,
// the plugin's view of the call never contains it.
func TestHTTPConnectorEndToEnd(t *testing.T) {
	const secret = "sk-live-DO-NOT-LEAK-123"
	var mu sync.Mutex
	var seenAuth []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenAuth = append(seenAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "q": r.URL.Query().Get("q"), "method": r.Method})
	}))
	defer upstream.Close()

	ts := startServer(t, nil)
	up := ts.must(201, ts.upload("http")).json(t)
	if up["name"] != "http" || up["active"] != true || !strings.HasPrefix(up["digest"].(string), "sha256:") {
		t.Fatalf("upload answered %v", up)
	}
	// The same bytes again: 200, nothing new.
	ts.must(200, ts.upload("http"))

	conn := ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "up", "connectors": []string{"http"}, "params": map[string]any{"base_url": upstream.URL + "/api"},
		"auth": map[string]any{"type": "api_key", "api_key": secret},
	}))
	if strings.Contains(string(conn.Body), secret) {
		t.Fatalf("connection response shows the secret: %s", conn.Body)
	}
	if hosts := conn.json(t)["hosts"].([]any); len(hosts) != 1 || hosts[0] != upstream.URL {
		t.Errorf("connection hosts = %v, want [%s]", hosts, upstream.URL)
	}

	r := ts.must(200, ts.invoke("http", "request", map[string]any{
		"connection": "up", "input": map[string]any{"method": "GET", "path": "/items", "query": map[string]any{"q": "1"}},
	}))
	out := r.json(t)
	if out["connector"] != "http" || out["version"] != "1.0.0" || out["correlation_id"] != r.Header.Get("X-Correlation-ID") {
		t.Errorf("envelope = %v", out)
	}
	o := out["output"].(map[string]any)
	if o["status"].(float64) != 200 || o["body"].(map[string]any)["path"] != "/api/items" || o["body"].(map[string]any)["q"] != "1" {
		t.Errorf("output = %v", o)
	}
	if strings.Contains(string(r.Body), secret) {
		t.Errorf("the response shows the secret")
	}
	mu.Lock()
	if len(seenAuth) != 1 || seenAuth[0] != "Bearer "+secret {
		t.Errorf("upstream saw Authorization %q, want the injected key", seenAuth)
	}
	mu.Unlock()

	// Schema validation happens before the plugin runs.
	bad := ts.must(400, ts.invoke("http", "request", map[string]any{"connection": "up", "input": map[string]any{"method": "BREW"}}))
	p := bad.json(t)
	if p["code"] != "invalid_input" || len(p["errors"].([]any)) == 0 || !strings.Contains(p["detail"].(string), "input.method") {
		t.Errorf("invalid input problem = %v", p)
	}

	// The call shows in /metrics: by connector, version, action and outcome; egress by origin.
	m := string(ts.must(200, ts.do("GET", "/metrics", nil, "Authorization", "")).Body)
	for _, want := range []string{
		`plugboard_action_calls_total{connector="http",version="1.0.0",action="request",code="ok"} 1`,
		`plugboard_egress_requests_total{connector="http",origin="` + upstream.URL + `",status="200"} 1`,
		`plugboard_action_duration_seconds_count{connector="http",version="1.0.0",action="request"} 1`,
		`plugboard_pool_instances{connector="http",version="1.0.0",state="idle"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(m, secret) {
		t.Error("/metrics shows the secret")
	}

	// Connection rules.
	if c := ts.invoke("http", "request", map[string]any{"connection": "nope"}).code(t); c != "connection_not_found" {
		t.Errorf("unknown connection: %s", c)
	}
	if c := ts.invoke("http", "nope", map[string]any{"connection": "up"}).code(t); c != "action_not_found" {
		t.Errorf("unknown action: %s", c)
	}
}
