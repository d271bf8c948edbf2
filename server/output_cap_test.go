package server

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestGuestOutputCapped: a document a guest writes to the host (action output, poll result)
// is refused past the cap, 10 MiB by default, before the host copies it out of guest memory:
// 502 plugin_failed naming the size and the cap. A manifest's limits.output_bytes lowers the
// cap and the server's MaxOutputBytes sets it; documents under the cap pass, and the instance
// that wrote too much is not reused.
func TestGuestOutputCapped(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.upload("flood"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "f1", "connectors": []string{"flood"}, "auth": map[string]any{"type": "none"}}))
	big := func(ts *testServer, n int) response {
		t.Helper()
		return ts.invoke("flood", "big", map[string]any{"connection": "f1", "input": map[string]any{"bytes": n}})
	}
	wantCapped := func(t *testing.T, r response, size, cap int) {
		t.Helper()
		if r.Status != http.StatusBadGateway {
			t.Fatalf("status %d, want 502: %.300s", r.Status, r.Body)
		}
		p := r.json(t)
		detail, _ := p["detail"].(string)
		if p["code"] != "plugin_failed" || !strings.Contains(detail, strconv.Itoa(size)+" bytes") || !strings.Contains(detail, "cap of "+strconv.Itoa(cap)+" bytes") {
			t.Errorf("problem = %s, want plugin_failed naming %d bytes and the cap of %d bytes", r.Body, size, cap)
		}
	}

	t.Run("40 MiB action output over the default cap", func(t *testing.T) {
		r := big(ts, 40<<20)
		wantCapped(t, r, 40<<20, 10<<20)
		if len(r.Body) > 4096 {
			t.Errorf("the refusal is %d bytes long", len(r.Body))
		}
		ts.must(200, ts.invoke("flood", "ok", map[string]any{"connection": "f1", "input": map[string]any{}}))
	})
	t.Run("1 MiB action output under the cap", func(t *testing.T) {
		r := ts.must(200, big(ts, 1<<20))
		if s, _ := r.json(t)["output"].(map[string]any)["s"].(string); len(s) < 1<<19 {
			t.Errorf("output of %d bytes", len(s))
		}
	})
	t.Run("poll result over the cap fails the baseline poll", func(t *testing.T) {
		r := ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "flood", "trigger": "big_poll", "connection": "f1",
			"params": map[string]any{"bytes": 12 << 20}, "delivery": map[string]any{"type": "queue"}})
		wantCapped(t, r, 12<<20, 10<<20)
		if list := ts.must(200, ts.do("GET", "/v1/subscriptions", nil)).json(t)["subscriptions"].([]any); len(list) != 0 {
			t.Errorf("a refused baseline poll left %d subscriptions", len(list))
		}
	})
	t.Run("manifest limits.output_bytes lowers the cap", func(t *testing.T) {
		ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.0.0", `"limits":{"output_bytes":1024}`))))
		ts.must(200, ts.invoke("anymanifest", "echo", map[string]any{"input": map[string]any{"n": 1}}))
		r := ts.invoke("anymanifest", "echo", map[string]any{"input": map[string]any{"n": 1, "pad": strings.Repeat("p", 2000)}})
		if r.Status != http.StatusBadGateway || !strings.Contains(string(r.Body), "cap of 1024 bytes") {
			t.Errorf("echo of 2000 bytes under a 1024-byte cap: %d %s", r.Status, r.Body)
		}
	})
	t.Run("the server maximum caps the manifest", func(t *testing.T) {
		small := startServer(t, func(o *Options) { o.Host.MaxOutputBytes = 2 << 20 })
		small.must(201, small.upload("flood"))
		small.must(201, small.do("POST", "/v1/connections", map[string]any{
			"id": "f1", "connectors": []string{"flood"}, "auth": map[string]any{"type": "none"}}))
		wantCapped(t, big(small, 3<<20), 3<<20, 2<<20)
		small.must(200, big(small, 1<<20))
	})
}
