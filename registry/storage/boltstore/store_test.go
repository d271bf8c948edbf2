package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenTwiceFailsWithinLockTimeout(t *testing.T) {
	s := openTest(t, nil)
	const timeout = 100 * time.Millisecond
	start := time.Now()
	s2, err := Open(s.Path(), &Options{LockTimeout: timeout})
	if err == nil {
		s2.Close()
		t.Fatal("second Open succeeded")
	}
	if elapsed := time.Since(start); elapsed > 20*timeout {
		t.Errorf("second Open took %s with LockTimeout %s", elapsed, timeout)
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("err = %v, want ErrLocked", err)
	}
	for _, want := range []string{s.Path(), "another Plugboard may be running"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to contain %q", err, want)
		}
	}
	// The first store is unaffected, and once it is closed the file opens.
	if err := s.SetMeta(bg, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, &Options{LockTimeout: timeout})
	if v := must[[]byte](t)(s.Meta(bg, "k")); string(v) != "v" {
		t.Errorf("Meta = %q", v)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		if _, err := Open(filepath.Join(t.TempDir(), "nope", "plugboard.db"), nil); err == nil {
			t.Fatal("Open succeeded")
		}
	})
	t.Run("newer data format", func(t *testing.T) {
		s := openTest(t, nil)
		s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketStore).Put(keyFormat, []byte("2")) })
		s.Close()
		_, err := Open(s.Path(), nil)
		if err == nil || !strings.Contains(err.Error(), `data format "2"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestClosedAndCanceled checks every method on a closed store and with a canceled context.
func TestClosedAndCanceled(t *testing.T) {
	s := openTest(t, nil)
	d := must[string](t)(s.PutBlob(bg, []byte("x")))
	calls := map[string]func(context.Context) error{
		"PutBlob": func(ctx context.Context) error { _, err := s.PutBlob(ctx, []byte("y")); return err },
		"Blob":    func(ctx context.Context) error { _, err := s.Blob(ctx, d); return err },
		"PutVersion": func(ctx context.Context) error {
			_, err := s.PutVersion(ctx, Version{Name: "a", Version: "1.0.0", Digest: d})
			return err
		},
		"Version":          func(ctx context.Context) error { _, err := s.Version(ctx, "a", "1.0.0"); return err },
		"Versions":         func(ctx context.Context) error { _, err := s.Versions(ctx, "a"); return err },
		"Connectors":       func(ctx context.Context) error { _, err := s.Connectors(ctx); return err },
		"DeleteVersion":    func(ctx context.Context) error { return s.DeleteVersion(ctx, "a", "1.0.0") },
		"SetActive":        func(ctx context.Context) error { return s.SetActive(ctx, "a", "1.0.0") },
		"Active":           func(ctx context.Context) error { _, err := s.Active(ctx, "a"); return err },
		"ActiveAll":        func(ctx context.Context) error { _, err := s.ActiveAll(ctx); return err },
		"CreateConnection": func(ctx context.Context) error { return s.CreateConnection(ctx, testConnection("c")) },
		"Connection":       func(ctx context.Context) error { _, err := s.Connection(ctx, "c"); return err },
		"Connections":      func(ctx context.Context) error { _, err := s.Connections(ctx); return err },
		"UpdateConnection": func(ctx context.Context) error {
			_, err := s.UpdateConnection(ctx, "c", func(*Connection) error { return nil })
			return err
		},
		"DeleteConnection": func(ctx context.Context) error { return s.DeleteConnection(ctx, "c") },
		"KVGet":            func(ctx context.Context) error { _, _, err := s.KVGet(ctx, "a", "c", "k"); return err },
		"KVSet":            func(ctx context.Context) error { return s.KVSet(ctx, "a", "c", "k", []byte("1"), 0) },
		"KVDelete":         func(ctx context.Context) error { return s.KVDelete(ctx, "a", "c", "k") },
		"SetTimer": func(ctx context.Context) error {
			_, err := s.SetTimer(ctx, Timer{Connector: "a", FireAt: time.Now()})
			return err
		},
		"CancelTimer":     func(ctx context.Context) error { return s.CancelTimer(ctx, "a", "c", "t_1") },
		"DueTimers":       func(ctx context.Context) error { _, err := s.DueTimers(ctx, time.Now(), 0); return err },
		"DeleteTimer":     func(ctx context.Context) error { return s.DeleteTimer(ctx, "t_1") },
		"Meta":            func(ctx context.Context) error { _, err := s.Meta(ctx, "k"); return err },
		"SetMeta":         func(ctx context.Context) error { return s.SetMeta(ctx, "k", nil) },
		"RotateMasterKey": func(ctx context.Context) error { _, err := s.RotateMasterKey(ctx); return err },
	}
	canceled, cancel := context.WithCancel(bg)
	cancel()
	for name, call := range calls {
		if err := call(canceled); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, call := range calls {
		if err := call(bg); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestDefaultKeyFileBesideData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "plugboard.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.MasterKeyFile() != filepath.Join(dir, "master.key") {
		t.Errorf("MasterKeyFile = %q", s.MasterKeyFile())
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "master.key,plugboard.db" {
		t.Errorf("data dir holds %v (a temporary key file left behind?)", names)
	}
}
