package server

import (
	"context"
	"strings"
	"testing"
	"time"
)

func putActive(ts *testServer, body any, query ...string) response {
	ts.t.Helper()
	path := "/v1/connectors/anymanifest/active"
	if len(query) > 0 {
		path += "?" + query[0]
	}
	return ts.do("PUT", path, body)
}

// versionOf calls echo (unpinned unless pinned is set) and returns the version that served.
func versionOf(t *testing.T, ts *testServer, pinned string) string {
	t.Helper()
	body := map[string]any{"input": map[string]any{"n": 1}}
	if pinned != "" {
		body["version"] = pinned
	}
	out := ts.must(200, ts.invoke("anymanifest", "echo", body)).json(t)
	if ran := out["output"].(map[string]any)["version"].(string); out["version"] != ran && !strings.HasPrefix(out["version"].(string), ran+"+dev.") {
		t.Fatalf("response names %v but the plugin ran as %v", out["version"], out["output"])
	}
	return out["version"].(string)
}

func TestCanary(t *testing.T) {
	ts := startServer(t, nil)
	uploadVersions(t, ts, "1.0.0", "1.1.0")

	t.Run("requests that name no valid canary are refused", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   string
			status int
			code   string
			detail string
		}{
			{"canary is the active version", `{"version":"1.0.0","canary":{"version":"1.0.0","percent":10}}`, 400, "invalid_request", "also the active version"},
			{"percent over 100", `{"version":"1.0.0","canary":{"version":"1.1.0","percent":101}}`, 400, "invalid_request", "canary.percent"},
			{"percent missing", `{"version":"1.0.0","canary":{"version":"1.1.0"}}`, 400, "invalid_request", "canary.percent"},
			{"error rate over 1", `{"version":"1.0.0","canary":{"version":"1.1.0","percent":5,"max_error_rate":2}}`, 400, "invalid_request", "max_error_rate"},
			{"unknown field", `{"version":"1.0.0","canary":{"version":"1.1.0","percent":5,"weight":3}}`, 400, "invalid_request", "weight"},
			{"canary version not stored", `{"version":"1.0.0","canary":{"version":"9.9.9","percent":5}}`, 404, "version_not_found", "9.9.9"},
		} {
			r := putActive(ts, tc.body)
			if r.Status != tc.status || r.code(t) != tc.code || !strings.Contains(r.json(t)["detail"].(string), tc.detail) {
				t.Errorf("%s: %d %s, want %d %s mentioning %q", tc.name, r.Status, r.Body, tc.status, tc.code, tc.detail)
			}
		}
	})

	t.Run("calls split by weight and both sides are counted", func(t *testing.T) {
		r := ts.must(200, putActive(ts, `{"version":"1.0.0","canary":{"version":"1.1.0","percent":25}}`)).json(t)
		if r["version"] != "1.0.0" || r["active"] != true || r["canary"].(map[string]any)["version"] != "1.1.0" {
			t.Fatalf("PUT answered %v", r)
		}
		counts := map[string]int{}
		for i := 0; i < 100; i++ {
			counts[versionOf(t, ts, "")]++
		}
		if counts["1.1.0"] != 25 || counts["1.0.0"] != 75 {
			t.Errorf("100 calls split %v, want exactly 25 on the canary", counts)
		}
		// Pinned calls bypass the split and are not counted for either side.
		if v := versionOf(t, ts, "1.0.0"); v != "1.0.0" {
			t.Errorf("pinned to 1.0.0, ran on %s", v)
		}
		if v := versionOf(t, ts, "1.1.0"); v != "1.1.0" {
			t.Errorf("pinned to 1.1.0, ran on %s", v)
		}
		c := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)
		canary := c["canary"].(map[string]any)
		stats := canary["stats"].(map[string]any)
		active, cside := stats["active"].(map[string]any), stats["canary"].(map[string]any)
		if canary["percent"] != 25.0 || active["version"] != "1.0.0" || active["calls"] != 75.0 || cside["version"] != "1.1.0" ||
			cside["calls"] != 25.0 || cside["errors"] != 0.0 || cside["p50_ms"].(float64) <= 0 || cside["p99_ms"].(float64) < cside["p50_ms"].(float64) {
			t.Errorf("canary = %v", canary)
		}
		for _, v := range c["versions"].([]any) {
			doc := v.(map[string]any)
			if (doc["version"] == "1.1.0") != (doc["canary"] == true) {
				t.Errorf("version document %v: canary flag wrong", doc["version"])
			}
		}
		metrics := string(ts.must(200, ts.do("GET", "/metrics", nil)).Body)
		for _, want := range []string{
			`plugboard_canary_percent{connector="anymanifest",version="1.1.0"} 25`,
			`plugboard_canary_calls{connector="anymanifest",version="1.1.0",side="canary"} 25`,
			`plugboard_canary_calls{connector="anymanifest",version="1.0.0",side="active"} 75`,
			`plugboard_canary_errors{connector="anymanifest",version="1.1.0",side="canary"} 0`,
			`plugboard_version_call_duration_seconds_count{connector="anymanifest",version="1.1.0",role="canary"} 25`,
			`plugboard_version_call_duration_seconds_count{connector="anymanifest",version="1.1.0",role="pinned"} 1`,
			`plugboard_action_calls_total{connector="anymanifest",version="1.1.0",action="echo",code="ok"} 26`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if r := ts.do("DELETE", "/v1/connectors/anymanifest/versions/1.1.0", nil); r.Status != 409 || r.code(t) != "version_active" {
			t.Errorf("deleting the canary: %d %s", r.Status, r.Body)
		}
		// A new weight for the same pair keeps the counts.
		ts.must(200, putActive(ts, `{"version":"1.0.0","canary":{"version":"1.1.0","percent":50}}`))
		c = ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)
		if calls := c["canary"].(map[string]any)["stats"].(map[string]any)["canary"].(map[string]any)["calls"]; calls != 25.0 {
			t.Errorf("after re-weighting the canary counts %v calls, want 25", calls)
		}
	})

	t.Run("promote takes the canary as it is", func(t *testing.T) {
		canary, err := ts.srv.reg.Resolve(context.Background(), "anymanifest", "1.1.0")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := ts.must(200, putActive(ts, `{"version":"1.1.0"}`)).json(t)
		if r["version"] != "1.1.0" || r["canary"] != nil {
			t.Errorf("promote answered %v", r)
		}
		t.Logf("promotion took %s", time.Since(start))
		if active, _ := ts.srv.reg.Resolve(context.Background(), "anymanifest", ""); active != canary {
			t.Errorf("promotion loaded 1.1.0 again instead of keeping the canary's module and pools")
		}
		c := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)
		last := c["last_canary"].(map[string]any)
		if c["active_version"] != "1.1.0" || c["canary"] != nil || last["outcome"] != "promoted" || last["version"] != "1.1.0" {
			t.Errorf("after promotion: active %v canary %v last %v", c["active_version"], c["canary"], last)
		}
		if v := versionOf(t, ts, ""); v != "1.1.0" {
			t.Errorf("after promotion a call ran on %s", v)
		}
		// 1.0.0 served a pinned call a moment ago: it stays loaded until Retention.UnloadAfter.
		waitLoaded(t, ts, "1.0.0", "1.1.0")
	})

	t.Run("abort by setting the active version again", func(t *testing.T) {
		ts.must(200, putActive(ts, `{"version":"1.1.0","canary":{"version":"1.0.0","percent":100}}`))
		if v := versionOf(t, ts, ""); v != "1.0.0" {
			t.Errorf("with the canary at 100%% a call ran on %s", v)
		}
		ts.must(200, putActive(ts, `{"version":"1.1.0"}`))
		c := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)
		if last := c["last_canary"].(map[string]any); last["outcome"] != "aborted" || last["version"] != "1.0.0" {
			t.Errorf("last_canary = %v", last)
		}
		for i := 0; i < 10; i++ {
			if v := versionOf(t, ts, ""); v != "1.1.0" {
				t.Fatalf("after the abort a call ran on %s", v)
			}
		}
	})

	t.Run("a canary asking for more needs approval once", func(t *testing.T) {
		ts.must(201, ts.do("POST", "/v1/connectors", hostsPlugin(t)))
		body := `{"version":"1.1.0","canary":{"version":"1.7.0","percent":10}}`
		if r := putActive(ts, body); r.Status != 409 || r.code(t) != "capabilities_changed" {
			t.Fatalf("unapproved canary: %d %s", r.Status, r.Body)
		}
		r := ts.must(200, putActive(ts, body, "approve=capabilities")).json(t)
		if ch, _ := r["approved_changes"].(map[string]any); ch == nil || ch["hosts_added"].([]any)[0] != "https://api.example.com" {
			t.Errorf("approved_changes = %v", r["approved_changes"])
		}
		// Promoting the approved canary needs no second approval.
		ts.must(200, putActive(ts, `{"version":"1.7.0"}`))
	})
}

