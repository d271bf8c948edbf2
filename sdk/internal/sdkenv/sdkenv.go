// Package sdkenv starts what the SDK tests run against: the real plugboard binary
// (`plugboard serve` as a process, with the bundled http connector and the trig test plugin),
// a fake "records" service the connectors call, and, in front of the server, a proxy that
// checks every exchange against the server's own OpenAPI document.
//
// The scenario is the one the SDK examples tell: an operator ("another app") owns the
// connection crm to the records service; an app holds only an invoker key scoped to that
// connection, reads and sends records through the http connector, and receives a
// trig.items event for every new record, by pull or by push.
//
// A test starts it with [Start] and hands [Env.Vars] to the node or python3 process it runs.
package sdkenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

// The names the scenario creates.
const (
	// Connection is the connection to the records service, owned by the operator; it serves
	// both the http connector (read and send) and trig (its items feed).
	Connection = "crm"
	// RecordsKey is the records service's API key, held by the connection. No SDK call may
	// ever show it.
	RecordsKey = "rk_sdk_3f9a1c"
	adminToken = "pba_sdk_admin_7d2e"
)

// Env is a running server, its records service and the app's key.
type Env struct {
	// URL is the base URL the SDKs use: the checking proxy in front of the server.
	URL string
	// ServerURL is the server itself, for a test that must not go through the proxy.
	ServerURL string
	// AdminToken is the operator's admin token.
	AdminToken string
	// AppToken is the app's invoker key, scoped to the http and trig connectors and to
	// [Connection].
	AppToken string
	// Records is the fake records service.
	Records *Records
	// Root is the repository's root directory.
	Root string

	server *serveProc
	check  *Checker
}

// Vars is the environment for a child process: PLUGBOARD_URL, PLUGBOARD_TOKEN (the app's
// key), PLUGBOARD_ADMIN_TOKEN, PLUGBOARD_CONNECTION and RECORDS_URL, after the test's own
// environment without its PLUGBOARD_ variables.
func (e *Env) Vars() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"PLUGBOARD_URL="+e.URL,
		"PLUGBOARD_TOKEN="+e.AppToken,
		"PLUGBOARD_ADMIN_TOKEN="+e.AdminToken,
		"PLUGBOARD_CONNECTION="+Connection,
		"RECORDS_URL="+e.Records.URL,
	)
}

// Run runs a command (node, python3, npm) in dir with [Env.Vars], and fails the test with its
// output when it exits non-zero. It returns the combined output.
func (e *Env) Run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = e.Vars()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	if strings.Contains(string(out), RecordsKey) {
		t.Errorf("%s %s printed the records service's API key", name, strings.Join(args, " "))
	}
	return string(out)
}

// RunUntil starts cmd (whose Dir and Env the caller sets, usually to e.Vars() and more), calls
// then once when it prints a line starting with ready (within 30 s), and returns its output
// (stdout, then stderr) once it exited, within 45 s of that line. It fails the test if the
// program fails, does not get there in time, or prints the records service's API key.
func (e *Env) RunUntil(t *testing.T, cmd *exec.Cmd, ready string, then func()) string {
	t.Helper()
	prog := strings.Join(cmd.Args, " ")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdoutText, stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	output := func() string { return stdoutText.String() + stderr.String() }
	seen := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		fired := false
		for sc.Scan() {
			stdoutText.Write([]byte(sc.Text() + "\n"))
			if !fired && strings.HasPrefix(sc.Text(), ready) {
				fired = true
				close(seen)
			}
		}
	}()
	select {
	case <-seen:
	case <-scanned:
		cmd.Wait()
		t.Fatalf("%s exited before it printed %q:\n%s", prog, ready, output())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s did not print %q within 30 s:\n%s", prog, ready, output())
	}
	then()
	done := make(chan error, 1)
	go func() { <-scanned; done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v\n%s", prog, err, output())
		}
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish within 45 s of %q:\n%s", prog, ready, output())
	}
	got := output()
	if strings.Contains(got, RecordsKey) {
		t.Errorf("%s printed the records service's API key", prog)
	}
	return got
}

