package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
	"github.com/plugboard/plugboard/server"
)

var (
	anyOnce sync.Once
	anyWasm []byte
)

// anymanifestWasm returns the anymanifest test plugin: bin/testplugins/anymanifest.wasm when
// `make build` left it fresh, otherwise a new build.
func anymanifestWasm(t *testing.T) []byte {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin; run without -short")
	}
	anyOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		built := filepath.Join(root, "bin", "testplugins", "anymanifest.wasm")
		if !fresh(root, built) {
			built = filepath.Join(t.TempDir(), "anymanifest.wasm") // read below, before the test ends
			goBuild(t, root, []string{"GOOS=wasip1", "GOARCH=wasm"}, "-buildmode=c-shared", "-o", built, "./plugins/testdata/anymanifest")
		}
		anyWasm, _ = os.ReadFile(built)
	})
	if anyWasm == nil {
		t.Fatal("no anymanifest.wasm")
	}
	return anyWasm
}

// writePlugin writes anymanifest describing manifest to path, with a modification time of
// stamp so each write is seen as a change.
func writePlugin(t *testing.T, path, manifest string, stamp time.Time) {
	t.Helper()
	b, err := patch.Patch(anymanifestWasm(t), []byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path+".tmp", stamp, stamp)
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func devManifest(version string, extra ...string) string {
	return `{"abi":1,"name":"anymanifest","version":"` + version + `","auth":{"types":["none"]},` + strings.Join(append(extra, ""), ",") +
		`"actions":[{"name":"echo","input_schema":{"type":"object"}}]}`
}

// waitOutput waits until out matches re.
func waitOutput(t *testing.T, out *lockedBuffer, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(time.Minute)
	for !rx.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("output never matched %q:\n%s", re, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// callEcho calls anymanifest's echo through the API and returns the version that served.
func callEcho(t *testing.T, url, token string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/connectors/anymanifest/actions/echo", strings.NewReader(`{"input":{}}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Version string `json:"version"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("echo: %d %s", resp.StatusCode, b)
	}
	return out.Version
}

// devWatch starts a real server and `plugboard dev --watch dir` against it. stop ends the
// watcher and fails the test unless it exited cleanly; the server closes with the test.
func devWatch(t *testing.T, dir string) (url string, out *lockedBuffer, stop func()) {
	t.Helper()
	srv, err := server.New(context.Background(), &server.Options{DataDir: t.TempDir(), AdminToken: "pba_dev",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	out = &lockedBuffer{}
	exited := make(chan int)
	go func() {
		exited <- run(ctx, []string{"dev", "--watch", dir, "--interval", "20ms"},
			func(k string) string {
				return map[string]string{"PLUGBOARD_URL": hs.URL, "PLUGBOARD_TOKEN": "pba_dev"}[k]
			},
			strings.NewReader(""), out, out)
	}()
	return hs.URL, out, func() {
		t.Helper()
		cancel()
		if code := <-exited; code != exitOK {
			t.Errorf("dev exited %d:\n%s", code, out.String())
		}
	}
}

// TestDevWatch runs `plugboard dev --watch` against a real server: the plugin in the directory
// is pushed at start, a rebuild with the same version is swapped in as a dev build, and a build
// asking for a new host is refused with the way to approve it.
func TestDevWatch(t *testing.T) {
	anymanifestWasm(t)

	dir := t.TempDir()
	plugin := filepath.Join(dir, "any.wasm")
	stamp := time.Now().Add(-time.Hour)
	writePlugin(t, plugin, devManifest("1.0.0"), stamp)

	url, out, stop := devWatch(t, dir)
	waitOutput(t, out, `any\.wasm: anymanifest 1\.0\.0 active`)
	if v := callEcho(t, url, "pba_dev"); v != "1.0.0" {
		t.Errorf("after the first push a call ran on %s", v)
	}

	writePlugin(t, plugin, devManifest("1.0.0", `"title":"edited"`), stamp.Add(time.Minute))
	waitOutput(t, out, `any\.wasm: anymanifest 1\.0\.0\+dev\.[0-9a-f]{8} active \(uploaded and swapped in`)
	if v := callEcho(t, url, "pba_dev"); !strings.HasPrefix(v, "1.0.0+dev.") {
		t.Errorf("after the rebuild a call ran on %s", v)
	}

	writePlugin(t, plugin, devManifest("1.1.0", `"hosts":["https://api.example.com"]`), stamp.Add(2*time.Minute))
	waitOutput(t, out, `any\.wasm: capabilities_changed: .*hosts \+https://api\.example\.com.*; accept with --approve-capabilities`)

	stop()
}

// TestServeWatch runs `plugboard serve --connectors-dir DIR --watch`: a changed plugin in the
// directory serves without a restart.
func TestServeWatch(t *testing.T) {
	anymanifestWasm(t)
	dir := t.TempDir()
	plugin := filepath.Join(dir, "any.wasm")
	stamp := time.Now().Add(-time.Hour)
	writePlugin(t, plugin, devManifest("1.0.0"), stamp)
	t.Setenv("PLUGBOARD_ADMIN_TOKEN", "pba_watch")

	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &lockedBuffer{}, &bytes.Buffer{}
	done := make(chan error)
	go func() {
		done <- runServe(ctx, []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--connectors-dir", dir, "--watch"}, stdout, stderr)
	}()
	waitOutput(t, stdout, `serving on http://\S+`)
	url := regexp.MustCompile(`serving on (http://\S+)`).FindStringSubmatch(stdout.String())[1]
	waitOutput(t, stdout, `any\.wasm: anymanifest 1\.0\.0 active \(already stored`)

	// A new version with a new host: the server's own watcher approves it.
	writePlugin(t, plugin, devManifest("1.1.0", `"hosts":["https://api.example.com"]`), stamp.Add(time.Minute))
	waitOutput(t, stdout, `any\.wasm: anymanifest 1\.1\.0 active`)
	waitOutput(t, stdout, `\+ host https://api\.example\.com \(needs approval\)`)
	if v := callEcho(t, url, "pba_watch"); v != "1.1.0" {
		t.Errorf("after the change a call ran on %s", v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v\n%s", err, stderr.String())
	}
}
