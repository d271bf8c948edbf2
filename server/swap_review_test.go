package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry"
)

// TestCapabilityReview: a version asking for more hosts, auth types or reveal capabilities
// serves only once approved; the approval is reported; a connection created before keeps the
// hosts recorded on it; asking for less needs no approval.
func TestCapabilityReview(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.0.0"))))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{"id": "c1", "connectors": []string{"anymanifest"}, "auth": map[string]any{"type": "none"}}))

	ts.must(201, ts.do("POST", "/v1/connectors", hostsPlugin(t)))
	r := putActive(ts, `{"version":"1.7.0"}`)
	if r.Status != 409 || r.code(t) != "capabilities_changed" {
		t.Fatalf("unapproved: %d %s", r.Status, r.Body)
	}
	var refused struct {
		Detail  string           `json:"detail"`
		Changes registry.Changes `json:"changes"`
	}
	json.Unmarshal(r.Body, &refused)
	want := registry.Changes{Against: "1.0.0", Versions: []string{"1.7.0"}, HostsAdded: []string{"https://api.example.com"}}
	if got := mustJSON(refused.Changes); got != mustJSON(want) {
		t.Errorf("changes = %s, want %s", got, mustJSON(want))
	}
	if !strings.Contains(refused.Detail, "?approve=capabilities") {
		t.Errorf("detail %q does not say how to approve", refused.Detail)
	}
	if r := putActive(ts, `{"version":"1.7.0"}`, "approve=everything"); r.Status != 400 {
		t.Errorf("approve=everything: %d %s", r.Status, r.Body)
	}

	var ok struct {
		Approved registry.Changes `json:"approved_changes"`
	}
	json.Unmarshal(ts.must(200, putActive(ts, `{"version":"1.7.0"}`, "approve=capabilities")).Body, &ok)
	if got := mustJSON(ok.Approved); got != mustJSON(want) {
		t.Errorf("approved_changes = %s, want %s", got, mustJSON(want))
	}
	if v := versionOf(t, ts, ""); v != "1.7.0" {
		t.Errorf("after approval a call ran on %s", v)
	}
	// The connection keeps the hosts it was created with (API.md "Connections").
	c := ts.must(200, ts.do("GET", "/v1/connections/c1", nil)).json(t)
	if hosts, _ := json.Marshal(c["hosts"]); string(hosts) != `[]` && string(hosts) != `null` {
		t.Errorf("connection hosts after the approval = %s; a new version must not widen them", hosts)
	}
	// Asking for less needs no approval: roll back.
	ts.must(200, putActive(ts, `{"version":"1.0.0"}`))
	// An upload may approve its own activation (here of bytes already stored).
	if r := ts.do("POST", "/v1/connectors?activate=true", hostsPlugin(t)); r.Status != 409 {
		t.Errorf("upload ?activate=true without approval: %d %s", r.Status, r.Body)
	}
	ts.must(200, ts.do("POST", "/v1/connectors?activate=true&approve=capabilities", hostsPlugin(t)))
	if v := versionOf(t, ts, ""); v != "1.7.0" {
		t.Errorf("after the approved upload a call ran on %s", v)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRetention: idle instances are closed after Retention.PoolIdle; a version that is neither
// active nor canary is unloaded once no pinned call used it for Retention.UnloadAfter, and loads
// again on the next pinned call; at most Retention.MaxPinned such versions stay loaded.
func TestRetention(t *testing.T) {
	ts := startServer(t, func(o *Options) {
		o.Retention = registry.Retention{PoolIdle: 150 * time.Millisecond, UnloadAfter: 300 * time.Millisecond, MaxPinned: 1, Interval: 20 * time.Millisecond}
	})
	uploadVersions(t, ts, "1.0.0", "1.1.0", "1.2.0")

	versionOf(t, ts, "")
	active, _ := ts.srv.reg.Resolve(context.Background(), "anymanifest", "")
	if _, idle, _ := active.PoolStats(); idle == 0 {
		t.Fatalf("no idle instance after a call")
	}
	eventually(t, 30*time.Second, "idle instances of 1.0.0 closed", func() bool {
		pools, idle, busy := active.PoolStats()
		return pools == 0 && idle == 0 && busy == 0
	})
	if v := versionOf(t, ts, ""); v != "1.0.0" {
		t.Fatalf("after trimming, a call ran on %s", v)
	}

	// Pinned versions: at most one besides the active one, and only while used.
	if v := versionOf(t, ts, "1.1.0"); v != "1.1.0" {
		t.Fatal(v)
	}
	waitLoaded(t, ts, "1.0.0", "1.1.0")
	if v := versionOf(t, ts, "1.2.0"); v != "1.2.0" {
		t.Fatal(v)
	}
	waitLoaded(t, ts, "1.0.0", "1.2.0") // MaxPinned 1: 1.1.0, least recently used, is gone
	waitLoaded(t, ts, "1.0.0")          // then 1.2.0 after UnloadAfter
	if v := versionOf(t, ts, "1.1.0"); v != "1.1.0" {
		t.Fatalf("a pinned call after the unload ran on %s", v)
	}
	// The blobs stay: every version is still stored.
	if vs := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)["versions"].([]any); len(vs) != 3 {
		t.Errorf("%d versions stored, want 3", len(vs))
	}
}

// TestDevBuilds: with ?dev=true a rebuild of a stored version is stored and activated as
// VERSION+dev.<digest>, and the previous dev build of that version is deleted.
func TestDevBuilds(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.1.0"))))
	rebuild := smallMemoryPlugin(t) // 1.1.0 again, with other bytes
	if r := ts.do("POST", "/v1/connectors?activate=true", rebuild); r.code(t) != "version_exists" {
		t.Fatalf("a rebuild without dev: %d %s", r.Status, r.Body)
	}
	first := ts.must(201, ts.do("POST", "/v1/connectors?activate=true&dev=true", rebuild)).json(t)
	v1 := first["version"].(string)
	if !strings.HasPrefix(v1, "1.1.0+dev.") || first["active"] != true || first["manifest"].(map[string]any)["version"] != "1.1.0" {
		t.Fatalf("dev build stored as %v", first)
	}
	if v := versionOf(t, ts, ""); v != v1 {
		t.Errorf("a call ran on %s, want %s", v, v1)
	}
	ts.must(200, ts.do("POST", "/v1/connectors?activate=true&dev=true", rebuild)) // same bytes: nothing new

	second := ts.must(201, ts.do("POST", "/v1/connectors?activate=true&dev=true", anyManifest(t, manifestJSON("1.1.0", `"title":"rebuilt"`)))).json(t)
	v2 := second["version"].(string)
	if v2 == v1 || !strings.HasPrefix(v2, "1.1.0+dev.") {
		t.Fatalf("second dev build stored as %s", v2)
	}
	if v := versionOf(t, ts, ""); v != v2 {
		t.Errorf("a call ran on %s, want %s", v, v2)
	}
	var versions []string
	for _, v := range ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)["versions"].([]any) {
		versions = append(versions, v.(map[string]any)["version"].(string))
	}
	if strings.Join(versions, " ") != "1.1.0 "+v2 {
		t.Errorf("versions = %v; the older dev build should be gone", versions)
	}
}
