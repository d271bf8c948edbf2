package server

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHostilePlugins: each misbehaviour is contained and reported with the right problem, and
// the server keeps serving other calls while it happens.
func TestHostilePlugins(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.upload("hostile"))

	// While the hostile calls run, a steady stream of good calls must keep succeeding.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var okCalls, failed int
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := ts.invoke("hostile", "ok", nil)
			mu.Lock()
			if r.Status == 200 {
				okCalls++
			} else {
				failed++
			}
			mu.Unlock()
		}
	}()

	tests := []struct {
		action, code, source, detail string
		status                       int
	}{
		{"loop", "timeout", "plugboard", "deadline", http.StatusGatewayTimeout},
		{"bomb", "plugin_failed", "plugboard", "memory", http.StatusBadGateway},
		{"trap", "plugin_failed", "plugboard", "", http.StatusBadGateway},
		{"exit_nonzero", "plugin_failed", "plugboard", "", http.StatusBadGateway},
		{"panic", "internal", "plugin", "", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			start := time.Now()
			r := ts.invoke("hostile", tt.action, nil)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			p := r.json(t)
			if p["code"] != tt.code || p["source"] != tt.source || !strings.Contains(strings.ToLower(p["detail"].(string)), tt.detail) {
				t.Errorf("problem = %s", r.Body)
			}
			if tt.action == "loop" && time.Since(start) > 10*time.Second {
				t.Errorf("the loop was stopped after %s; its deadline is 2 s", time.Since(start))
			}
			// The next call works: the failed instance was discarded, not reused.
			ts.must(200, ts.invoke("hostile", "ok", nil))
		})
	}
	close(stop)
	wg.Wait()
	if failed > 0 || okCalls == 0 {
		t.Errorf("during the hostile calls %d good calls succeeded and %d failed", okCalls, failed)
	}
	t.Logf("%d good calls served while hostile plugins were contained", okCalls)
}

// TestRestartKeepsState: connectors, versions, active pointers and connections survive a
// restart; active versions come back from the compilation cache without compiling again; the
// data directory never holds the secret in clear.
func TestRestartKeepsState(t *testing.T) {
	const secret = "sk-restart-7f3a9c-SECRET"
	cache := t.TempDir()
	ts := startServer(t, func(o *Options) { o.Host.CacheDir = cache })
	ts.must(201, ts.upload("http"))
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.0.0"))))
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.1.0"))))
	ts.must(200, ts.do("PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.1.0"}))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "keep", "connectors": []string{"http"}, "params": map[string]any{"base_url": "https://api.example.com"},
		"auth": map[string]any{"type": "basic", "username": "u", "password": secret}, "secrets": map[string]any{"signing": secret + "-2"},
	}))
	before := countFiles(t, cache)

	ts = ts.restart()
	if after := countFiles(t, cache); after != before {
		t.Errorf("restart compiled again: the cache went from %d to %d files", before, after)
	}
	c := ts.must(200, ts.do("GET", "/v1/connectors/anymanifest", nil)).json(t)
	if c["active_version"] != "1.1.0" || len(c["versions"].([]any)) != 2 {
		t.Errorf("after restart: %v", c)
	}
	if v := ts.must(200, ts.invoke("anymanifest", "echo", nil)).json(t)["version"]; v != "1.1.0" {
		t.Errorf("after restart the call ran on %v", v)
	}
	conn := ts.must(200, ts.do("GET", "/v1/connections/keep", nil))
	if cj := conn.json(t); cj["auth"].(map[string]any)["type"] != "basic" || cj["params"].(map[string]any)["base_url"] != "https://api.example.com" {
		t.Errorf("connection after restart: %s", conn.Body)
	}
	if bytes.Contains(conn.Body, []byte(secret)) {
		t.Error("GET connection shows the secret")
	}
	ts.stop()
	filepath.Walk(ts.dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret in clear", p)
		}
		return nil
	})
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// TestEndedInstanceNotReused: however a call ends its instance (proc_exit with status 0 before
// any output, proc_exit(3), a trap, a deadline, running out of memory, a recovered panic), the
// next normal call on the same connector and the same connection succeeds: an instance that
// exited, trapped, timed out or ran out of memory never goes back to the pool.
func TestEndedInstanceNotReused(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.upload("hostile"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "h1", "connectors": []string{"hostile"}, "auth": map[string]any{"type": "none"}}))
	call := func(action, connection string) response {
		t.Helper()
		body := map[string]any{"input": map[string]any{}}
		if connection != "" {
			body["connection"] = connection
		}
		return ts.invoke("hostile", action, body)
	}
	tests := []struct {
		action, code, detail string
		status               int
	}{
		{"exit_zero", "plugin_failed", "exited", http.StatusBadGateway},
		{"exit_nonzero", "plugin_failed", "", http.StatusBadGateway},
		{"trap", "plugin_failed", "", http.StatusBadGateway},
		{"loop", "timeout", "deadline", http.StatusGatewayTimeout},
		{"bomb", "plugin_failed", "memory", http.StatusBadGateway},
		{"panic", "internal", "", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		for _, conn := range []string{"h1", ""} {
			name := tt.action + "/connection"
			if conn == "" {
				name = tt.action + "/no_connection"
			}
			t.Run(name, func(t *testing.T) {
				// A warm instance first, so the failing call runs on a pooled one and the
				// call after it would get the same instance back if it were pooled again.
				ts.must(200, call("ok", conn))
				r := call(tt.action, conn)
				if r.Status != tt.status {
					t.Fatalf("%s: status %d, want %d: %s", tt.action, r.Status, tt.status, r.Body)
				}
				p := r.json(t)
				if p["code"] != tt.code || !strings.Contains(strings.ToLower(p["detail"].(string)), tt.detail) {
					t.Errorf("%s: problem = %s", tt.action, r.Body)
				}
				for i := range 3 {
					if r := call("ok", conn); r.Status != 200 {
						t.Fatalf("call %d after %s: status %d: %s", i+1, tt.action, r.Status, r.Body)
					}
				}
			})
		}
	}
}
