package boltstore

import (
	"fmt"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestHammer runs writers and readers of every kind at once (run it with -race): kv sizes stay
// exact, read-modify-write updates lose nothing, and a key rotation in the middle leaves every
// secret readable.
func TestHammer(t *testing.T) {
	s := openTest(t, nil)
	const workers, rounds = 4, 25
	for w := range workers {
		if err := s.CreateConnection(bg, testConnection(fmt.Sprintf("w%d", w))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("w%d", w)
			for r := range rounds {
				key := fmt.Sprintf("k%d", r%5) // overwrites in a shared scope
				if err := s.KVSet(bg, "shared", "conn", key, []byte(fmt.Sprintf(`"%s-%d"`, id, r)), 0); err != nil {
					errs <- err
				}
				if _, _, err := s.KVGet(bg, "shared", "conn", key); err != nil {
					errs <- err
				}
				if r%7 == 0 {
					if err := s.KVDelete(bg, "shared", "conn", key); err != nil {
						errs <- err
					}
				}
				_, err := s.UpdateConnection(bg, "w0", func(c *Connection) error {
					c.Hosts = append(c.Hosts, id)
					return nil
				})
				if err != nil {
					errs <- err
				}
				if err := s.CreateConnection(bg, testConnection(fmt.Sprintf("%s-%d", id, r))); err != nil {
					errs <- err
				}
				if _, err := s.Connection(bg, id); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		if _, err := s.RotateMasterKey(bg); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	c := must[Connection](t)(s.Connection(bg, "w0"))
	if len(c.Hosts) != 1+workers*rounds {
		t.Errorf("w0 has %d hosts, want %d: an update was lost", len(c.Hosts), 1+workers*rounds)
	}
	var sum, total int64
	s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(scopeKey("shared", "conn"))
		if b == nil {
			return nil
		}
		total = kvTotal(b)
		return b.ForEach(func(k, v []byte) error {
			if k[0] == kvEntryPrefix[0] {
				sum += int64(len(k) - 1 + len(v) - kvExpiryBytes)
			}
			return nil
		})
	})
	if sum != total {
		t.Errorf("scope size %d, entries sum to %d", total, sum)
	}
	s = reopen(t, s, nil)
	list := must[[]Connection](t)(s.Connections(bg))
	if len(list) != workers+workers*rounds {
		t.Fatalf("%d connections", len(list))
	}
	for _, c := range list {
		must[Connection](t)(s.Connection(bg, c.ID))
	}
	for id, kid := range sealedKeyIDs(t, s) {
		if kid != "k2" {
			t.Errorf("%s sealed with %s after the rotation", id, kid)
		}
	}
}
