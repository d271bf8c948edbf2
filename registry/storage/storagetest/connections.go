package storagetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// Canary marks the secret of [Connection], so a backend's own tests can look for it where it
// must not be (files, streams, error messages).
const Canary = "ghp_CANARY_9f3c1e0b7a_SECRET"

// Connection is a ready api_key connection whose secret holds [Canary], for a backend's own
// tests (crash, rotation, at-rest checks).
func Connection(id string) storage.Connection {
	return storage.Connection{
		ID:         id,
		Connectors: []string{"github"},
		Params:     json.RawMessage(`{"base_url":"https://api.github.com"}`),
		AuthType:   "api_key",
		Hosts:      []string{"https://api.github.com"},
		Status:     "ready",
		Meta:       json.RawMessage(`{"expires_at":"2026-04-01T00:00:00Z"}`),
		Secret:     []byte(`{"api_key":"` + Canary + `-` + id + `"}`),
	}
}

func newConnection(id string, connectors ...string) storage.Connection {
	return storage.Connection{ID: id, Connectors: connectors, Params: json.RawMessage(`{"org": "acme"}`),
		AuthType: "api_key", Hosts: []string{"https://api.example.com"}, Status: "ready",
		Meta: json.RawMessage(`{"n": 0}`), Secret: []byte(`{"api_key":"sk_live_` + id + `"}`)}
}

// counter reads the "n" of a connection's Meta.
func counter(t *testing.T, meta json.RawMessage) int {
	t.Helper()
	var m struct{ N int }
	if err := json.Unmarshal(meta, &m); err != nil {
		t.Fatalf("Meta %s: %v", meta, err)
	}
	return m.N
}