// Start builds (or finds fresh in bin/) the plugboard binary, the http connector and the trig
// test plugin, starts the records service and `plugboard serve`, creates the connection crm
// as the operator and an invoker key for the app, and puts the checking proxy in front.
// Everything stops when the test ends; the server's log is shown if the test failed.
func Start(t *testing.T) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the real server; run without -short")
	}
	root := repoRoot()
	tmp := t.TempDir()
	bin := binary(t, root, tmp)
	connectors := filepath.Join(tmp, "connectors")
	if err := os.Mkdir(connectors, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"plugins/http", "plugins/testdata/trig"} {
		b, err := os.ReadFile(wasmPlugin(t, root, pkg, tmp))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(connectors, filepath.Base(pkg)+".wasm"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecords(RecordsKey)
	t.Cleanup(rec.Close)

	e := &Env{AdminToken: adminToken, Records: rec, Root: root}
	e.server = startServe(t, bin, filepath.Join(tmp, "var"), adminToken, "--connectors-dir", connectors)
	e.ServerURL = e.server.url
	e.check = NewChecker(t, e.ServerURL)
	e.URL = e.check.URL

	e.admin(t, http.MethodPost, "/v1/connections", map[string]any{
		"id": Connection, "connectors": []string{"http", "trig"},
		"params": map[string]any{"base_url": rec.URL},
		"auth":   map[string]any{"type": "api_key", "api_key": RecordsKey},
	}, nil)
	var key struct {
		Secret string `json:"secret"`
	}
	e.admin(t, http.MethodPost, "/v1/keys", map[string]any{
		"name": "sdk-app", "role": "invoker",
		"scopes": map[string]any{"connectors": []string{"http", "trig"}, "connections": []string{Connection}},
	}, &key)
	e.AppToken = key.Secret
	return e
}

// admin sends one request as the operator through the checking proxy and decodes a 2xx answer
// into out; anything else fails the test.
func (e *Env) admin(t *testing.T, method, path string, in, out any) {
	t.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, e.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s\n%s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
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
		if d.IsDir() && p != root && (d.Name() == "bin" || d.Name() == "var" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
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

// binary is bin/plugboard when `make build` made it from the current sources, else a build.
func binary(t *testing.T, root, tmp string) string {
	bin := filepath.Join(root, "bin", "plugboard")
	if fresh(root, bin) {
		return bin
	}
	bin = filepath.Join(tmp, "plugboard")
	goBuild(t, root, nil, "-o", bin, "./cmd/plugboard")
	return bin
}

// wasmPlugin is the plugin's .wasm from bin/ when fresh, else a build into dir.
func wasmPlugin(t *testing.T, root, pkg, dir string) string {
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

type serveProc struct {
	url    string
	stderr *syncBuffer
}

// startServe starts `plugboard serve` on a free loopback port with loopback egress allowed
// (the records service and the push receivers run on this machine) and waits for its URL.
func startServe(t *testing.T, bin, data, token string, extra ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data, "--egress-allow", "127.0.0.0/8"}, extra...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PLUGBOARD_ADMIN_TOKEN="+token)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the server did not stop within 30 s of SIGINT")
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log := p.stderr.String()
			if lines := strings.Split(log, "\n"); len(lines) > 80 {
				log = strings.Join(lines[len(lines)-80:], "\n")
			}
			t.Logf("server log (tail):\n%s", log)
		}
		if strings.Contains(p.stderr.String(), RecordsKey) {
			t.Error("the server log holds the records service's API key")
		}
	})
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
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
				t.Fatalf("the server exited before it served:\n%s", p.stderr.String())
			}
			if m := re.FindStringSubmatch(l); m != nil {
				p.url = m[1]
				return p
			}
		case <-timeout:
			t.Fatal("the server did not start within 2 minutes")
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writer and the test's reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Records is the fake records service: a small REST API with an API key, whose records are
// also the items feed the trig connector polls.
//
//	GET  /records            {"records": [record, ...]}, oldest first
//	POST /records {"name"…}  201 record: {"id": "rec_N", "n": N, "name", ..., "created_at"}
//	GET  /items?latest=1     {"latest": N}                       (trig's feed)
//	GET  /items?after=N&limit=K  {"items": [{"n", "id", "type": "record.created", "time", "data": record}], "more"}
//
// Every request needs the key, as "Authorization: Bearer KEY" (http connector) or
// "X-Api-Key: KEY" (trig); without it the answer is 401 {"error": "unauthorized"}.
type Records struct {
	// URL is the service's base URL.
	URL string

	srv     *httptest.Server
	key     string
	mu      sync.Mutex
	records []map[string]any
}

func newRecords(key string) *Records {
	r := &Records{key: key}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	return r
}

// Close stops the service.
func (r *Records) Close() { r.srv.Close() }

// Add creates a record as if another system had, and returns it.
func (r *Records) Add(fields map[string]any) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := map[string]any{}
	for k, v := range fields {
		rec[k] = v
	}
	n := len(r.records) + 1
	rec["n"] = n
	rec["id"] = fmt.Sprintf("rec_%d", n)
	rec["created_at"] = time.Now().UTC().Format(time.RFC3339Nano)
	r.records = append(r.records, rec)
	return rec
}

// All returns a copy of the records, oldest first.
func (r *Records) All() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.records...)
}

func (r *Records) serve(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if req.Header.Get("Authorization") != "Bearer "+r.key && req.Header.Get("X-Api-Key") != r.key {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error": "unauthorized"}`)
		return
	}
	switch {
	case req.URL.Path == "/records" && req.Method == http.MethodGet:
		json.NewEncoder(w).Encode(map[string]any{"records": r.All()})
	case req.URL.Path == "/records" && req.Method == http.MethodPost:
		var fields map[string]any
		if err := json.NewDecoder(req.Body).Decode(&fields); err != nil || fields == nil {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error": "the body must be a JSON object"}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(r.Add(fields))
	case req.URL.Path == "/items" && req.Method == http.MethodGet:
		r.feed(w, req)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error": "not found"}`)
	}
}

func (r *Records) feed(w http.ResponseWriter, req *http.Request) {
	all := r.All()
	q := req.URL.Query()
	if q.Get("latest") != "" {
		json.NewEncoder(w).Encode(map[string]any{"latest": len(all)})
		return
	}
	var after, limit int
	fmt.Sscan(q.Get("after"), &after)
	if _, err := fmt.Sscan(q.Get("limit"), &limit); err != nil || limit <= 0 {
		limit = 100
	}
	items := []map[string]any{}
	for _, rec := range all {
		if n := rec["n"].(int); n > after && len(items) < limit {
			items = append(items, map[string]any{"n": n, "id": rec["id"], "type": "record.created", "time": rec["created_at"], "data": rec})
		}
	}
	more := len(all) > after+len(items)
	json.NewEncoder(w).Encode(map[string]any{"items": items, "more": more})
}
