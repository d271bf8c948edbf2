package natsstore

import (
	"encoding/json"
	"testing"

	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/storagetest"
)

// TestAtRest runs the at-rest cases of the suite on JetStream: what the namespace holds of
// connections and triggers is every message of the state and trigger streams.
func TestAtRest(t *testing.T) {
	storagetest.RunAtRest(t, func(t *testing.T) (storage.Store, storagetest.Raw) {
		s := openTest(t, nil)
		return s, storagetest.Raw{
			Bytes: func(t *testing.T) []byte {
				return append(rawStream(t, s, s.state.stream), rawStream(t, s, s.trig.stream)...)
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
