package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/registry/storage"
)

// hostsPlugin is anymanifest 1.7.0 asking for https://api.example.com: one module for every
// test that needs a version asking for a new origin.
func hostsPlugin(t *testing.T) []byte {
	return anyManifest(t, manifestJSON("1.7.0", `"hosts":["https://api.example.com"]`))
}

// plantVersion stores a version record whose blob is wasm, bypassing the upload checks: a
// version that passed them once but fails when it is provisioned (a describe that is not
// deterministic, a blob stored by an older server).
func plantVersion(t *testing.T, ts *testServer, version string, wasm []byte, manifest string) {
	t.Helper()
	ctx := context.Background()
	if _, err := ts.srv.st.PutBlob(ctx, wasm); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	if _, err := ts.srv.st.PutVersion(ctx, storage.Version{Name: "anymanifest", Version: version,
		Digest: "sha256:" + hex.EncodeToString(sum[:]), Manifest: json.RawMessage(manifest)}); err != nil {
		t.Fatal(err)
	}
}

// TestBrokenVersionNeverTakesTraffic tries versions that must not serve, as the active version
// and as a canary, while a hammer calls the connector: each attempt is refused with its reason
// and a stable code, every call in the meantime succeeds on 1.0.0, and 1.0.0 stays active.
func TestBrokenVersionNeverTakesTraffic(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.0.0"))))
	apiKey := `"auth":{"types":["none","api_key"],"api_key":{"in":"header","name":"X-Key"}}`

	// Versions that fail at provisioning are planted: their blob is a module already compiled
	// by other tests (compiling is what costs time under -race), their stored manifest what makes
	// them fail. Provisioning is the same as for a version that came through an upload.
	plain := anyManifest(t, manifestJSON("2.0.0"))
	tests := []struct {
		name string
		// setup stores the version (or not) and returns the request that tries it.
		setup  func(t *testing.T) (method, path string, body any)
		status int
		code   string
		detail string
		// changes lists the fields the capabilities_changed document must hold.
		changes map[string][]string
	}{
		{"fails describe when provisioned", func(t *testing.T) (string, string, any) {
			plantVersion(t, ts, "1.1.0", anyManifest(t, "!fail:no manifest today"), manifestJSON("1.1.0"))
			return "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.1.0"}
		}, 422, "activation_failed", "no manifest today", nil},
		{"describes another manifest when provisioned", func(t *testing.T) (string, string, any) {
			plantVersion(t, ts, "1.2.0", plain, manifestJSON("1.2.0"))
			return "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.2.0"}
		}, 422, "activation_failed", "different manifest", nil},
		{"traps in its first instance", func(t *testing.T) (string, string, any) {
			// 3 MiB passes compilation (the module declares 43 pages) but the Go runtime
			// cannot start in it: the first instance traps while initialising.
			plantVersion(t, ts, "1.3.0", plain, manifestJSON("1.3.0", `"limits":{"memory_mb":3}`))
			return "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.3.0"}
		}, 422, "activation_failed", "plugboard_describe: initialising the guest runtime (_initialize)", nil},
		{"does not compile under its memory limit", func(t *testing.T) (string, string, any) {
			plantVersion(t, ts, "1.4.0", plain, manifestJSON("1.4.0", `"limits":{"memory_mb":1}`))
			return "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.4.0"}
		}, 422, "activation_failed", "over limit", nil},
		{"asks for more origins without approval", func(t *testing.T) (string, string, any) {
			plantVersion(t, ts, "1.5.0", plain, manifestJSON("1.5.0", `"hosts":["https://api.example.com"]`))
			return "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.5.0"}
		}, 409, "capabilities_changed", "hosts +https://api.example.com", map[string][]string{"hosts_added": {"https://api.example.com"}}},
		{"asks for an auth type and a reveal capability without approval", func(t *testing.T) (string, string, any) {
			plantVersion(t, ts, "1.6.0", plain, manifestJSON("1.6.0", apiKey, `"capabilities":{"reveal":["api_key"]}`))
			return "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.6.0"}
		}, 409, "capabilities_changed", "auth types +api_key; reveal +api_key", map[string][]string{"auth_types_added": {"api_key"}, "reveal_added": {"api_key"}}},
		{"uploaded with ?activate=true, fails its upload checks", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/connectors?activate=true", anyManifest(t, "!fail:no manifest today")
		}, 400, "describe_failed", "no manifest today", nil},
		{"uploaded with ?activate=true, asks for more origins without approval", func(t *testing.T) (string, string, any) {
			return "POST", "/v1/connectors?activate=true", hostsPlugin(t)
		}, 409, "capabilities_changed", "1.7.0 is stored, not active", map[string][]string{"hosts_added": {"https://api.example.com"}}},
		{"as a canary, traps in its first instance", func(t *testing.T) (string, string, any) {
			return "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.0.0", "canary": map[string]any{"version": "1.3.0", "percent": 50}}
		}, 422, "activation_failed", "1.3.0 did not start", nil},
		{"as a canary, asks for more origins without approval", func(t *testing.T) (string, string, any) {
			return "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.0.0", "canary": map[string]any{"version": "1.5.0", "percent": 50}}
		}, 409, "capabilities_changed", "hosts +https://api.example.com", map[string][]string{"hosts_added": {"https://api.example.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, body := tt.setup(t)
			h := startHammer(t, ts, 4, nil)
			h.waitCalls(20)
			r := ts.do(method, path, body)
			h.waitCalls(20)
			records := h.finish()

			if r.Status != tt.status || r.code(t) != tt.code || !strings.Contains(r.json(t)["detail"].(string), tt.detail) {
				t.Errorf("got %d %s, want %d %s mentioning %q", r.Status, r.Body, tt.status, tt.code, tt.detail)
			}
			if tt.changes != nil {
				var doc struct {
					Changes map[string]any `json:"changes"`
				}
				json.Unmarshal(r.Body, &doc)
				if doc.Changes["against"] != "1.0.0" {
					t.Errorf("changes.against = %v, want 1.0.0", doc.Changes["against"])
				}
				for field, want := range tt.changes {
					got, _ := json.Marshal(doc.Changes[field])
					if w, _ := json.Marshal(want); string(got) != string(w) {
						t.Errorf("changes.%s = %s, want %s", field, got, w)
					}
				}
			}
			if bad := failures(records); len(bad) > 0 {
				t.Fatalf("%d calls failed during the attempt, e.g. %d %s", len(bad), bad[0].status, bad[0].body)
			}
			if counts := countVersions(records); len(counts) != 1 || counts["1.0.0"] == 0 {
				t.Errorf("calls ran on %v; only 1.0.0 may serve", counts)
			}
			c := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)
			if c["active_version"] != "1.0.0" || c["canary"] != nil {
				t.Errorf("after the attempt: active %v, canary %v", c["active_version"], c["canary"])
			}
		})
	}
	// Nothing the failed attempts loaded stays in memory.
	waitLoaded(t, ts, "1.0.0")
}
