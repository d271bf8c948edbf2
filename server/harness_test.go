package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/server/openapi/openapitest"
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var (
	wasmMu    sync.Mutex
	wasmBuilt = map[string][]byte{}
)

// pluginWasm returns the .wasm of plugins/<name> or plugins/testdata/<name>: the one `make
// build` left in bin/ when it is newer than the sources, otherwise a fresh build.
func pluginWasm(t testing.TB, name string) []byte {
	t.Helper()
	wasmMu.Lock()
	defer wasmMu.Unlock()
	if b, ok := wasmBuilt[name]; ok {
		return b
	}
	root := repoRoot(t)
	src, out := filepath.Join("plugins", name), filepath.Join(root, "bin", "plugins", name+".wasm")
	if _, err := os.Stat(filepath.Join(root, src)); err != nil {
		src, out = filepath.Join("plugins", "testdata", name), filepath.Join(root, "bin", "testplugins", name+".wasm")
	}
	if b, err := os.ReadFile(out); err == nil && !stale(t, out, root) {
		wasmBuilt[name] = b
		return b
	}
	tmp := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", tmp, "./"+src)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", src, err, msg)
	}
	b, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	wasmBuilt[name] = b
	return b
}

// stale reports whether any guest source is newer than the built file.
func stale(t testing.TB, built, root string) bool {
	fi, err := os.Stat(built)
	if err != nil {
		return true
	}
	newer := false
	for _, dir := range []string{"abi", "pdk", "plugins"} {
		filepath.Walk(filepath.Join(root, dir), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() && filepath.Ext(p) == ".go" && info.ModTime().After(fi.ModTime()) {
				newer = true
			}
			return nil
		})
	}
	return newer
}

const testToken = "pba_test_token"

// sharedCache is one compilation cache for every server of this test binary, as one server
// process has: only the first upload of a module pays for compiling it.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugboard-cache-")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testServer is a Plugboard server on a loopback port with its data in a temp directory.
type testServer struct {
	t    testing.TB
	srv  *Server
	http *httptest.Server
	dir  string
	opts Options
}

// startServer starts a server; loopback egress is allowed so httptest upstreams are reachable.
func startServer(t testing.TB, edit func(*Options)) *testServer {
	t.Helper()
	opts := Options{
		DataDir:     t.TempDir(),
		AdminToken:  testToken,
		EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Host:        host.Config{CacheDir: sharedCache},
	}
	if edit != nil {
		edit(&opts)
	}
	return startServerWith(t, opts)
}

func startServerWith(t testing.TB, opts Options) *testServer {
	t.Helper()
	srv, err := New(context.Background(), &opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	h := srv.Handler()
	if _, bench := t.(*testing.B); !bench {
		h = openapitest.Middleware(t, h) // every exchange of every test is held to the OpenAPI document
	}
	ts := &testServer{t: t, srv: srv, http: httptest.NewServer(h), dir: opts.DataDir, opts: opts}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.http != nil {
		ts.http.Close()
		ts.srv.Close(context.Background())
		ts.http = nil
	}
}

// restart stops the server and starts a new one on the same data directory.
func (ts *testServer) restart() *testServer {
	ts.stop()
	return startServerWith(ts.t, ts.opts)
}

// response is a decoded API response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v\n%s", r.Status, err, r.Body)
	}
	return m
}

// code returns the problem code of an error response.
func (r response) code(t testing.TB) string {
	t.Helper()
	c, _ := r.json(t)["code"].(string)
	return c
}

func (ts *testServer) do(method, path string, body any, header ...string) response {
	ts.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/wasm"
	case string:
		rd, ct = bytes.NewReader([]byte(b)), "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, ts.http.URL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// must asserts the status of a response and returns it.
func (ts *testServer) must(status int, r response) response {
	ts.t.Helper()
	if r.Status != status {
		ts.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r
}

func (ts *testServer) upload(name string) response {
	ts.t.Helper()
	return ts.do("POST", "/v1/connectors", pluginWasm(ts.t, name))
}

func (ts *testServer) invoke(connector, action string, body map[string]any) response {
	ts.t.Helper()
	if body == nil {
		body = map[string]any{} // an action without connection or input: the body is still an object
	}
	return ts.do("POST", "/v1/connectors/"+connector+"/actions/"+action, body)
}
