package natsstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
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

// rawRecord reads a connection record behind the store's back.
func rawRecord(t *testing.T, s *Store, id string) connectionRecord {
	t.Helper()
	var rec connectionRecord
	found, err := s.getJSON(bg, s.state, connKey(id), &rec)
	if err != nil || !found {
		t.Fatalf("raw record %s: found %v, %v", id, found, err)
	}
	return rec
}

// putRawRecord writes a connection record behind the store's back and waits until the
// store's watcher has seen it.
func putRawRecord(t *testing.T, s *Store, rec connectionRecord) {
	t.Helper()
	data := must[[]byte](t)(json.Marshal(rec))
	rev, err := s.state.kv.Put(bg, connKey(rec.ID), data)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watcher sees the raw write", func() bool {
		s.cConns.mu.RLock()
		defer s.cConns.mu.RUnlock()
		return s.cConns.m[enc(rec.ID)].rev >= rev
	})
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