// smallMemoryPlugin is anymanifest 1.1.0 limited to 4 MiB of memory: it serves small calls and
// runs out of memory on large ones. One module for every test that needs such a version.
func smallMemoryPlugin(t *testing.T) []byte {
	return anyManifest(t, manifestJSON("1.1.0", `"limits":{"memory_mb":4}`))
}

// TestCanaryAutoAbort runs a canary whose memory limit makes large calls fail: once its error
// rate passes max_error_rate over min_calls calls, the registry aborts it and says why.
func TestCanaryAutoAbort(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.0.0"))))
	ts.must(201, ts.do("POST", "/v1/connectors", smallMemoryPlugin(t)))
	ts.must(200, putActive(ts, `{"version":"1.0.0","canary":{"version":"1.1.0","percent":50,"max_error_rate":0.5,"min_calls":4}}`))

	big := map[string]any{"input": map[string]any{"s": strings.Repeat("x", 500_000)}}
	failed := 0
	deadline := time.Now().Add(time.Minute)
	for {
		r := ts.invoke("anymanifest", "echo", big)
		switch {
		case r.Status == 502 && r.code(t) == "plugin_failed":
			failed++
		case r.Status != 200:
			t.Fatalf("call: %d %s", r.Status, r.Body)
		}
		c := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)
		if last, _ := c["last_canary"].(map[string]any); last != nil {
			if c["canary"] != nil || last["outcome"] != "auto_aborted" || !strings.Contains(last["reason"].(string), "max_error_rate 0.5") {
				t.Fatalf("after the abort: canary %v, last_canary %v", c["canary"], last)
			}
			stats := last["stats"].(map[string]any)["canary"].(map[string]any)
			if stats["errors"].(float64) < 3 || stats["error_rate"].(float64) <= 0.5 {
				t.Errorf("the abort happened with canary stats %v", stats)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the canary was not aborted after %d failed calls", failed)
		}
	}
	if failed < 4 {
		t.Errorf("aborted after %d failed calls, min_calls is 4", failed)
	}
	for i := 0; i < 10; i++ {
		if r := ts.invoke("anymanifest", "echo", big); r.Status != 200 || r.json(t)["version"] != "1.0.0" {
			t.Fatalf("after the abort: %d %.200s", r.Status, r.Body)
		}
	}
}
