package server

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// asWasm returns the AssemblyScript test connector plugins/testdata/<name>: the one `make
// build` left in bin/testplugins when it is newer than every source file of the folder,
// otherwise a fresh build with npm (npm ci first when node_modules is missing or older than
// the lock file). Without npm the test fails rather than skips: the README installs node.
func asWasm(t *testing.T, name string) []byte {
	t.Helper()
	root := repoRoot(t)
	src := filepath.Join(root, "plugins", "testdata", name)
	built := filepath.Join(root, "bin", "testplugins", name+".wasm")
	if newerThanSources(built, src) {
		b, err := os.ReadFile(built)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	npm := func(args ...string) {
		t.Helper()
		cmd := exec.Command("npm", args...)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm %v in %s: %v\n%s", args, src, err, out)
		}
	}
	if !newerThanSources(filepath.Join(src, "node_modules", ".package-lock.json"), filepath.Join(src, "package-lock.json")) {
		npm("ci", "--no-audit", "--no-fund")
	}
	out := filepath.Join(t.TempDir(), name+".wasm")
	npm("run", "--silent", "build", "--", "--outFile", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newerThanSources reports whether file exists and is newer than src (a file, or every file of
// a directory outside node_modules).
func newerThanSources(file, src string) bool {
	fi, err := os.Stat(file)
	if err != nil {
		return false
	}
	newer := true
	filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		switch {
		case err != nil:
			newer = false
		case info.IsDir() && info.Name() == "node_modules":
			return filepath.SkipDir
		case !info.IsDir() && info.ModTime().After(fi.ModTime()):
			newer = false
		}
		return nil
	})
	return newer
}

// TestASHTTPConnector runs the AssemblyScript connector (plugins/testdata/ashttp, built with the
// Extism AssemblyScript PDK against ABI.md alone) through the real server: it passes the upload
// checks, its get action makes exactly one plugboard_http call per invocation to the
// connection's base_url, and it hands back the upstream's status and body text unchanged, also
// for non-ASCII text; a host refusal comes back as the guest error ABI.md section 4 names.
func TestASHTTPConnector(t *testing.T) {
	const body = `{"name":"wïdget ✓","quote":"a\"b","emoji":"🔌"}`
	var calls atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodGet {
			http.Error(w, "want GET", http.StatusMethodNotAllowed)
			return
		}
		switch r.URL.Path {
		case "/api/item":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(body))
		case "/api/":
			w.Write([]byte("root"))
		default:
			http.Error(w, "no such path "+r.URL.Path, http.StatusNotFound)
		}
	}))
	defer upstream.Close()
	// A port that was free a moment ago: nothing answers there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	ts := startServer(t, nil)
	up := ts.must(201, ts.do("POST", "/v1/connectors", asWasm(t, "ashttp"))).json(t)
	if up["name"] != "ashttp" || up["version"] != "1.0.0" || up["active"] != true {
		t.Fatalf("upload answered %v", up)
	}
	conn := ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "up", "connectors": []string{"ashttp"}, "params": map[string]any{"base_url": upstream.URL + "/api/"},
		"auth": map[string]any{"type": "none"},
	})).json(t)
	if hosts, _ := conn["hosts"].([]any); len(hosts) != 1 || hosts[0] != upstream.URL {
		t.Fatalf("connection hosts = %v, want [%s] from the manifest's {base_url}", conn["hosts"], upstream.URL)
	}
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "down", "connectors": []string{"ashttp"}, "params": map[string]any{"base_url": closed},
		"auth": map[string]any{"type": "none"},
	}))

	for _, tc := range []struct {
		name       string
		input      map[string]any
		wantStatus float64
		wantBody   string
	}{
		{"a JSON body comes back as its text, non-ASCII included", map[string]any{"path": "/item"}, 200, body},
		{"an absent path GETs base_url + /", map[string]any{}, 200, "root"},
		{"an upstream 404 is output, not an error", map[string]any{"path": "/nope"}, 404, "no such path /api/nope\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			r := ts.must(200, ts.invoke("ashttp", "get", map[string]any{"connection": "up", "input": tc.input})).json(t)
			out, _ := r["output"].(map[string]any)
			if out["status"] != tc.wantStatus || out["body"] != tc.wantBody || len(out) != 2 {
				t.Errorf("output = %#v, want status %v and body %q", out, tc.wantStatus, tc.wantBody)
			}
			if r["connector"] != "ashttp" || r["version"] != "1.0.0" {
				t.Errorf("envelope = %v", r)
			}
			if n := calls.Load() - before; n != 1 {
				t.Errorf("the upstream got %d requests for one call, want 1", n)
			}
		})
	}

	t.Run("input outside the schema is refused before the plugin runs", func(t *testing.T) {
		before := calls.Load()
		r := ts.must(400, ts.invoke("ashttp", "get", map[string]any{"connection": "up", "input": map[string]any{"path": "item"}}))
		if c := r.code(t); c != "invalid_input" {
			t.Errorf("code = %s, want invalid_input", c)
		}
		if calls.Load() != before {
			t.Error("the upstream was called")
		}
	})

	t.Run("an unreachable upstream is a retryable 502 network from the plugin, by its details.host_code", func(t *testing.T) {
		p := ts.must(502, ts.invoke("ashttp", "get", map[string]any{"connection": "down", "input": map[string]any{"path": "/x"}})).json(t)
		if p["code"] != "network" || p["source"] != "plugin" || p["retryable"] != true {
			t.Errorf("problem = %v, want code network from source plugin, retryable", p)
		}
	})
}
