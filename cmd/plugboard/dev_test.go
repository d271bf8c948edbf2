package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	out = &lockedBuffer{}
	url, stop = devWatchWith(t, dir, out, out)
	return url, out, stop
}

// devWatchWith is devWatch with the watcher's flags after the directory, its standard output
// to stdout and its standard error to stderr.
func devWatchWith(t *testing.T, dir string, stdout, stderr *lockedBuffer, flags ...string) (url string, stop func()) {
	t.Helper()
	srv, err := server.New(context.Background(), &server.Options{DataDir: t.TempDir(), AdminToken: "pba_dev",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int)
	go func() {
		exited <- run(ctx, append([]string{"dev", "--watch", dir, "--interval", "20ms"}, flags...),
			func(k string) string {
				return map[string]string{"PLUGBOARD_URL": hs.URL, "PLUGBOARD_TOKEN": "pba_dev"}[k]
			},
			strings.NewReader(""), stdout, stderr)
	}()
	return hs.URL, func() {
		t.Helper()
		cancel()
		if code := <-exited; code != exitOK {
			t.Errorf("dev exited %d:\n%s\n%s", code, stdout.String(), stderr.String())
		}
	}
}

// Progress lines of a push: when it starts, and its result with the server's steps.
const (
	uploadingLine = `%s (found|changed) → uploading \(\d+\.\d MiB\)`
	stepsLine     = `%s: compiled and checked in \d+\.\d\d s, stored in \d+\.\d\d s, swapped in \d+\.\d\d s → `
	sinceBuild    = ` active, answering \(\d+\.\d\d s after the build\)`
)

// TestDevWatch runs `plugboard dev --watch` against a real server: the plugin in the directory
// is pushed at start, a rebuild with the same version is swapped in as a dev build and serves,
// each push printing its progress (uploading, then the server's steps and the time since the
// build), and a build asking for a new host is refused with the way to approve it.
func TestDevWatch(t *testing.T) {
	anymanifestWasm(t)

	dir := t.TempDir()
	plugin := filepath.Join(dir, "any.wasm")
	stamp := time.Now().Add(-time.Hour)
	writePlugin(t, plugin, devManifest("1.0.0"), stamp)

	url, out, stop := devWatch(t, dir)
	waitOutput(t, out, fmt.Sprintf(uploadingLine, `any\.wasm`))
	waitOutput(t, out, fmt.Sprintf(stepsLine, `any\.wasm`)+`anymanifest 1\.0\.0 active, answering\n`) // found at start: no build time
	if v := callEcho(t, url, "pba_dev"); v != "1.0.0" {
		t.Errorf("after the first push a call ran on %s", v)
	}

	writePlugin(t, plugin, devManifest("1.0.0", `"title":"edited"`), time.Now())
	waitOutput(t, out, `any\.wasm changed → uploading \(\d+\.\d MiB\)`)
	waitOutput(t, out, fmt.Sprintf(stepsLine, `any\.wasm`)+`anymanifest 1\.0\.0\+dev\.[0-9a-f]{8}`+sinceBuild)
	if v := callEcho(t, url, "pba_dev"); !strings.HasPrefix(v, "1.0.0+dev.") {
		t.Errorf("after the rebuild a call ran on %s", v)
	}

	writePlugin(t, plugin, devManifest("1.1.0", `"hosts":["https://api.example.com"]`), time.Now().Add(time.Second))
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
	writePlugin(t, plugin, devManifest("1.1.0", `"hosts":["https://api.example.com"]`), time.Now())
	waitOutput(t, stdout, `any\.wasm changed → uploading \(\d+\.\d MiB\)`)
	waitOutput(t, stdout, fmt.Sprintf(stepsLine, `any\.wasm`)+`anymanifest 1\.1\.0`+sinceBuild)
	waitOutput(t, stdout, `\+ host https://api\.example\.com \(needs approval\)`)
	if v := callEcho(t, url, "pba_watch"); v != "1.1.0" {
		t.Errorf("after the change a call ran on %s", v)
	}

	// A rebuild of it serves as a dev build.
	writePlugin(t, plugin, devManifest("1.1.0", `"hosts":["https://api.example.com"]`, `"title":"edited"`), time.Now().Add(time.Second))
	waitOutput(t, stdout, fmt.Sprintf(stepsLine, `any\.wasm`)+`anymanifest 1\.1\.0\+dev\.[0-9a-f]{8}`+sinceBuild)
	if v := callEcho(t, url, "pba_watch"); !strings.HasPrefix(v, "1.1.0+dev.") {
		t.Errorf("after the rebuild a call ran on %s", v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v\n%s", err, stderr.String())
	}
}

// TestDevWatchJSON: with -o json, standard output holds one JSON object a push and nothing
// else, a rebuild's with the size, the server's steps and the time since the build; the
// progress lines go to standard error.
func TestDevWatchJSON(t *testing.T) {
	anymanifestWasm(t)
	dir := t.TempDir()
	plugin := filepath.Join(dir, "any.wasm")
	writePlugin(t, plugin, devManifest("1.0.0"), time.Now().Add(-time.Hour))
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	url, stop := devWatchWith(t, dir, out, errOut, "-o", "json")
	waitOutput(t, out, `"result":"uploaded"`)
	writePlugin(t, plugin, devManifest("1.0.0", `"title":"edited"`), time.Now())
	waitOutput(t, out, `"version":"1\.0\.0\+dev\.[0-9a-f]{8}"`)
	stop()

	var pushes []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("a line of standard output is not JSON: %q", line)
		}
		pushes = append(pushes, ev)
	}
	if len(pushes) != 2 {
		t.Fatalf("%d JSON lines, want one a push (2):\n%s", len(pushes), out.String())
	}
	if _, ok := pushes[0]["since_build_ms"]; ok {
		t.Errorf("the push of a file found at start has a build time: %v", pushes[0])
	}
	rebuild := pushes[1]
	for _, k := range []string{"size", "since_build_ms", "check_ms", "took_ms"} {
		if n, _ := rebuild[k].(float64); n <= 0 {
			t.Errorf("the rebuild's %s = %v, want a positive number: %v", k, rebuild[k], rebuild)
		}
	}
	if v := callEcho(t, url, "pba_dev"); v != rebuild["version"] {
		t.Errorf("a call ran on %s, want %v", v, rebuild["version"])
	}
	for _, re := range []string{`any\.wasm found → uploading`, `any\.wasm changed → uploading \(\d+\.\d MiB\)`} {
		if !regexp.MustCompile(re).MatchString(errOut.String()) {
			t.Errorf("standard error does not match %q:\n%s", re, errOut.String())
		}
	}
}
