package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// seedStore writes a data directory whose plugboard.db holds n connections (enough to spill
// the connections bucket out of its parent page), and returns the db's path.
func seedStore(t *testing.T, dir string, n int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "plugboard.db")
	st, err := registry.OpenStore(context.Background(), registry.StoreConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		c := storage.Connection{ID: fmt.Sprintf("conn-%03d", i), Connectors: []string{"http"}, AuthType: "none", Status: "ready",
			Params: json.RawMessage(fmt.Sprintf(`{"base_url":"https://example.com/%s"}`, strings.Repeat("p", 200)))}
		if err := st.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// storeHighWater returns the size bbolt's meta says the file must have (pgid * page size).
func storeHighWater(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

// runServeOnce runs `plugboard serve` on data with extra flags and waits for it to exit on its
// own (it must refuse to start); it fails the test when it serves instead.
func runServeOnce(t *testing.T, bin, data string, extra ...string) (code int, output string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data}, extra...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PLUGBOARD_ADMIN_TOKEN=pba_store_test")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("serve did not exit within 30 s; output:\n%s", out.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// assertRefusedStore checks a refusal: the store exit code, the file named, advice, no crash dump.
func assertRefusedStore(t *testing.T, code int, out, dbPath string, want ...string) {
	t.Helper()
	if code != exitStore {
		t.Errorf("exit code %d, want %d (store unusable)", code, exitStore)
	}
	for _, w := range append([]string{dbPath, "plugboard store restore", "move it away"}, want...) {
		if !strings.Contains(out, w) {
			t.Errorf("output does not say %q", w)
		}
	}
	for _, bad := range []string{"goroutine ", "SIGBUS", "panic", "signal "} {
		if strings.Contains(out, bad) {
			t.Errorf("output holds %q (a crash dump)", bad)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestServeRefusesTruncatedStore is issue 11 item 10: a plugboard.db cut short (at 0 bytes, in
// a meta page, in a data page) makes `plugboard serve` refuse to start with exit code 3 and a
// message naming the file and what to do, never a SIGBUS crash dump.
func TestServeRefusesTruncatedStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; run without -short")
	}
	_, bin := plugboardBinary(t)
	seed := seedStore(t, filepath.Join(t.TempDir(), "seed"), 60)
	full, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	hw := storeHighWater(t, seed)
	if hw < 8*4096 {
		t.Fatalf("seed store is only %d bytes: too small to cut in a data page", hw)
	}
	key, err := os.ReadFile(filepath.Join(filepath.Dir(seed), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		size int64
		want string
	}{
		{"empty file", 0, "empty"},
		{"cut inside the first meta page", 100, "truncated"},
		{"cut inside the second meta page", 4096 + 2000, "truncated"},
		{"cut inside a data page", hw/2 + 1000, "truncated"},
		{"cut inside the last page", hw - 100, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "var")
			os.MkdirAll(data, 0o700)
			db := filepath.Join(data, "plugboard.db")
			if err := os.WriteFile(db, full[:tc.size], 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(data, "master.key"), key, 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := runServeOnce(t, bin, data)
			assertRefusedStore(t, code, out, db, tc.want)
		})
	}
}

// corruptLeaf overwrites, in the stopped store at path, a leaf page holding the key marker with
// zeros (as a stray write would), and returns its page number.
func corruptLeaf(t *testing.T, path, marker string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	for off := 2 * pageSize; off+pageSize <= len(b); off += pageSize {
		page := b[off : off+pageSize]
		if page[8] == 0x02 && bytes.Contains(page, []byte(marker)) { // flags 0x02: leaf page
			clear(page)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return int64(off / pageSize)
		}
	}
	t.Fatalf("no leaf page of %s holds %q", path, marker)
	return 0
}

// serveProc is a running `plugboard serve`.
type serveProc struct {
	url    string
	stderr *lockedBuffer
	stop   func()
}

// startServe runs `plugboard serve` on data with extra flags and waits until it serves; token
// is its PLUGBOARD_ADMIN_TOKEN, or "" to let it generate one in data/admin.token.
func startServe(t *testing.T, bin, data, token string, extra ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data, "--egress-allow", "127.0.0.0/8"}, extra...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if token != "" {
		cmd.Env = append(cmd.Env, "PLUGBOARD_ADMIN_TOKEN="+token)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.stop = func() {
		select {
		case <-done:
			return
		default:
		}
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the server did not stop within 30 s of SIGINT")
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", crashTail(p.stderr.String(), 80))
		}
	})
	p.url = waitForURL(t, stdout)
	return p
}

// httpDo sends one request with the token and returns the status and body.
func httpDo(t *testing.T, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		ct := "application/json"
		if bytes.HasPrefix(body, []byte("\x00asm")) {
			ct = "application/wasm"
		}
		req.Header.Set("Content-Type", ct)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestServeOnOverwrittenPages is issue 11 item 11: a leaf page of the connections bucket
// overwritten with zeros. Without --skip-store-check the server refuses to start (exit 3,
// naming the file and the check's problems); with it, it starts, a read of the connections
// answers 500 store_corrupt (not a handler panic), /readyz then answers 503 and the metric
// plugboard_store_corrupt_total counts it.
func TestServeOnOverwrittenPages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; run without -short")
	}
	_, bin := plugboardBinary(t)
	data := filepath.Join(t.TempDir(), "var")
	db := seedStore(t, data, 60)
	pg := corruptLeaf(t, db, "conn-030")
	t.Logf("zeroed page %d", pg)

	code, out := runServeOnce(t, bin, data)
	assertRefusedStore(t, code, out, db, "consistency check", fmt.Sprintf("Page expected to be: %d", pg))

	const token = "pba_store_corrupt"
	srv := startServe(t, bin, data, token, "--skip-store-check")
	if st, body := httpDo(t, "GET", srv.url+"/readyz", "", nil); st != 200 {
		t.Fatalf("readyz before any read: %d %s", st, body)
	}
	st, body := httpDo(t, "GET", srv.url+"/v1/connections", token, nil)
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	json.Unmarshal(body, &p)
	if st != 500 || p.Code != "store_corrupt" || !strings.Contains(p.Detail, "plugboard store check") {
		t.Errorf("GET /v1/connections on a damaged page: %d %s, want 500 store_corrupt saying to run `plugboard store check`", st, body)
	}
	if strings.Contains(string(body), data) || strings.Contains(string(body), "goroutine") {
		t.Errorf("the problem leaks a server path or a stack: %s", body)
	}
	if st, body := httpDo(t, "GET", srv.url+"/readyz", "", nil); st != 503 || !strings.Contains(string(body), "store_corrupt") {
		t.Errorf("readyz after a damaged read: %d %s, want 503 store_corrupt", st, body)
	}
	_, metrics := httpDo(t, "GET", srv.url+"/metrics", "", nil)
	if !strings.Contains(string(metrics), "plugboard_store_corrupt_total 1") {
		t.Errorf("metrics lack plugboard_store_corrupt_total 1:\n%s", grepLines(string(metrics), "store"))
	}
	if strings.Contains(srv.stderr.String(), "goroutine ") {
		t.Errorf("the server log holds a stack dump")
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// problemOf decodes a problem document's code and detail.
func problemOf(body []byte) (code, detail string) {
	var p struct{ Code, Detail string }
	json.Unmarshal(body, &p)
	return p.Code, p.Detail
}

// fillDisk writes filler files in dir until the file system refuses (ENOSPC) and returns a
// function that removes them.
func fillDisk(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	for _, n := range []int{4096, 512, 1} { // the last crumbs
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServeOnFullDisk is issue 11 item 12: the data directory on a small tmpfs, filled up.
// An upload (compilation cache and blob writes) and connection writes answer 507
// insufficient_storage with a detail naming no path, never 400 invalid_wasm or 500 internal;
// nothing acknowledged is lost, and once space is freed the same requests succeed.
func TestServeOnFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and mounts a tmpfs; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: mounting a small tmpfs as the data directory needs root (CI runs as root); run this test as root")
	}
	root, bin := plugboardBinary(t)
	tmp := t.TempDir()
	httpWasm, err := os.ReadFile(wasmPlugin(t, root, "plugins/http", tmp))
	if err != nil {
		t.Fatal(err)
	}
	trigWasm, err := os.ReadFile(wasmPlugin(t, root, "plugins/testdata/trig", tmp))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "var")
	os.Mkdir(data, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", data).Run() }) // after the server stopped (cleanups run last first)

	const token = "pba_full_disk"
	srv := startServe(t, bin, data, token)
	req := func(method, path string, body []byte) (int, []byte) {
		return httpDo(t, method, srv.url+path, token, body)
	}
	if st, b := req("POST", "/v1/connectors", httpWasm); st != 201 {
		t.Fatalf("upload on a free disk: %d %s", st, b)
	}
	conn := func(id string) []byte {
		return []byte(fmt.Sprintf(`{"id":%q,"connectors":["http"],"auth":{"type":"none"},"params":{"base_url":"https://example.com/%s"}}`, id, strings.Repeat("x", 1500)))
	}
	if st, b := req("POST", "/v1/connections", conn("before")); st != 201 {
		t.Fatalf("connection on a free disk: %d %s", st, b)
	}

	free := fillDisk(t, data)
	want507 := func(what string, st int, b []byte) {
		t.Helper()
		code, detail := problemOf(b)
		if st != 507 || code != "insufficient_storage" || !strings.Contains(detail, "disk is full") {
			t.Errorf("%s on a full disk: %d %s, want 507 insufficient_storage", what, st, b)
		}
		if strings.Contains(string(b), data) || strings.Contains(string(b), "/") && strings.Contains(string(b), "cache") {
			t.Errorf("%s: the problem leaks a server path: %s", what, b)
		}
	}
	st, b := req("POST", "/v1/connectors", trigWasm)
	want507("upload", st, b)

	// bbolt reuses the pages it freed, which a full disk does not refuse: write until a
	// write needs new space. Every answer is 201 or 507, never a client error or 500.
	var created []string
	got507 := false
	for i := 0; i < 300 && !got507; i++ {
		id := fmt.Sprintf("full-%03d", i)
		st, b := req("POST", "/v1/connections", conn(id))
		switch st {
		case 201:
			created = append(created, id)
		default:
			want507("connection create", st, b)
			got507 = true
		}
	}
	if !got507 {
		t.Fatal("300 connection writes on a full disk all succeeded: the disk was not full")
	}
	t.Logf("%d connection writes fitted in freed pages before one answered 507", len(created))

	free()
	if st, b := req("POST", "/v1/connectors", trigWasm); st != 201 {
		t.Errorf("upload after freeing space: %d %s", st, b)
	}
	if st, b := req("POST", "/v1/connections", conn("after")); st != 201 {
		t.Errorf("connection after freeing space: %d %s", st, b)
	}
	for _, id := range append([]string{"before", "after"}, created...) {
		if st, b := req("GET", "/v1/connections/"+id, nil); st != 200 {
			t.Errorf("connection %s after the full disk: %d %s", id, st, b)
		}
	}
	if st, b := httpDo(t, "GET", srv.url+"/readyz", "", nil); st != 200 {
		t.Errorf("readyz after the full disk: %d %s", st, b)
	}
}

// TestBackupAndRestore is issue 11 item 13 end to end with the real binary: a server with a
// connector, a connection, a key, an MCP server and a queue subscription whose poll cursor has
// delivered (and acked) events is backed up live, while calls run, with `plugboard store
// backup`; `store check` passes the backup; `store restore` installs it in a fresh data
// directory (with the same master key file); a server started there serves the same
// connectors, connections, keys, MCP servers and subscriptions, the key works, and the
// subscription continues from its cursor: new items arrive, none delivered before the backup
// comes again.
func TestBackupAndRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and a plugin; run without -short")
	}
	root, bin := plugboardBinary(t)
	tmp := t.TempDir()
	wasm, err := os.ReadFile(wasmPlugin(t, root, "plugins/testdata/trig", tmp))
	if err != nil {
		t.Fatal(err)
	}
	const token = "pba_backup"
	feed := newCrashFeed(t)
	for range 5 {
		feed.add()
	}
	dataA := filepath.Join(tmp, "a")
	a := startServe(t, bin, dataA, token)
	must := func(srv *serveProc, want int, method, path string, body any) map[string]any {
		t.Helper()
		var b []byte
		switch v := body.(type) {
		case nil:
		case []byte:
			b = v
		default:
			b, _ = json.Marshal(v)
		}
		st, out := httpDo(t, method, srv.url+path, token, b)
		if st != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, st, out, want)
		}
		var doc map[string]any
		json.Unmarshal(out, &doc)
		return doc
	}
	must(a, 201, "POST", "/v1/connectors", wasm)
	must(a, 201, "POST", "/v1/connections", map[string]any{"id": "feed", "connectors": []string{"trig"},
		"auth": map[string]any{"type": "none"}, "params": map[string]any{"base_url": feed.srv.URL}})
	key := must(a, 201, "POST", "/v1/keys", map[string]any{"name": "reader", "role": "reader"})
	must(a, 201, "POST", "/v1/mcp-servers", map[string]any{"name": "feedtools", "connector": "trig", "connection": "feed"})
	sub := must(a, 201, "POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
		"params": map[string]any{}, "interval_s": 1, "delivery": map[string]any{"type": "queue"}})
	subID := sub["id"].(string)

	// pull drains srv's queue, acking, until every item of want arrived (or the deadline), and
	// returns the item numbers received.
	pull := func(srv *serveProc, want ...int64) []int64 {
		t.Helper()
		var got []int64
		has := func() bool {
			for _, w := range want {
				if !slices.Contains(got, w) {
					return false
				}
			}
			return true
		}
		deadline := time.Now().Add(30 * time.Second)
		for !has() && time.Now().Before(deadline) {
			page := must(srv, 200, "GET", "/v1/subscriptions/"+subID+"/events?max=100&wait_s=2", nil)
			evs, _ := page["events"].([]any)
			var ids []string
			for _, e := range evs {
				ev := e.(map[string]any)
				n, err := crashCheckEvent(ev, subID)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, n)
				ids = append(ids, ev["id"].(string))
			}
			if len(ids) > 0 {
				must(srv, 200, "POST", "/v1/subscriptions/"+subID+"/events/ack", map[string]any{"ids": ids})
			}
		}
		return got
	}
	// Whatever the first poll makes of items 1-5, items 6 and 7 are owed: everything pulled
	// here was delivered and acked before the backup.
	feed.add()
	feed.add()
	before := pull(a, 6, 7)
	if !slices.Contains(before, 6) || !slices.Contains(before, 7) {
		t.Fatalf("before the backup the subscription delivered %v, want items 6 and 7", before)
	}

	// Backup while calls run.
	stopCalls := make(chan struct{})
	callsDone := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stopCalls:
				callsDone <- n
				return
			default:
			}
			if st, _ := httpDo(t, "GET", a.url+"/v1/connections/feed", token, nil); st == 200 {
				n++
			}
		}
	}()
	env := map[string]string{"PLUGBOARD_URL": a.url, "PLUGBOARD_TOKEN": token}
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
		if code != wantCode {
			t.Fatalf("plugboard %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	backup := filepath.Join(tmp, "backup.db")
	out := cli(0, "store", "backup", backup)
	close(stopCalls)
	t.Logf("%s(%d calls answered during the backup)", out, <-callsDone)
	if !strings.Contains(out, "master key") {
		t.Errorf("backup output does not mention the master key:\n%s", out)
	}
	if _, err := os.Stat(backup + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("backup left %s.tmp behind", backup)
	}
	cli(0, "store", "check", backup)
	audit := must(a, 200, "GET", "/v1/audit", nil)
	if b, _ := json.Marshal(audit); !strings.Contains(string(b), "GET /v1/store/backup") {
		t.Errorf("the audit log does not record the backup: %s", b)
	}

	// Items after the backup: owed to the restored subscription, which never saw them.
	lists := map[string]any{}
	for _, p := range []string{"/v1/connectors", "/v1/connections", "/v1/keys", "/v1/mcp-servers", "/v1/subscriptions"} {
		lists[p] = must(a, 200, "GET", p, nil)
	}
	a.stop()

	dataB := filepath.Join(tmp, "b")
	out = cli(0, "store", "restore", backup, "--data", dataB)
	if !strings.Contains(out, "master key") {
		t.Errorf("restore output does not say to copy the master key:\n%s", out)
	}
	cli(1, "store", "restore", backup, "--data", dataB) // a second restore without --force refuses
	keyFile, _ := os.ReadFile(filepath.Join(dataA, "master.key"))
	os.WriteFile(filepath.Join(dataB, "master.key"), keyFile, 0o600)
	feed.add()
	feed.add()
	feed.add()

	b := startServe(t, bin, dataB, token)
	for p, want := range lists {
		got := must(b, 200, "GET", p, nil)
		if p == "/v1/connections" { // circuit breakers are runtime state, not stored
			for _, doc := range []map[string]any{want.(map[string]any), got} {
				for _, c := range doc["connections"].([]any) {
					delete(c.(map[string]any), "resilience")
				}
			}
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if p == "/v1/subscriptions" || p == "/v1/connectors" { // poll times and pool state move on
			if !strings.Contains(string(gj), subID) && p == "/v1/subscriptions" || !strings.Contains(string(gj), `"trig"`) {
				t.Errorf("restored %s = %s, want the same entries as %s", p, gj, wj)
			}
			continue
		}
		if string(wj) != string(gj) {
			t.Errorf("restored %s:\n got %s\nwant %s", p, gj, wj)
		}
	}
	if st, body := httpDo(t, "GET", b.url+"/v1/connectors", key["secret"].(string), nil); st != 200 {
		t.Errorf("the restored key does not work: %d %s", st, body)
	}
	after := pull(b, 8, 9, 10)
	for _, n := range after {
		for _, m := range before {
			if n == m {
				t.Errorf("item %d, delivered and acked before the backup, was delivered again after the restore (got %v)", n, after)
			}
		}
	}
	for _, n := range []int64{8, 9, 10} {
		if !slices.Contains(after, n) {
			t.Errorf("after the restore the subscription delivered %v, want items 8, 9 and 10 (added since)", after)
			break
		}
	}
}
