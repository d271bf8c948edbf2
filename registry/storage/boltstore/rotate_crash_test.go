package boltstore

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
)

// envCrashDir names the data directory of TestRotateMasterKeyCrash's helper process.
const envCrashDir = "PLUGBOARD_TEST_ROTATE_CRASH_DIR"

// crashCtx is a context whose Err kills the process (SIGKILL: no defer, no flush) the n-th
// time it is asked. RotateMasterKey asks once on entry, once before recording the new key's
// check, and once before each re-sealing batch, so n = 4 dies right before the second batch.
type crashCtx struct {
	context.Context
	calls atomic.Int32
	n     int32
}

func (c *crashCtx) Err() error {
	if c.calls.Add(1) == c.n {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
	return nil
}

// TestRotateMasterKeyCrashHelper is the helper process of TestRotateMasterKeyCrash: it does
// nothing unless started by it.
func TestRotateMasterKeyCrashHelper(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		return
	}
	s, err := Open(filepath.Join(dir, "plugboard.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.RotateMasterKey(&crashCtx{Context: context.Background(), n: 4})
	t.Fatalf("the rotation returned (%v); the crash did not happen", err)
}

// TestRotateMasterKeyCrash kills a process in the middle of a master-key rotation, after the
// first batch of secrets was re-sealed and before the second: every secret still opens after
// the crash (old and new key ids side by side), and the next rotation ends with every secret
// sealed with the one key left in the key file.
func TestRotateMasterKeyCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugboard.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2*rotateBatch + 7
	want := map[string]string{}
	for i := range n {
		c := testConnection(fmt.Sprintf("c%03d", i))
		c.Secret = fmt.Appendf(nil, `{"api_key":"secret-%03d"}`, i)
		want[c.ID] = string(c.Secret)
		if err := s.CreateConnection(bg, c); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestRotateMasterKeyCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir)
	out, err := cmd.CombinedOutput()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the helper was not killed mid-rotation: %v\n%s", err, out)
	}

	s, err = Open(path, nil)
	if err != nil {
		t.Fatalf("reopening after the crash: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if kf := must[*Sealer](t)(LoadKeyFile(s.MasterKeyFile())); !slices.Equal(kf.KeyIDs(), []string{"k1", "k2"}) || kf.ActiveKeyID() != "k2" {
		t.Fatalf("key file after the crash holds %v (active %s), want k1 and k2 active", kf.KeyIDs(), kf.ActiveKeyID())
	}
	byKey := map[string]int{}
	for _, kid := range sealedKeyIDs(t, s) {
		byKey[kid]++
	}
	if byKey["k2"] != rotateBatch || byKey["k1"] != n-rotateBatch {
		t.Fatalf("sealed by key after the crash: %v; want exactly the first batch (%d) under k2", byKey, rotateBatch)
	}
	check := func(s *Store) {
		t.Helper()
		for id, secret := range want {
			c, err := s.Connection(bg, id)
			if err != nil || string(c.Secret) != secret {
				t.Fatalf("%s: %q, %v", id, c.Secret, err)
			}
		}
	}
	check(s)

	if rotated, err := s.RotateMasterKey(bg); err != nil || rotated != n {
		t.Fatalf("rotation after the crash: %d, %v", rotated, err)
	}
	s = reopen(t, s, nil)
	kf := must[*Sealer](t)(LoadKeyFile(s.MasterKeyFile()))
	if !slices.Equal(kf.KeyIDs(), []string{"k3"}) {
		t.Errorf("key file after recovery holds %v, want only k3", kf.KeyIDs())
	}
	for id, kid := range sealedKeyIDs(t, s) {
		if kid != "k3" {
			t.Errorf("%s is sealed with %s", id, kid)
		}
	}
	check(s)
}
