package boltstore

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

func sameConnection(t *testing.T, got, want Connection) {
	t.Helper()
	if got.ID != want.ID || !slices.Equal(got.Connectors, want.Connectors) || !bytes.Equal(got.Params, want.Params) ||
		got.AuthType != want.AuthType || !slices.Equal(got.Hosts, want.Hosts) || got.Status != want.Status ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) ||
		!bytes.Equal(got.Meta, want.Meta) || !bytes.Equal(got.Secret, want.Secret) {
		t.Errorf("connection = %v %s %s %s %v %v\nwant         %v %s %s %s %v %v", got, got.Params, got.Meta, got.Secret, got.CreatedAt, got.UpdatedAt,
			want, want.Params, want.Meta, want.Secret, want.CreatedAt, want.UpdatedAt)
	}
}

func TestConnectionsRoundTrip(t *testing.T) {
	clk := newClock()
	s := openTest(t, &Options{Now: clk.Now})
	want := testConnection("gh-main")
	if err := s.CreateConnection(bg, want); err != nil {
		t.Fatal(err)
	}
	want.CreatedAt, want.UpdatedAt = clk.Now(), clk.Now()
	sameConnection(t, must[Connection](t)(s.Connection(bg, "gh-main")), want)

	none := Connection{ID: "public", Connectors: []string{"weather"}, AuthType: "none"}
	if err := s.CreateConnection(bg, none); err != nil {
		t.Fatal(err)
	}
	if c := must[Connection](t)(s.Connection(bg, "public")); c.Secret != nil {
		t.Errorf("connection without a secret reads back Secret %q", c.Secret)
	}

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name string
			err  error
			want error
		}{
			{"create existing", s.CreateConnection(bg, testConnection("gh-main")), ErrExists},
			{"create empty id", s.CreateConnection(bg, Connection{}), ErrInvalid},
			{"create bad params", s.CreateConnection(bg, Connection{ID: "x", Params: json.RawMessage(`{"a":`)}), ErrInvalid},
			{"read unknown", second(s.Connection(bg, "nope")), ErrNotFound},
			{"read empty id", second(s.Connection(bg, "")), ErrNotFound},
			{"update unknown", second(s.UpdateConnection(bg, "nope", func(*Connection) error { return nil })), ErrNotFound},
			{"delete unknown", s.DeleteConnection(bg, "nope"), ErrNotFound},
		}
		for _, tt := range tests {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("%s: err = %v, want %v", tt.name, tt.err, tt.want)
			}
		}
	})

	t.Run("list is sorted, secrets opened", func(t *testing.T) {
		if err := s.CreateConnection(bg, testConnection("a-first")); err != nil {
			t.Fatal(err)
		}
		list := must[[]Connection](t)(s.Connections(bg))
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, []string{"a-first", "gh-main", "public"}) {
			t.Errorf("ids = %v", ids)
		}
		sameConnection(t, list[1], want)
		if list[2].Secret != nil {
			t.Errorf("listed connection without a secret has Secret %q", list[2].Secret)
		}
	})

	t.Run("update is read-modify-write", func(t *testing.T) {
		clk.Advance(time.Minute)
		got, err := s.UpdateConnection(bg, "gh-main", func(c *Connection) error {
			if !bytes.Equal(c.Secret, want.Secret) {
				t.Errorf("fn got secret %q", c.Secret)
			}
			c.Secret = []byte(`{"api_key":"rotated"}`)
			c.Status = "needs_reauth"
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want.Secret, want.Status, want.UpdatedAt = []byte(`{"api_key":"rotated"}`), "needs_reauth", clk.Now()
		sameConnection(t, got, want)
		sameConnection(t, must[Connection](t)(s.Connection(bg, "gh-main")), want)
	})
	t.Run("update keeps an UpdatedAt fn sets", func(t *testing.T) {
		at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		got := must[Connection](t)(s.UpdateConnection(bg, "gh-main", func(c *Connection) error { c.UpdatedAt = at; return nil }))
		if !got.UpdatedAt.Equal(at) {
			t.Errorf("UpdatedAt = %v, want %v", got.UpdatedAt, at)
		}
		want.UpdatedAt = at
	})
	t.Run("an error from fn aborts the update", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := s.UpdateConnection(bg, "gh-main", func(c *Connection) error { c.Status = "broken"; return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		_, err = s.UpdateConnection(bg, "gh-main", func(c *Connection) error { c.ID = "other"; return nil })
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("changing the id: err = %v, want ErrInvalid", err)
		}
		sameConnection(t, must[Connection](t)(s.Connection(bg, "gh-main")), want)
	})
	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteConnection(bg, "gh-main"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Connection(bg, "gh-main"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
	})
}

func second[T any](_ T, err error) error { return err }

func TestConnectionNeverPrintsSecret(t *testing.T) {
	c := testConnection("gh-main")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("conn", "c", c)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", &c),
		string(must[[]byte](t)(json.Marshal(c))), logged.String()} {
		if strings.Contains(out, canary) {
			t.Errorf("output holds the secret: %s", out)
		}
	}
}

// TestSecretNeverInClear is the at-rest guarantee: after writing, updating and deleting
// connections, no file in the data directory holds a secret in clear.
func TestSecretNeverInClear(t *testing.T) {
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
		if bytes.Contains(raw, []byte("CANARY")) {
			t.Errorf("%s holds a secret in clear", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if raw := must[[]byte](t)(os.ReadFile(path)); !bytes.Contains(raw, []byte(`"kid":"k1"`)) || !bytes.Contains(raw, []byte("gh-main")) {
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
}

// rawConnection reads and writes connection records behind the store's back.
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

	t.Run("altered ciphertext", func(t *testing.T) {
		var env struct {
			KID   string `json:"kid"`
			Nonce []byte `json:"nonce"`
			CT    []byte `json:"ct"`
		}
		if err := json.Unmarshal(victim.Secret, &env); err != nil {
			t.Fatal(err)
		}
		env.CT[0] ^= 1
		victim.Secret = must[[]byte](t)(json.Marshal(env))
		putRawRecord(t, s, victim)
		if _, err := s.Connection(bg, "victim"); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("err = %v, want ErrDecrypt", err)
		}
	})
	t.Run("unknown key id", func(t *testing.T) {
		rec := rawRecord(t, s, "victim")
		rec.Secret = bytes.Replace(rec.Secret, []byte(`"kid":"k1"`), []byte(`"kid":"k7"`), 1)
		putRawRecord(t, s, rec)
		_, err := s.Connection(bg, "victim")
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k7"`) {
			t.Fatalf("err = %v, want ErrUnknownKey naming k7", err)
		}
	})
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
