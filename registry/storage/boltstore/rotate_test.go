package boltstore

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// sealedKeyIDs returns the key id of every sealed connection secret, by connection id.
func sealedKeyIDs(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
			rec, err := decodeConnection(k, v)
			if err == nil && rec.Secret != nil {
				out[string(k)] = must[string](t)(SealedKeyID(rec.Secret))
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRotateMasterKey(t *testing.T) {
	s := openTest(t, nil)
	const n = 2*rotateBatch + 7 // several batches
	for i := range n {
		c := testConnection(fmt.Sprintf("c%03d", i))
		if i%10 == 0 {
			c.Secret = nil // some connections have no secret
		}
		if err := s.CreateConnection(bg, c); err != nil {
			t.Fatal(err)
		}
	}
	rotated, err := s.RotateMasterKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	if want := n - (n+9)/10; rotated != want {
		t.Errorf("rotated = %d, want %d", rotated, want)
	}
	for id, kid := range sealedKeyIDs(t, s) {
		if kid != "k2" {
			t.Errorf("%s still sealed with %s", id, kid)
		}
	}
	kf := must[*Sealer](t)(LoadKeyFile(s.MasterKeyFile()))
	if kf.ActiveKeyID() != "k2" || !slices.Equal(kf.KeyIDs(), []string{"k2"}) {
		t.Errorf("key file after rotation: %v", kf)
	}
	s = reopen(t, s, nil)
	if c := must[Connection](t)(s.Connection(bg, "c001")); string(c.Secret) != string(testConnection("c001").Secret) {
		t.Errorf("secret after rotation and reopen = %q", c.Secret)
	}
	if rotated := must[int](t)(s.RotateMasterKey(bg)); rotated != n-(n+9)/10 {
		t.Errorf("second rotation rotated %d", rotated)
	}
	if kf := must[*Sealer](t)(LoadKeyFile(s.MasterKeyFile())); !slices.Equal(kf.KeyIDs(), []string{"k3"}) {
		t.Errorf("key ids after the second rotation: %v, want [k3] (ids are not reused)", kf.KeyIDs())
	}
}

// TestRotateMasterKeyInterrupted plays a crash after the key file gained the new key and part
// of the records were re-sealed: every record still opens, and a new rotation finishes the job.
func TestRotateMasterKeyInterrupted(t *testing.T) {
	s := openTest(t, nil)
	for _, id := range []string{"a", "b", "c"} {
		if err := s.CreateConnection(bg, testConnection(id)); err != nil {
			t.Fatal(err)
		}
	}
	// Step 1 of a rotation, then one record re-sealed, then "crash".
	next, _, err := s.sealerNow().WithNewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := next.WriteKeyFile(s.MasterKeyFile()); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		rec := must[connectionRecord](t)(decodeConnection([]byte("b"), tx.Bucket(bucketConnections).Get([]byte("b"))))
		c := must[Connection](t)(rec.connection(next))
		return tx.Bucket(bucketConnections).Put([]byte("b"), must[[]byte](t)(encodeConnection(next, c)))
	}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, nil)
	if got := sealedKeyIDs(t, s); got["a"] != "k1" || got["b"] != "k2" {
		t.Fatalf("key ids = %v", got)
	}
	for _, id := range []string{"a", "b", "c"} {
		must[Connection](t)(s.Connection(bg, id))
	}
	if err := s.CreateConnection(bg, testConnection("d")); err != nil {
		t.Fatal(err)
	}
	if got := sealedKeyIDs(t, s)["d"]; got != "k2" {
		t.Errorf("a write after the crash sealed with %s, want the new active key k2", got)
	}
	rotated := must[int](t)(s.RotateMasterKey(bg))
	if rotated != 4 {
		t.Errorf("rotated = %d, want 4", rotated)
	}
	if kf := must[*Sealer](t)(LoadKeyFile(s.MasterKeyFile())); !slices.Equal(kf.KeyIDs(), []string{kf.ActiveKeyID()}) {
		t.Errorf("key file keeps old keys: %v", kf)
	}
	s = reopen(t, s, nil)
	for _, id := range []string{"a", "b", "c", "d"} {
		if c := must[Connection](t)(s.Connection(bg, id)); string(c.Secret) != string(testConnection(id).Secret) {
			t.Errorf("%s: secret %q", id, c.Secret)
		}
	}
}

// TestRotateMasterKeyLeavesOldKeysOnFailure: a record that does not open stops the rotation
// with the old keys still in the key file.
func TestRotateMasterKeyLeavesOldKeysOnFailure(t *testing.T) {
	s := openTest(t, nil)
	for _, id := range []string{"a", "b"} {
		if err := s.CreateConnection(bg, testConnection(id)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := rawRecord(t, s, "a"), rawRecord(t, s, "b")
	b.Secret = a.Secret // moved: does not open
	putRawRecord(t, s, b)
	if _, err := s.RotateMasterKey(bg); err == nil {
		t.Fatal("rotation succeeded over a broken record")
	}
	kf := must[*Sealer](t)(LoadKeyFile(s.MasterKeyFile()))
	if !slices.Equal(kf.KeyIDs(), []string{"k1", "k2"}) {
		t.Errorf("key file after a failed rotation: %v", kf)
	}
	if c := must[Connection](t)(s.Connection(bg, "a")); string(c.Secret) != string(testConnection("a").Secret) {
		t.Errorf("a: %q", c.Secret)
	}
	raw := must[[]byte](t)(os.ReadFile(s.MasterKeyFile()))
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil || string(doc["active"]) != `"k2"` {
		t.Errorf("key file = %s", raw)
	}
}
