package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBinaryEndToEnd builds the real plugboard binary and the real http connector, starts
// `plugboard serve` as a process, and drives it with the CLI over HTTP: push, connection
// create (secret on stdin), invoke. The upstream fake sees the injected key; no CLI output shows
// it.
func TestBinaryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and a plugin; run without -short")
	}
	root, bin := plugboardBinary(t)
	tmp := t.TempDir()
	connectors := filepath.Join(tmp, "connectors")
	os.Mkdir(connectors, 0o755)
	b, _ := os.ReadFile(wasmPlugin(t, root, "plugins/http", tmp))
	os.WriteFile(filepath.Join(connectors, "http.wasm"), b, 0o644)

	const secret = "sk-binary-e2e-5c1d"
	var mu sync.Mutex
	var seen string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Get("Authorization")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"hello": r.URL.Query().Get("name")})
	}))
	defer upstream.Close()

	srv := startServe(t, bin, filepath.Join(tmp, "var"), "pba_e2e", "--connectors-dir", connectors)
	url := srv.url

	env := map[string]string{"PLUGBOARD_URL": url, "PLUGBOARD_TOKEN": "pba_e2e"}
	cli := func(stdin string, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
		if code != 0 {
			t.Fatalf("plugboard %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		if strings.Contains(out.String()+errOut.String(), secret) {
			t.Fatalf("plugboard %s printed the secret", strings.Join(args, " "))
		}
		return out.String()
	}
	if out := cli("", "connector", "list"); !strings.Contains(out, "http") || !strings.Contains(out, "1.0.0") {
		t.Errorf("connector list:\n%s", out)
	}
	// Pushing the same bytes again is idempotent.
	cli("", "connector", "push", filepath.Join(connectors, "http.wasm"))
	cli(secret+"\n", "connection", "create", "up", "--connector", "http", "--param", "base_url="+upstream.URL, "--auth", "api_key", "--api-key-stdin")
	out := cli("", "invoke", "http", "request", "--connection", "up", "--input", `{"path": "/greet", "query": {"name": "plugboard"}}`)
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("invoke printed no JSON: %v\n%s", err, out)
	}
	if body, _ := res["body"].(map[string]any); body["hello"] != "plugboard" {
		t.Errorf("invoke output = %s", out)
	}
	mu.Lock()
	if seen != "Bearer "+secret {
		t.Errorf("upstream saw Authorization %q", seen)
	}
	mu.Unlock()
	// Stop the server (SIGINT, graceful) before reading its whole log.
	srv.stop()
	if strings.Contains(srv.stderr.String(), secret) {
		t.Error("the server log holds the secret")
	}
}

// lockedBuffer is a bytes.Buffer safe for the process's writer and the test's reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fresh reports whether a built file exists and is newer than every non-test Go source.
func fresh(root, built string) bool {
	fi, err := os.Stat(built)
	if err != nil {
		return false
	}
	stale := false
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || stale {
			return filepath.SkipDir
		}
		if d.IsDir() && (d.Name() == "bin" || d.Name() == "var" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			if info, err := d.Info(); err == nil && info.ModTime().After(fi.ModTime()) {
				stale = true
			}
		}
		return nil
	})
	return !stale
}

// plugboardBinary returns the repository root and a plugboard binary: bin/plugboard when
// `make test` built it from the current sources, otherwise a fresh build in a temp directory.
func plugboardBinary(t *testing.T) (root, bin string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root = filepath.Dir(filepath.Dir(filepath.Dir(file)))
	bin = filepath.Join(root, "bin", "plugboard")
	if !fresh(root, bin) {
		bin = filepath.Join(t.TempDir(), "plugboard")
		goBuild(t, root, nil, "-o", bin, "./cmd/plugboard")
	}
	return root, bin
}

// wasmPlugin returns the .wasm of the plugin package pkg ("plugins/http",
// "plugins/testdata/trig"): the one `make build` put in bin/ when it is fresh, otherwise a
// build into dir.
func wasmPlugin(t *testing.T, root, pkg, dir string) string {
	t.Helper()
	name := filepath.Base(pkg)
	built := filepath.Join(root, "bin", "plugins", name+".wasm")
	if strings.HasPrefix(pkg, "plugins/testdata/") {
		built = filepath.Join(root, "bin", "testplugins", name+".wasm")
	}
	if fresh(root, built) {
		return built
	}
	out := filepath.Join(dir, name+".wasm")
	goBuild(t, root, []string{"GOOS=wasip1", "GOARCH=wasm"}, "-buildmode=c-shared", "-o", out, "./"+pkg)
	return out
}

func goBuild(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	c := exec.Command("go", append([]string{"build", "-trimpath"}, args...)...)
	c.Dir = dir
	c.Env = append(os.Environ(), env...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, out)
	}
}

// waitForURL reads the server's first line, "Plugboard is serving on URL (...)".
func waitForURL(t *testing.T, stdout interface{ Read([]byte) (int, error) }) string {
	t.Helper()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads after the URL: drop, but keep draining so serve never blocks
			}
		}
		close(lines)
	}()
	re := regexp.MustCompile(`serving on (http://\S+)`)
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the server exited before it served")
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		case <-timeout:
			t.Fatal("the server did not start within 2 minutes")
		}
	}
}
