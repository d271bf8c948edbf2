package natsstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestSecretsNeverInClear is the at-rest guarantee on JetStream: after connections are
// written, updated and deleted and a trigger source is stored with its secrets, no message of
// the state or trigger streams holds a secret in clear, and a node opening the namespace again
// opens every secret with the key file.
func TestSecretsNeverInClear(t *testing.T) {
	s := openTest(t, nil)
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
	newSourceWithSubs(t, s, Subscription{ID: "sub_a"})

	state, trig := rawStream(t, s, s.state.stream), rawStream(t, s, s.trig.stream)
	if !bytes.Contains(state, []byte(`"kid":"k1"`)) || !bytes.Contains(state, []byte("gh-main")) || !bytes.Contains(trig, []byte("sub_a")) {
		t.Fatal("the streams do not hold the sealed records the test means to check")
	}
	for name, raw := range map[string][]byte{"state": state, "trigger": trig} {
		for _, secret := range []string{"CANARY", "source-secret", "whsec_first"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("the %s stream holds %q in clear", name, secret)
			}
		}
	}

	s = reopen(t, s, nil)
	for _, id := range []string{"gh-main", "gh-other"} {
		if c := must[Connection](t)(s.Connection(bg, id)); !bytes.Equal(c.Secret, testConnection(id).Secret) {
			t.Errorf("%s: secret after reopen = %q", id, c.Secret)
		}
	}
	for kind, want := range map[string][2]string{"src": {"src_1", "source-secret"}, "sub": {"sub_a", "whsec_first"}} {
		if sec, err := s.TriggerSecret(bg, kind, want[0]); err != nil || string(sec) != want[1] {
			t.Errorf("%s secret after reopen = %q, %v", kind, sec, err)
		}
	}
}

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
