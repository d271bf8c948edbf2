package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugboard/plugboard/registry/store"
)

// seedStore writes a data directory whose plugboard.db holds n connections (enough to spill
// the connections bucket out of its parent page), and returns the db's path.
func seedStore(t *testing.T, dir string, n int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "plugboard.db")
	st, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		c := store.Connection{ID: fmt.Sprintf("conn-%03d", i), Connectors: []string{"http"}, AuthType: "none", Status: "ready",
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
