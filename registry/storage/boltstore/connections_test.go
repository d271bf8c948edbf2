package boltstore

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/storagetest"
)

// canary marks the secret of testConnection, so a test can look for it where it must not be.
const canary = storagetest.Canary

func testConnection(id string) Connection { return storagetest.Connection(id) }

// TestAtRest runs the at-rest cases of the suite on the bbolt file: what the data directory
// holds is every file in it.
func TestAtRest(t *testing.T) {
	storagetest.RunAtRest(t, func(t *testing.T) (storage.Store, storagetest.Raw) {
		s := openTest(t, nil)
		return s, storagetest.Raw{
			Bytes: func(t *testing.T) []byte {
				var all []byte
				err := filepath.WalkDir(filepath.Dir(s.Path()), func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					raw, err := os.ReadFile(p)
					all = append(all, raw...)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return all
			},
			SealedSecret: func(t *testing.T, id string) []byte { return rawRecord(t, s, id).Secret },
			SetSealedSecret: func(t *testing.T, id string, sealed []byte) {
				rec := rawRecord(t, s, id)
				rec.Secret = sealed
				putRawRecord(t, s, rec)
			},
			Reopen: func(t *testing.T) storage.Store { return reopen(t, s, nil) },
		}
	})
}

// The data file and the key file beside it are private to their owner.
func TestDataFilesArePrivate(t *testing.T) {
	s := openTest(t, nil)
	if err := s.CreateConnection(bg, testConnection("gh-main")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.Path(), s.MasterKeyFile()} {
		if mode := must[fs.FileInfo](t)(os.Stat(p)).Mode().Perm(); mode != 0o600 {
			t.Errorf("%s: mode %#o, want 0600", p, mode)
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
