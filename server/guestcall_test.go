package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Every kind of guest call takes one prepared-call path (registry.Prepare): these tests pin
// what that path promises for the kinds that used to stitch their own checks.

// A timer set with a connection never runs the connector with that connection once the
// connection no longer names the connector: unbinding cancels the connector's timers there.
func TestTimersFollowTheConnectionBinding(t *testing.T) {
	up := newFeed(t)
	ts := startServer(t, func(o *Options) { o.Triggers.Tick = 20 * time.Millisecond })
	ts.must(201, ts.upload("spy"))
	ts.must(201, ts.upload("trig")) // another connector for c to name instead of the spy
	for _, id := range []string{"c", "marker"} {
		ts.must(201, ts.do("POST", "/v1/connections", map[string]any{"id": id, "connectors": []string{"spy"},
			"auth": map[string]any{"type": "api_key", "api_key": "k"}, "params": map[string]any{"base_url": up.URL}}))
	}
	set := func(conn, name string, delay int) {
		out := ts.must(200, ts.invoke("spy", "timer", map[string]any{"connection": conn, "input": map[string]any{"op": "set", "name": name, "delay_ms": delay}})).json(t)["output"].(map[string]any)
		if out["error"] != nil {
			t.Fatalf("setting timer %s: %v", name, out["error"])
		}
	}
	lastTimer := func(conn string) string {
		out := ts.must(200, ts.invoke("spy", "kv", map[string]any{"connection": conn, "input": map[string]any{"op": "get", "key": "spy:last_timer"}})).json(t)["output"].(map[string]any)
		var ev struct {
			Name string `json:"name"`
		}
		switch v := out["value"].(type) {
		case map[string]any:
			b, _ := json.Marshal(v)
			_ = json.Unmarshal(b, &ev)
		case string:
			_ = json.Unmarshal([]byte(v), &ev)
		}
		return ev.Name
	}
	set("c", "late", 1000)
	set("marker", "marker", 2500) // due after "late": once it fired, "late" had its chance
	ts.must(200, ts.do("PATCH", "/v1/connections/c", map[string]any{"connectors": []string{"trig"}}))
	eventually(t, 15*time.Second, "the marker timer to fire", func() bool { return lastTimer("marker") == "marker" })
	ts.must(200, ts.do("PATCH", "/v1/connections/c", map[string]any{"connectors": []string{"spy"}}))
	if got := lastTimer("c"); got != "" {
		t.Fatalf("timer %q ran the spy with connection c after c stopped naming the spy", got)
	}
	// Bound again, new timers work as before.
	set("c", "again", 1000)
	eventually(t, 15*time.Second, "a timer set after binding again", func() bool { return lastTimer("c") == "again" })
}

// A hosted MCP server (servlet) refuses to run with a connection that needs consent again, as
// actions do: no token request and no upstream call, and a tool error that says what to do.
func TestServletCallsRefuseAConnectionThatNeedsConsent(t *testing.T) {
	e := newOAuthEnv(t, nil)
	e.must(201, e.upload("mcpspy"))
	doc := e.createOAuth("oa", map[string]any{"connectors": []string{"spy", "mcpspy"}})
	if _, r := e.consent(doc["consent_url"].(string)); r.Status != 200 {
		t.Fatalf("consent: %d %s", r.Status, r.Body)
	}
	tok := e.must(201, e.do("POST", "/v1/mcp-servers", map[string]any{"name": "spy-tools", "connector": "mcpspy", "connection": "oa"})).json(t)["token"].(string)
	sess := mcpConnect(t, e.http.URL+"/mcp/spy-tools", tok, nil)
	ctx := context.Background()
	callMe := func() *mcp.CallToolResult {
		res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "me", Arguments: map[string]any{}})
		if err != nil {
			t.Fatalf("tools/call: %v", err)
		}
		return res
	}
	if res := callMe(); res.IsError || res.StructuredContent.(map[string]any)["status"] != float64(200) {
		t.Fatalf("with a fresh token: %+v", res)
	}

	e.oa.Revoke()
	e.clock.Advance(time.Hour)
	e.oa.Expire()
	callMe() // the token expired and its refresh is refused: the connection needs consent
	if st := e.must(200, e.do("GET", "/v1/connections/oa", nil)).json(t)["status"]; st != "needs_reauth" {
		t.Fatalf("connection status %v, want needs_reauth", st)
	}
	seen, refreshes := len(e.api.seen()), e.oa.Stats().RefreshToken
	res := callMe()
	text := ""
	if len(res.Content) > 0 {
		text = res.Content[0].(*mcp.TextContent).Text
	}
	if !res.IsError || !strings.Contains(text, "needs_reauth") || !strings.Contains(text, "reauthorize") {
		t.Errorf("servlet call with a connection that needs consent: isError=%v %q, want a needs_reauth tool error", res.IsError, text)
	}
	if n := len(e.api.seen()) - seen; n != 0 {
		t.Errorf("%d servlet requests reached the upstream while the connection needs consent", n)
	}
	if e.oa.Stats().RefreshToken != refreshes {
		t.Error("the servlet call asked for a token while the connection needs consent")
	}
}

// withCustomSection appends a Wasm custom section: the module behaves the same, but its bytes
// (and digest) differ, so it can be stored as a dev build of the same version.
func withCustomSection(wasm []byte) []byte {
	name, payload := "plugboard-test", []byte("canary")
	size := 1 + len(name) + len(payload)
	out := append([]byte(nil), wasm...)
	out = append(out, 0x00, byte(size), byte(len(name)))
	out = append(out, name...)
	return append(out, payload...)
}

// Polls count for the side of a canary they ran on, as action calls do, so a canary whose
// triggers fail is seen (and aborted) like one whose actions fail.
func TestTriggerCallsCountForTheCanary(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, nil)
	dev := ts.must(201, ts.do("POST", "/v1/connectors?dev=true", withCustomSection(pluginWasm(t, "trig")))).json(t)["version"].(string)
	ts.must(200, ts.do("PUT", "/v1/connectors/trig/active", map[string]any{"version": "1.0.0", "canary": map[string]any{"version": dev, "percent": 50}}))
	ts.subscribe("items", nil, map[string]any{"type": "queue"})
	var stats map[string]any
	eventually(t, 20*time.Second, "polls to count for both sides", func() bool {
		c := ts.must(200, ts.do("GET", "/v1/connectors/trig", nil)).json(t)
		canary, _ := c["canary"].(map[string]any)
		if canary == nil {
			t.Fatalf("connector document has no canary: %v", c)
		}
		stats = canary["stats"].(map[string]any)
		active, cside := stats["active"].(map[string]any), stats["canary"].(map[string]any)
		return active["calls"].(float64) >= 2 && cside["calls"].(float64) >= 2
	})
	if stats["active"].(map[string]any)["errors"].(float64) != 0 || stats["canary"].(map[string]any)["errors"].(float64) != 0 {
		t.Errorf("canary stats %v: polls that succeeded counted as errors", stats)
	}
}
