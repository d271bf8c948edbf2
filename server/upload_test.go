package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
)

// anyManifest returns the anymanifest plugin patched to describe manifest.
func anyManifest(t *testing.T, manifest string) []byte {
	t.Helper()
	b, err := patch.Patch(pluginWasm(t, "anymanifest"), []byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// manifestJSON is a valid manifest for anymanifest with one action; edit adds or replaces
// top-level fields by raw JSON text.
func manifestJSON(version string, extra ...string) string {
	fields := []string{`"abi":1`, `"name":"anymanifest"`, `"version":"` + version + `"`, `"auth":{"types":["none"]}`,
		`"actions":[{"name":"echo","input_schema":{"type":"object","properties":{"n":{"type":"integer"}}}}]`}
	for _, e := range extra {
		key, _, _ := strings.Cut(e, ":")
		replaced := false
		for i, f := range fields {
			if strings.HasPrefix(f, key+":") {
				fields[i], replaced = e, true
			}
		}
		if !replaced {
			fields = append(fields, e)
		}
	}
	return "{" + strings.Join(fields, ",") + "}"
}

func TestUploadChecks(t *testing.T) {
	ts := startServer(t, nil)
	tests := []struct {
		name   string
		wasm   func(t *testing.T) []byte
		code   string
		detail string
	}{
		{"import outside the allowed set", func(t *testing.T) []byte { return pluginWasm(t, "badimport") }, "import_not_allowed", "env."},
		{"describe fails", func(t *testing.T) []byte { return anyManifest(t, "!fail:no manifest today") }, "describe_failed", "no manifest today"},
		{"describe writes no JSON", func(t *testing.T) []byte { return anyManifest(t, "not json at all") }, "describe_failed", "JSON"},
		{"poll trigger without plugboard_poll", func(t *testing.T) []byte {
			return anyManifest(t, manifestJSON("1.0.0", `"triggers":[{"name":"tick","kind":"poll","params_schema":{"type":"object"}}]`))
		}, "missing_export", "plugboard_poll"},
		{"webhook trigger without plugboard_webhook", func(t *testing.T) []byte {
			return anyManifest(t, manifestJSON("1.0.0", `"triggers":[{"name":"hook","kind":"webhook","params_schema":{}}]`))
		}, "missing_export", "plugboard_webhook"},
		{"manifest abi 2", func(t *testing.T) []byte { return anyManifest(t, manifestJSON("1.0.0", `"abi":2`)) }, "invalid_manifest", "abi"},
		{"manifest bad name", func(t *testing.T) []byte { return anyManifest(t, manifestJSON("1.0.0", `"name":"Any_Manifest"`)) }, "invalid_manifest", "name"},
		{"manifest bad version", func(t *testing.T) []byte { return anyManifest(t, manifestJSON("1.0")) }, "invalid_manifest", "version"},
		{"manifest unknown field", func(t *testing.T) []byte { return anyManifest(t, manifestJSON("1.0.0", `"hostz":[]`)) }, "invalid_manifest", "hostz"},
		{"manifest bare star host", func(t *testing.T) []byte { return anyManifest(t, manifestJSON("1.0.0", `"hosts":["*"]`)) }, "invalid_manifest", "hosts[0]"},
		{"manifest api_key without settings", func(t *testing.T) []byte {
			return anyManifest(t, manifestJSON("1.0.0", `"auth":{"types":["api_key"]}`))
		}, "invalid_manifest", "auth.api_key"},
		{"manifest input schema not an object", func(t *testing.T) []byte {
			return anyManifest(t, manifestJSON("1.0.0", `"actions":[{"name":"echo","input_schema":{"type":"string"}}]`))
		}, "invalid_manifest", "input_schema"},
		{"manifest duplicate action", func(t *testing.T) []byte {
			return anyManifest(t, manifestJSON("1.0.0", `"actions":[{"name":"a","input_schema":{"type":"object"}},{"name":"a","input_schema":{"type":"object"}}]`))
		}, "invalid_manifest", "actions[1].name"},
		// anymanifest's memory starts at 43 pages (2.7 MiB): a 1 MiB limit could never start it.
		{"initial memory above limits.memory_mb", func(t *testing.T) []byte {
			return anyManifest(t, manifestJSON("1.0.0", `"limits":{"memory_mb":1}`))
		}, "invalid_manifest", "initial memory is 2.7 MiB (43 pages) but limits.memory_mb is 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("POST", "/v1/connectors", tt.wasm(t))
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			p := r.json(t)
			if p["code"] != tt.code || !strings.Contains(p["detail"].(string), tt.detail) {
				t.Errorf("problem %s/%q, want %s mentioning %q", p["code"], p["detail"], tt.code, tt.detail)
			}
		})
	}
	// Nothing of the rejected uploads was stored.
	if list := ts.must(200, ts.do("GET", "/v1/connectors", nil)).json(t)["connectors"].([]any); len(list) != 0 {
		t.Errorf("rejected uploads left connectors behind: %v", list)
	}
}

func TestUploadVersions(t *testing.T) {
	ts := startServer(t, nil)
	v1 := anyManifest(t, manifestJSON("1.0.0"))
	ts.must(201, ts.do("POST", "/v1/connectors", v1))
	ts.must(200, ts.do("POST", "/v1/connectors", v1))

	// The same version with other bytes is a conflict, whatever changed.
	other := anyManifest(t, manifestJSON("1.0.0", `"title":"changed"`))
	if r := ts.do("POST", "/v1/connectors", other); r.Status != http.StatusConflict || r.code(t) != "version_exists" {
		t.Fatalf("reused version: %d %s", r.Status, r.Body)
	}

	// A second version is stored but not activated unless asked.
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.1.0"))))
	c := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)
	if c["active_version"] != "1.0.0" || len(c["versions"].([]any)) != 2 {
		t.Errorf("connector = %v", c)
	}
	out := ts.must(200, ts.invoke("anymanifest", "echo", map[string]any{"input": map[string]any{"n": 1}})).json(t)
	if out["version"] != "1.0.0" || out["output"].(map[string]any)["version"] != "1.0.0" {
		t.Errorf("active call ran on %v", out)
	}
	// A pinned call runs on the stored version without activating it.
	out = ts.must(200, ts.invoke("anymanifest", "echo", map[string]any{"version": "1.1.0"})).json(t)
	if out["version"] != "1.1.0" || out["output"].(map[string]any)["version"] != "1.1.0" {
		t.Errorf("pinned call ran on %v", out)
	}
	// Activate, then roll back.
	ts.must(200, ts.do("PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.1.0"}))
	if v := ts.must(200, ts.invoke("anymanifest", "echo", nil)).json(t)["version"]; v != "1.1.0" {
		t.Errorf("after activation the call ran on %v", v)
	}
	if r := ts.do("DELETE", "/v1/connectors/anymanifest/versions/1.1.0", nil); r.Status != http.StatusConflict || r.code(t) != "version_active" {
		t.Errorf("deleting the active version: %d %s", r.Status, r.Body)
	}
	ts.must(200, ts.do("PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.0.0"}))
	ts.must(204, ts.do("DELETE", "/v1/connectors/anymanifest/versions/1.1.0", nil))
	ts.must(404, ts.do("GET", "/v1/connectors/anymanifest/versions/1.1.0", nil))
	if r := ts.do("PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "9.9.9"}); r.code(t) != "version_not_found" {
		t.Errorf("activating a missing version: %s", r.Body)
	}
	// ?activate=true activates on upload.
	ts.must(201, ts.do("POST", "/v1/connectors?activate=true", anyManifest(t, manifestJSON("2.0.0"))))
	if v := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest/versions/2.0.0", nil)).json(t)["active"]; v != true {
		t.Errorf("?activate=true left the version inactive")
	}
}