// connectionCases are the promises of [storage.Connections] about connections: every field
// and the secret round-trip, atomic updates, and what deleting or unbinding takes with it.
var connectionCases = []testCase{
	{"create then get round-trips every field and the secret", func(t *testing.T, st storage.Store) {
		c := newConnection("gh-main", "github", "github-app")
		ok(t, st.CreateConnection(ctx(t), c), "CreateConnection")
		got := must[storage.Connection](t, "Connection")(st.Connection(ctx(t), c.ID))
		if got.ID != c.ID || !slices.Equal(got.Connectors, c.Connectors) || !jsonEqual(got.Params, c.Params) ||
			got.AuthType != c.AuthType || !slices.Equal(got.Hosts, c.Hosts) || got.Status != c.Status || !jsonEqual(got.Meta, c.Meta) {
			t.Fatalf("Connection = %v %s %s %v, want %v", got, got.Params, got.Meta, got.Hosts, c)
		}
		if !bytes.Equal(got.Secret, c.Secret) {
			t.Fatal("the secret did not round-trip")
		}
		if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() || time.Since(got.CreatedAt) > time.Hour {
			t.Fatalf("CreatedAt %v, UpdatedAt %v: zero ones must become now", got.CreatedAt, got.UpdatedAt)
		}
	}},
	{"an empty secret reads back as nil", func(t *testing.T, st storage.Store) {
		c := newConnection("none")
		c.Secret, c.AuthType = nil, "none"
		ok(t, st.CreateConnection(ctx(t), c), "CreateConnection")
		if got := must[storage.Connection](t, "Connection")(st.Connection(ctx(t), "none")); got.Secret != nil {
			t.Fatalf("Secret = %q, want nil", got.Secret)
		}
		if list := must[[]storage.Connection](t, "Connections")(st.Connections(ctx(t))); len(list) != 1 || list[0].Secret != nil {
			t.Fatalf("Connections = %v, want the one connection with a nil Secret", list)
		}
	}},
	{"a taken id is ErrExists and unknown ids are ErrNotFound", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github")), "CreateConnection")
		other := newConnection("c1", "slack")
		wantErr(t, st.CreateConnection(ctx(t), other), storage.ErrExists, "CreateConnection with a taken id")
		if got := must[storage.Connection](t, "Connection")(st.Connection(ctx(t), "c1")); !slices.Equal(got.Connectors, []string{"github"}) {
			t.Fatalf("the refused create replaced the connection: %v", got)
		}
		_, err := st.Connection(ctx(t), "c2")
		wantErr(t, err, storage.ErrNotFound, "Connection of an unknown id")
		_, err = st.UpdateConnection(ctx(t), "c2", func(*storage.Connection) error { return nil })
		wantErr(t, err, storage.ErrNotFound, "UpdateConnection of an unknown id")
		wantErr(t, st.DeleteConnection(ctx(t), "c2"), storage.ErrNotFound, "DeleteConnection of an unknown id")
	}},
	{"Connections lists every connection by id with its secret", func(t *testing.T, st storage.Store) {
		if got := must[[]storage.Connection](t, "Connections")(st.Connections(ctx(t))); len(got) != 0 {
			t.Fatalf("Connections of an empty store = %v", got)
		}
		for _, id := range []string{"zeta", "alpha", "mid"} {
			ok(t, st.CreateConnection(ctx(t), newConnection(id, "github")), "CreateConnection %s", id)
		}
		var ids []string
		for _, c := range must[[]storage.Connection](t, "Connections")(st.Connections(ctx(t))) {
			ids = append(ids, c.ID)
			if !bytes.Equal(c.Secret, newConnection(c.ID).Secret) {
				t.Fatalf("connection %s listed without its secret", c.ID)
			}
		}
		if !slices.Equal(ids, []string{"alpha", "mid", "zeta"}) {
			t.Fatalf("Connections = %v, want [alpha mid zeta]", ids)
		}
	}},
	{"UpdateConnection applies fn, keeps the secret sealed and moves UpdatedAt", func(t *testing.T, st storage.Store) {
		c := newConnection("c1", "github")
		c.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		c.UpdatedAt = c.CreatedAt
		ok(t, st.CreateConnection(ctx(t), c), "CreateConnection")
		got, err := st.UpdateConnection(ctx(t), "c1", func(c *storage.Connection) error {
			c.Status = "needs_reauth"
			c.Secret = []byte(`{"api_key":"rotated"}`)
			return nil
		})
		ok(t, err, "UpdateConnection")
		if got.Status != "needs_reauth" || string(got.Secret) != `{"api_key":"rotated"}` || !got.UpdatedAt.After(c.UpdatedAt) {
			t.Fatalf("UpdateConnection returned %v, UpdatedAt %v", got, got.UpdatedAt)
		}
		read := must[storage.Connection](t, "Connection")(st.Connection(ctx(t), "c1"))
		if read.Status != "needs_reauth" || string(read.Secret) != `{"api_key":"rotated"}` || !read.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("Connection after the update = %v (created %v)", read, read.CreatedAt)
		}
	}},
	{"an error from UpdateConnection's fn aborts it and is returned", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github")), "CreateConnection")
		boom := errors.New("boom")
		_, err := st.UpdateConnection(ctx(t), "c1", func(c *storage.Connection) error {
			c.Status = "changed"
			return boom
		})
		wantErr(t, err, boom, "UpdateConnection whose fn fails")
		if got := must[storage.Connection](t, "Connection")(st.Connection(ctx(t), "c1")); got.Status != "ready" {
			t.Fatalf("an aborted update was stored: status %q", got.Status)
		}
		_, err = st.UpdateConnection(ctx(t), "c1", func(c *storage.Connection) error { c.ID = "c2"; return nil })
		wantErr(t, err, storage.ErrInvalid, "UpdateConnection that changes the id")
	}},
	{"concurrent UpdateConnection loses no update", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github")), "CreateConnection")
		const workers, each = 8, 10
		var failed atomic.Value
		parallel(workers, func(int) {
			for range each {
				_, err := st.UpdateConnection(ctx(t), "c1", func(c *storage.Connection) error {
					var m struct{ N int }
					if err := json.Unmarshal(c.Meta, &m); err != nil {
						return err
					}
					c.Meta = fmt.Appendf(nil, `{"n":%d}`, m.N+1)
					return nil
				})
				if err != nil {
					failed.Store(err)
					return
				}
			}
		})
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("UpdateConnection: %v", err)
		}
		got := must[storage.Connection](t, "Connection")(st.Connection(ctx(t), "c1"))
		if n := counter(t, got.Meta); n != workers*each {
			t.Fatalf("counter = %d after %d concurrent increments: updates were lost", n, workers*each)
		}
		if !bytes.Equal(got.Secret, newConnection("c1").Secret) {
			t.Fatal("concurrent updates damaged the secret")
		}
	}},
	{"unbinding a connector deletes its timers on the connection", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github", "slack")), "CreateConnection")
		ok(t, st.CreateConnection(ctx(t), newConnection("c2", "github")), "CreateConnection")
		at := time.Now().Add(-time.Minute)
		gh := must[string](t, "SetTimer github")(st.SetTimer(ctx(t), storage.Timer{ID: "t_github_c1", Connector: "github", Connection: "c1", FireAt: at, Payload: json.RawMessage(`{}`)}))
		must[string](t, "SetTimer slack")(st.SetTimer(ctx(t), storage.Timer{ID: "t_slack_c1", Connector: "slack", Connection: "c1", FireAt: at, Payload: json.RawMessage(`{}`)}))
		must[string](t, "SetTimer github on c2")(st.SetTimer(ctx(t), storage.Timer{ID: "t_github_c2", Connector: "github", Connection: "c2", FireAt: at}))
		_, err := st.UpdateConnection(ctx(t), "c1", func(c *storage.Connection) error { c.Connectors = []string{"slack"}; return nil })
		ok(t, err, "UpdateConnection")
		want := []string{"t_github_c2", "t_slack_c1"}
		if ids := timerIDs(must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now(), 0))); !slices.Equal(ids, want) {
			t.Fatalf("due timers after unbinding github from c1 = %v, want %v", ids, want)
		}
		wantErr(t, st.DeleteTimer(ctx(t), gh), storage.ErrNotFound, "DeleteTimer of the unbound connector's timer")
	}},
	{"DeleteConnection removes it with its kv entries and timers", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github")), "CreateConnection")
		ok(t, st.CreateConnection(ctx(t), newConnection("c2", "github")), "CreateConnection")
		ok(t, st.KVSet(ctx(t), "github", "c1", "k", []byte("v"), 0), "KVSet c1")
		ok(t, st.KVSet(ctx(t), "github", "c2", "k", []byte("v2"), 0), "KVSet c2")
		at := time.Now().Add(-time.Minute)
		must[string](t, "SetTimer c1")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: at}))
		keep := must[string](t, "SetTimer c2")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c2", FireAt: at}))
		ok(t, st.DeleteConnection(ctx(t), "c1"), "DeleteConnection")
		_, err := st.Connection(ctx(t), "c1")
		wantErr(t, err, storage.ErrNotFound, "Connection after DeleteConnection")
		if _, found, err := st.KVGet(ctx(t), "github", "c1", "k"); err != nil || found {
			t.Fatalf("kv of the deleted connection: found %v, %v", found, err)
		}
		if v, found, err := st.KVGet(ctx(t), "github", "c2", "k"); err != nil || !found || string(v) != "v2" {
			t.Fatalf("kv of another connection: %q %v %v", v, found, err)
		}
		if ids := timerIDs(must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now(), 0))); !slices.Equal(ids, []string{keep}) {
			t.Fatalf("due timers = %v, want only c2's %s", ids, keep)
		}
		wantErr(t, st.DeleteConnection(ctx(t), "c1"), storage.ErrNotFound, "a second DeleteConnection")
	}},
	{"a connection without an id, or whose Params or Meta is not JSON, is ErrInvalid; an empty id is not found", func(t *testing.T, st storage.Store) {
		wantErr(t, st.CreateConnection(ctx(t), storage.Connection{}), storage.ErrInvalid, "CreateConnection without an id")
		c := newConnection("c1", "github")
		c.Params = json.RawMessage(`{"a":`)
		wantErr(t, st.CreateConnection(ctx(t), c), storage.ErrInvalid, "CreateConnection with Params that are not JSON")
		c = newConnection("c1", "github")
		c.Meta = json.RawMessage(`[1,`)
		wantErr(t, st.CreateConnection(ctx(t), c), storage.ErrInvalid, "CreateConnection with Meta that is not JSON")
		_, err := st.Connection(ctx(t), "c1")
		wantErr(t, err, storage.ErrNotFound, "the connection the refused creates named")
		_, err = st.Connection(ctx(t), "")
		wantErr(t, err, storage.ErrNotFound, "Connection of an empty id")
	}},
	{"UpdateConnection's fn gets the stored secret in clear, and an UpdatedAt it sets is kept", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github")), "CreateConnection")
		at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		var seen []byte
		got, err := st.UpdateConnection(ctx(t), "c1", func(c *storage.Connection) error { seen = bytes.Clone(c.Secret); c.UpdatedAt = at; return nil })
		ok(t, err, "UpdateConnection")
		if !bytes.Equal(seen, newConnection("c1").Secret) {
			t.Fatalf("fn got the secret %q, want the stored one in clear", seen)
		}
		if !got.UpdatedAt.Equal(at) {
			t.Fatalf("UpdateConnection returned UpdatedAt %v, want the %v fn set", got.UpdatedAt, at)
		}
		if read := must[storage.Connection](t, "Connection")(st.Connection(ctx(t), "c1")); !read.UpdatedAt.Equal(at) {
			t.Fatalf("UpdatedAt = %v after the update, want the %v fn set", read.UpdatedAt, at)
		}
	}},
	{"DeleteConnection spares connections whose id shares its prefix; the id created again starts with an empty kv scope", func(t *testing.T, st storage.Store) {
		at := time.Now().Add(-time.Minute)
		for _, id := range []string{"gone", "gone2", "kept"} {
			ok(t, st.CreateConnection(ctx(t), newConnection(id, "github", "slack")), "CreateConnection %s", id)
			for _, connector := range []string{"github", "slack"} {
				ok(t, st.KVSet(ctx(t), connector, id, "k", []byte(id), 0), "KVSet %s/%s", connector, id)
				must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{ID: "t_" + connector + "_" + id, Connector: connector, Connection: id, FireAt: at}))
			}
		}
		ok(t, st.DeleteConnection(ctx(t), "gone"), "DeleteConnection")
		for _, connector := range []string{"github", "slack"} {
			if _, found, err := st.KVGet(ctx(t), connector, "gone", "k"); err != nil || found {
				t.Fatalf("kv of %s/gone after DeleteConnection: found %v, %v", connector, found, err)
			}
			for _, id := range []string{"gone2", "kept"} {
				if v, found, err := st.KVGet(ctx(t), connector, id, "k"); err != nil || !found || string(v) != id {
					t.Fatalf("kv of %s/%s: %q, found %v, %v", connector, id, v, found, err)
				}
			}
		}
		want := []string{"t_github_gone2", "t_github_kept", "t_slack_gone2", "t_slack_kept"}
		if ids := timerIDs(must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now(), 0))); !slices.Equal(ids, want) {
			t.Fatalf("due timers = %v, want %v", ids, want)
		}
		ok(t, st.CreateConnection(ctx(t), newConnection("gone", "github")), "CreateConnection with the deleted id")
		fillRoom(t, st, "github", "gone", storage.MaxKVScopeBytes)
	}},
	{"RotateMasterKey re-seals every secret, which still opens", func(t *testing.T, st storage.Store) {
		for _, id := range []string{"c1", "c2", "c3"} {
			ok(t, st.CreateConnection(ctx(t), newConnection(id, "github")), "CreateConnection")
		}
		before := st.MasterKeyID()
		if before == "" {
			t.Fatal("MasterKeyID is empty")
		}
		n := must[int](t, "RotateMasterKey")(st.RotateMasterKey(ctx(t)))
		if n < 3 {
			t.Fatalf("RotateMasterKey re-sealed %d secrets, want at least the 3 connection secrets", n)
		}
		if after := st.MasterKeyID(); after == before || after == "" {
			t.Fatalf("MasterKeyID %q after rotation, was %q", after, before)
		}
		for _, c := range must[[]storage.Connection](t, "Connections")(st.Connections(ctx(t))) {
			if !bytes.Equal(c.Secret, newConnection(c.ID).Secret) {
				t.Fatalf("connection %s: secret after rotation = %q", c.ID, c.Secret)
			}
		}
	}},
}

