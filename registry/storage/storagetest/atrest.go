package storagetest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/registry/storage"
)

// Raw is a backend's view of what one store holds at rest, behind the interface, for the
// cases of [RunAtRest]: the promises about sealed secrets that no method shows (a connection's
// secret "is sealed before it is written ... so the data file never holds it in clear", as are
// trigger signing secrets). Every function is of the store that came with it.
type Raw struct {
	// Bytes returns every byte the store holds at rest (its files, its streams' messages), in
	// any order.
	Bytes func(t *testing.T) []byte
	// SealedSecret returns the sealed secret of connection id as it is stored.
	SealedSecret func(t *testing.T, id string) []byte
	// SetSealedSecret stores sealed as connection id's sealed secret, leaving the rest of its
	// record, and returns once the store reads it.
	SetSealedSecret func(t *testing.T, id string, sealed []byte)
	// Reopen closes the store and opens what it holds again, as a restart does; the backend
	// closes the store it returns when the test ends.
	Reopen func(t *testing.T) storage.Store
}

// RawOpener returns a fresh, empty store and its [Raw]. The suite closes the store when the
// case ends, as it does those of an [Opener].
type RawOpener = func(t *testing.T) (storage.Store, Raw)

// RunAtRest runs the at-rest cases against the backend that open returns, one subtest per
// promise, each with a fresh store.
func RunAtRest(t *testing.T, open RawOpener) {
	for _, c := range atRestCases {
		t.Run(c.name, func(t *testing.T) {
			st, raw := open(t)
			if st == nil {
				t.Fatal("storagetest: open returned a nil store")
			}
			t.Cleanup(func() { _ = st.Close() })
			c.run(t, st, raw)
		})
	}
}

// atRestCases are the promises of sealing at rest: no secret in clear, sealed with the key
// file's key (a reopened store opens them), and bound to its connection.
var atRestCases = []struct {
	name string
	run  func(t *testing.T, st storage.Store, raw Raw)
}{
	{"no secret is held in clear, and a reopened store opens every one", func(t *testing.T, st storage.Store, raw Raw) {
		for _, id := range []string{"gh-main", "gh-other", "gone"} {
			ok(t, st.CreateConnection(ctx(t), newConnection(id, "github")), "CreateConnection %s", id)
		}
		_, err := st.UpdateConnection(ctx(t), "gh-other", func(c *storage.Connection) error { c.Status = "x"; return nil })
		ok(t, err, "UpdateConnection")
		ok(t, st.DeleteConnection(ctx(t), "gone"), "DeleteConnection")
		newSource(t, st, queueSub("sub_a"))

		all := raw.Bytes(t)
		if !bytes.Contains(all, raw.SealedSecret(t, "gh-main")) || !bytes.Contains(all, []byte("sub_a")) {
			t.Fatal("Raw.Bytes does not hold the records the case means to check")
		}
		secrets := []string{"source-secret", "whsec_first"}
		for _, id := range []string{"gh-main", "gh-other", "gone"} {
			secrets = append(secrets, string(newConnection(id).Secret))
		}
		for _, secret := range secrets {
			if bytes.Contains(all, []byte(secret)) {
				t.Errorf("the store holds %q in clear", secret)
			}
		}

		st = raw.Reopen(t)
		for _, id := range []string{"gh-main", "gh-other"} {
			if c := must[storage.Connection](t, "Connection")(st.Connection(ctx(t), id)); !bytes.Equal(c.Secret, newConnection(id).Secret) {
				t.Errorf("%s: secret after reopening = %q", id, c.Secret)
			}
		}
		for kind, want := range map[string][2]string{"src": {"src_1", "source-secret"}, "sub": {"sub_a", "whsec_first"}} {
			if sec, err := st.TriggerSecret(ctx(t), kind, want[0]); err != nil || string(sec) != want[1] {
				t.Errorf("%s secret after reopening = %q, %v; want %q", kind, sec, err, want[1])
			}
		}
	}},
	{"a sealed secret moved into another connection's record does not open there", func(t *testing.T, st storage.Store, raw Raw) {
		for _, id := range []string{"victim", "attacker"} {
			ok(t, st.CreateConnection(ctx(t), newConnection(id, "github")), "CreateConnection %s", id)
		}
		raw.SetSealedSecret(t, "attacker", raw.SealedSecret(t, "victim"))
		_, err := st.Connection(ctx(t), "attacker")
		wantErr(t, err, storage.ErrDecrypt, "Connection holding another connection's sealed secret")
		if strings.Contains(err.Error(), string(newConnection("victim").Secret)) {
			t.Errorf("the error holds the secret: %v", err)
		}
		_, err = st.UpdateConnection(ctx(t), "attacker", func(*storage.Connection) error { return nil })
		wantErr(t, err, storage.ErrDecrypt, "UpdateConnection holding another connection's sealed secret")
		if c := must[storage.Connection](t, "Connection victim")(st.Connection(ctx(t), "victim")); !bytes.Equal(c.Secret, newConnection("victim").Secret) {
			t.Fatalf("the victim's secret = %q", c.Secret)
		}
	}},
	{"a sealed secret naming a key the store does not hold is ErrUnknownKey, naming the key", func(t *testing.T, st storage.Store, raw Raw) {
		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github")), "CreateConnection")
		var doc map[string]json.RawMessage
		ok(t, json.Unmarshal(raw.SealedSecret(t, "c1"), &doc), "the sealed secret as JSON")
		doc["kid"] = json.RawMessage(`"k-unknown"`)
		raw.SetSealedSecret(t, "c1", must[[]byte](t, "marshalling the sealed secret")(json.Marshal(doc)))
		_, err := st.Connection(ctx(t), "c1")
		wantErr(t, err, storage.ErrUnknownKey, "Connection sealed with an unknown key")
		if !strings.Contains(err.Error(), `"k-unknown"`) {
			t.Fatalf("error %q does not name the key", err)
		}
	}},
}
