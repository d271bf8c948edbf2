package server

import (
	"testing"
)

// TestInstancesNeverSharedAcrossConnections: the spy's count action increments a global of its
// instance. Calls of one connection reuse a warm instance (the count grows); the first call of
// another connection starts from a fresh instance (count 1), whatever the first did before.
func TestInstancesNeverSharedAcrossConnections(t *testing.T) {
	up := newRecorder(t, nil)
	ts := startServer(t, nil)
	ts.must(201, ts.upload("spy"))
	for _, id := range []string{"tenant-a", "tenant-b"} {
		ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
			"id": id, "connectors": []string{"spy"}, "params": map[string]any{"base_url": up.URL},
			"auth": map[string]any{"type": "api_key", "api_key": "k-" + id},
		}))
	}
	count := func(conn string) (int, string) {
		out := ts.must(200, ts.invoke("spy", "count", map[string]any{"connection": conn})).json(t)["output"].(map[string]any)
		return int(out["calls"].(float64)), out["connection"].(string)
	}
	for i := 1; i <= 3; i++ {
		if n, c := count("tenant-a"); n != i || c != "tenant-a" {
			t.Fatalf("tenant-a call %d: instance count %d, connection %q; want a reused warm instance", i, n, c)
		}
	}
	if n, c := count("tenant-b"); n != 1 || c != "tenant-b" {
		t.Fatalf("tenant-b's first call ran on an instance that served %d calls (connection %q): instances leak across connections", n, c)
	}
	if n, _ := count("tenant-a"); n != 4 {
		t.Errorf("tenant-a's warm instance was lost: count %d", n)
	}
}
