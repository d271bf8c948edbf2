package server

import (
	"testing"
)

// TestScopedInvokerSubscriptions: a subscription belongs to the key that created it; another
// invoker can neither read, consume nor delete it, a reader reads it, and a key scoped to its
// connection cannot subscribe with another.
func TestScopedInvokerSubscriptions(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, nil)
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{"id": "feed-b", "connectors": []string{"trig"},
		"auth": map[string]any{"type": "none"}, "params": map[string]any{"base_url": f.URL}}))
	_, a := ts.createKey("app-a", roleInvoker, map[string]any{"connections": []string{"feed"}})
	_, b := ts.createKey("app-b", roleInvoker, nil)
	_, rd := ts.createKey("ops", roleReader, nil)
	body := func(conn string) map[string]any {
		return map[string]any{"connector": "trig", "trigger": "items", "connection": conn, "interval_s": 1, "delivery": map[string]any{"type": "queue"}}
	}
	sub := ts.must(201, ts.do("POST", "/v1/subscriptions", body("feed"), asKey(a)...)).json(t)["id"].(string)
	if r := ts.do("POST", "/v1/subscriptions", body("feed-b"), asKey(a)...); r.Status != 403 || r.code(t) != codeForbidden {
		t.Errorf("subscribing with another connection: %d %s", r.Status, r.Body)
	}
	ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil, asKey(a)...))
	ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub+"/events", nil, asKey(a)...))
	ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil, asKey(rd)...))
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/subscriptions/" + sub},
		{"GET", "/v1/subscriptions/" + sub + "/events"},
		{"PATCH", "/v1/subscriptions/" + sub},
		{"DELETE", "/v1/subscriptions/" + sub},
	} {
		if r := ts.do(c.method, c.path, nil, asKey(b)...); r.Status != 403 && r.Status != 404 {
			t.Errorf("another key's %s %s: %d %s", c.method, c.path, r.Status, r.Body)
		}
	}
	if r := ts.do("PATCH", "/v1/subscriptions/"+sub, map[string]any{"interval_s": 5}, asKey(rd)...); r.Status != 403 {
		t.Errorf("a reader's PATCH: %d %s", r.Status, r.Body)
	}
	ts.must(200, ts.do("PATCH", "/v1/subscriptions/"+sub, map[string]any{"interval_s": 5}, asKey(a)...))
	if l := ts.must(200, ts.do("GET", "/v1/subscriptions", nil, asKey(b)...)).json(t)["subscriptions"].([]any); len(l) != 0 {
		t.Errorf("another key lists %v", l)
	}
	ts.must(204, ts.do("DELETE", "/v1/subscriptions/"+sub, nil, asKey(a)...))
}