func timerIDs(ts []storage.Timer) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

// oauthCases are the promises of PutOAuthState and TakeOAuthState: a state is taken once, by
// one taker, and never after it lapses.
var oauthCases = []testCase{
	{"a state is taken once", func(t *testing.T, st storage.Store) {
		exp := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
		ok(t, st.PutOAuthState(ctx(t), "h1", storage.OAuthState{Connection: "c1", ExpiresAt: exp}), "PutOAuthState")
		got := must[storage.OAuthState](t, "TakeOAuthState")(st.TakeOAuthState(ctx(t), "h1"))
		if got.Connection != "c1" || !got.ExpiresAt.Equal(exp) {
			t.Fatalf("TakeOAuthState = %+v", got)
		}
		_, err := st.TakeOAuthState(ctx(t), "h1")
		wantErr(t, err, storage.ErrNotFound, "a second TakeOAuthState")
		_, err = st.TakeOAuthState(ctx(t), "never")
		wantErr(t, err, storage.ErrNotFound, "TakeOAuthState of an unknown key")
	}},
	{"concurrent takers: exactly one wins", func(t *testing.T, st storage.Store) {
		ok(t, st.PutOAuthState(ctx(t), "h1", storage.OAuthState{Connection: "c1", ExpiresAt: time.Now().Add(time.Hour)}), "PutOAuthState")
		var won, notFound atomic.Int32
		var other atomic.Value
		parallel(8, func(int) {
			_, err := st.TakeOAuthState(ctx(t), "h1")
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, storage.ErrNotFound):
				notFound.Add(1)
			default:
				other.Store(err)
			}
		})
		if err, _ := other.Load().(error); err != nil {
			t.Fatalf("TakeOAuthState: %v", err)
		}
		if won.Load() != 1 || notFound.Load() != 7 {
			t.Fatalf("%d takers won and %d found nothing, want 1 and 7", won.Load(), notFound.Load())
		}
	}},
	{"an expired state is ErrNotFound", func(t *testing.T, st storage.Store) {
		ok(t, st.PutOAuthState(ctx(t), "old", storage.OAuthState{Connection: "c1", ExpiresAt: time.Now().Add(-time.Second)}), "PutOAuthState")
		_, err := st.TakeOAuthState(ctx(t), "old")
		wantErr(t, err, storage.ErrNotFound, "TakeOAuthState of a lapsed state")
		soon := time.Now().Add(shortTTL)
		ok(t, st.PutOAuthState(ctx(t), "soon", storage.OAuthState{Connection: "c1", ExpiresAt: soon}), "PutOAuthState")
		time.Sleep(time.Until(soon) + 10*time.Millisecond) // a state lapses by its ExpiresAt, on the wall clock
		_, err = st.TakeOAuthState(ctx(t), "soon")
		wantErr(t, err, storage.ErrNotFound, "TakeOAuthState after the state lapsed")
	}},
}
