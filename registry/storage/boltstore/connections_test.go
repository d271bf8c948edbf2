package boltstore

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

const canary = "ghp_CANARY_9f3c1e0b7a_SECRET"

func testConnection(id string) Connection {
	return Connection{
		ID:         id,
		Connectors: []string{"github"},
		Params:     json.RawMessage(`{"base_url":"https://api.github.com"}`),
		AuthType:   "api_key",
		Hosts:      []string{"https://api.github.com"},
		Status:     "ready",
		Meta:       json.RawMessage(`{"expires_at":"2026-04-01T00:00:00Z"}`),
		Secret:     []byte(`{"api_key":"` + canary + `-` + id + `"}`),
	}
}

// TestSecretsNeverInClear is the at-rest guarantee: after connections are written, updated and
// deleted and a trigger source is stored with its secrets, no file in the data directory holds
// a secret in clear, both files are private, and the store opened again opens every secret.
func TestSecretsNeverInClear(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plugboard.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gh-main", "gh-other", "gone"} {
		if err := s.CreateConnection(bg, testConnection(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateConnection(bg, "gh-other", func(c *Connection) error { c.Status = "x"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConnection(bg, "gone"); err != nil {
		t.Fatal(err)
	}
	src := Source{ID: "src_1", Key: "k1", Kind: SourcePoll, Status: SourceActive, TriggerRef: TriggerRef{Connector: "c", Trigger: "tr"}}
	sub := Subscription{ID: "sub_a", SourceID: "src_1", Delivery: Delivery{Type: "queue"}}
	if err := s.CreateSource(bg, src, []byte("source-secret"), &sub, []byte("whsec_first")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, secret := range []string{"CANARY", "source-secret", "whsec_first"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s holds %q in clear", p, secret)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if raw := must[[]byte](t)(os.ReadFile(path)); !bytes.Contains(raw, []byte(`"kid":"k1"`)) || !bytes.Contains(raw, []byte("gh-main")) || !bytes.Contains(raw, []byte("sub_a")) {
		t.Fatal("the data file does not hold the sealed records the test means to check")
	}
	if mode := must[fs.FileInfo](t)(os.Stat(path)).Mode().Perm(); mode != 0o600 {
		t.Errorf("data file mode %#o, want 0600", mode)
	}
	if mode := must[fs.FileInfo](t)(os.Stat(filepath.Join(dir, "master.key"))).Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode %#o, want 0600", mode)
	}

	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"gh-main", "gh-other"} {
		c := must[Connection](t)(s.Connection(bg, id))
		if string(c.Secret) != `{"api_key":"`+canary+`-`+id+`"}` {
			t.Errorf("%s: secret after reopen = %q", id, c.Secret)
		}
	}
	for kind, want := range map[string][2]string{"src": {"src_1", "source-secret"}, "sub": {"sub_a", "whsec_first"}} {
		if sec, err := s.TriggerSecret(bg, kind, want[0]); err != nil || string(sec) != want[1] {
			t.Errorf("%s secret after reopen = %q, %v", kind, sec, err)
		}
	}
}

// rawRecord reads a connection record behind the store's back; putRawRecord writes one.
func rawRecord(t *testing.T, s *Store, id string) connectionRecord {
	t.Helper()
	var rec connectionRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = decodeConnection([]byte(id), tx.Bucket(bucketConnections).Get([]byte(id)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func putRawRecord(t *testing.T, s *Store, rec connectionRecord) {
	t.Helper()
	data := must[[]byte](t)(json.Marshal(rec))
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketConnections).Put([]byte(rec.ID), data) }); err != nil {
		t.Fatal(err)
	}
}

// TestSealedSecretBoundToItsConnection: a connection's secret is sealed with its id as
// additional data, so a sealed secret copied into another connection's record does not open
// there, and a record naming a key the key file lacks says which.
func TestSealedSecretBoundToItsConnection(t *testing.T) {
	s := openTest(t, nil)
	for _, id := range []string{"victim", "attacker"} {
		if err := s.CreateConnection(bg, testConnection(id)); err != nil {
			t.Fatal(err)
		}
	}
	victim, attacker := rawRecord(t, s, "victim"), rawRecord(t, s, "attacker")
	attacker.Secret = victim.Secret
	putRawRecord(t, s, attacker)

	_, err := s.Connection(bg, "attacker")
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("reading a moved ciphertext: err = %v, want ErrDecrypt", err)
	}
	if strings.Contains(err.Error(), canary) {
		t.Errorf("error holds the secret: %v", err)
	}
	if _, err := s.UpdateConnection(bg, "attacker", func(*Connection) error { return nil }); !errors.Is(err, ErrDecrypt) {
		t.Errorf("updating it: err = %v, want ErrDecrypt", err)
	}
	must[Connection](t)(s.Connection(bg, "victim"))

	victim.Secret = bytes.Replace(victim.Secret, []byte(`"kid":"k1"`), []byte(`"kid":"k7"`), 1)
	putRawRecord(t, s, victim)
	if _, err := s.Connection(bg, "victim"); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k7"`) {
		t.Fatalf("a record sealed with an unknown key: err = %v, want ErrUnknownKey naming k7", err)
	}
}

func TestMasterKeyFile(t *testing.T) {
	// withSecret makes a data directory holding one sealed secret and returns its paths.
	withSecret := func(t *testing.T) (db, key string) {
		s := openTest(t, nil)
		if err := s.CreateConnection(bg, testConnection("gh-main")); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return s.Path(), s.MasterKeyFile()
	}
	writeKey := func(t *testing.T, path string, mode os.FileMode, content string) {
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	otherKey := func(t *testing.T, kid string) string {
		raw := make([]byte, KeySize)
		rand.Read(raw)
		k := must[*Sealer](t)(NewSealer(kid, map[string][]byte{kid: raw}))
		path := filepath.Join(t.TempDir(), "key")
		if err := k.WriteKeyFile(path); err != nil {
			t.Fatal(err)
		}
		return string(must[[]byte](t)(os.ReadFile(path)))
	}

	tests := []struct {
		name     string
		setup    func(t *testing.T, key string)
		wantErr  error    // nil: any error
		wantText []string // substrings of the error
	}{
		{
			name:     "a key file others can read is refused",
			setup:    func(t *testing.T, key string) { os.Chmod(key, 0o644) },
			wantText: []string{"mode 0644", "chmod 600"},
		},
		{
			name:     "a key file the group can write is refused",
			setup:    func(t *testing.T, key string) { os.Chmod(key, 0o620) },
			wantText: []string{"mode 0620"},
		},
		{
			name:     "a wrong master key is refused at start",
			setup:    func(t *testing.T, key string) { writeKey(t, key, 0o600, otherKey(t, "k1")) },
			wantErr:  ErrDecrypt,
			wantText: []string{"does not open 1 connection secret(s)", `master key "k1"`},
		},
		{
			name:     "a key file lacking the key id is refused",
			setup:    func(t *testing.T, key string) { writeKey(t, key, 0o600, otherKey(t, "k2")) },
			wantErr:  ErrUnknownKey,
			wantText: []string{`"k1"`},
		},
		{
			name:     "a lost key file is not silently replaced",
			setup:    func(t *testing.T, key string) { os.Remove(key) },
			wantErr:  ErrUnknownKey,
			wantText: []string{"does not exist", "restore the key file"},
		},
		{name: "not JSON", setup: func(t *testing.T, key string) { writeKey(t, key, 0o600, "k1=abc") }, wantText: []string{"malformed"}},
		{name: "unknown field", setup: func(t *testing.T, key string) {
			writeKey(t, key, 0o600, strings.Replace(otherKey(t, "k1"), `{`, `{"extra":1,`, 1))
		}, wantText: []string{"malformed", "extra"}},
		{name: "short key", setup: func(t *testing.T, key string) {
			writeKey(t, key, 0o600, `{"active":"k1","keys":{"k1":"c2hvcnQ="}}`)
		}, wantText: []string{"malformed", "5 bytes, want 32"}},
		{name: "active names no key", setup: func(t *testing.T, key string) {
			writeKey(t, key, 0o600, strings.Replace(otherKey(t, "k1"), `"active":"k1"`, `"active":"k9"`, 1))
		}, wantText: []string{"malformed", `"k9"`}},
		{name: "trailing data", setup: func(t *testing.T, key string) {
			writeKey(t, key, 0o600, otherKey(t, "k1")+"{}")
		}, wantText: []string{"malformed"}},
		{name: "a directory", setup: func(t *testing.T, key string) {
			os.Remove(key)
			os.Mkdir(key, 0o700)
		}, wantText: []string{"not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, key := withSecret(t)
			tt.setup(t, key)
			s, err := Open(db, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			for _, w := range append(tt.wantText, key) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds the secret: %v", err)
			}
		})
	}

	t.Run("the lost key file stays absent", func(t *testing.T) {
		db, key := withSecret(t)
		os.Remove(key)
		if _, err := Open(db, nil); err == nil {
			t.Fatal("Open succeeded")
		}
		if _, err := os.Stat(key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open created a key file over unreadable secrets: %v", err)
		}
	})
	t.Run("another key is accepted when nothing is sealed with the old one", func(t *testing.T) {
		s := openTest(t, nil)
		if err := s.CreateConnection(bg, Connection{ID: "public", AuthType: "none"}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		writeKey(t, s.MasterKeyFile(), 0o600, otherKey(t, "k1"))
		s = reopen(t, s, nil)
		if err := s.CreateConnection(bg, testConnection("gh")); err != nil {
			t.Fatal(err)
		}
		s = reopen(t, s, nil) // the new key's check replaced the stale one
		must[Connection](t)(s.Connection(bg, "gh"))
	})
	t.Run("an explicit key file path", func(t *testing.T) {
		keyPath := filepath.Join(t.TempDir(), "elsewhere.key")
		s := openTest(t, &Options{MasterKeyFile: keyPath})
		if s.MasterKeyFile() != keyPath {
			t.Errorf("MasterKeyFile = %q", s.MasterKeyFile())
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(s.Path()), "master.key")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("default key file created too: %v", err)
		}
		if _, err := LoadKeyFile(keyPath); err != nil {
			t.Error(err)
		}
	})
}
