package boltstore

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// rotateBatch is how many connections one re-sealing transaction rewrites.
const rotateBatch = 100

// RotateMasterKey replaces the master key: it adds a new random key to the key file and makes
// it active, re-seals every connection secret with it, then drops the old keys from the key
// file. It returns how many secrets were re-sealed.
//
// It is crash-safe at every step: the key file (written atomically) gains the new key before
// any secret is re-sealed, and loses the old ones only after a transaction has checked that no
// secret names them any more. A crash or error in between leaves a key file holding old and new
// keys, which opens every record; running RotateMasterKey again completes the job (with yet
// another new key). Writes made meanwhile seal with the new key. Only one rotation runs at a
// time; ctx is checked between batches.
func (s *Store) RotateMasterKey(ctx context.Context) (rotated int, err error) {
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	next, kid, err := s.sealerNow().WithNewKey()
	if err != nil {
		return 0, err
	}
	// 1. The key file holds the new key, active, before anything is sealed with it.
	if err := next.WriteKeyFile(s.keyFile); err != nil {
		return 0, err
	}
	if err := s.update(ctx, func(tx *bolt.Tx) error { return putKeyChecks(tx, next, nil) }); err != nil {
		return 0, fmt.Errorf("store: rotating master key: %w", err)
	}
	s.sealer.Store(next)

	// 2. Re-seal, a batch per transaction, every secret sealed with another key.
	var from []byte // where the next batch starts
	for {
		var n int
		var nextFrom []byte
		err := s.update(ctx, func(tx *bolt.Tx) (err error) {
			if n, nextFrom, err = resealBatch(tx, next, from, rotateBatch); err != nil {
				return err
			}
			if n == 0 {
				return errUnchanged
			}
			return nil
		})
		if err != nil {
			return rotated, fmt.Errorf("store: rotating master key (the key file keeps the old keys; run the rotation again): %w", err)
		}
		rotated, from = rotated+n, nextFrom
		if from == nil {
			break
		}
	}

	// 3. Check in one transaction (re-sealing any straggler) that no secret names an old key,
	// and drop the old keys' checks; then drop the old keys from the key file.
	var stragglers int
	err = s.update(ctx, func(tx *bolt.Tx) (err error) {
		if stragglers, _, err = resealBatch(tx, next, nil, 0); err != nil {
			return err
		}
		ts, err := resealTriggerSecrets(tx, next)
		if err != nil {
			return err
		}
		stragglers += ts
		var old []string
		for _, id := range next.KeyIDs() {
			if id != kid {
				old = append(old, id)
			}
		}
		b := tx.Bucket(bucketStore)
		for _, id := range old {
			if err := b.Delete([]byte(keyCheckPrefix + id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return rotated, fmt.Errorf("store: rotating master key (the key file keeps the old keys; run the rotation again): %w", err)
	}
	rotated += stragglers
	final, err := next.Retain(kid)
	if err != nil {
		return rotated, err
	}
	if err := final.WriteKeyFile(s.keyFile); err != nil {
		return rotated, fmt.Errorf("store: rotating master key: every secret is sealed with %q, but dropping the old keys from the key file failed: %w", kid, err)
	}
	s.sealer.Store(final)
	return rotated, nil
}

// resealBatch re-seals with sealer's active key the connection secrets sealed with another
// key, visiting at most limit connections (0: all) from the id from (nil: the first). It returns
// how many it re-sealed and the id to start the next batch at, nil when it reached the end.
func resealBatch(tx *bolt.Tx, sealer *Sealer, from []byte, limit int) (int, []byte, error) {
	b := tx.Bucket(bucketConnections)
	c := b.Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	type put struct{ k, v []byte }
	var puts []put
	var next []byte
	for visited := 0; k != nil; k, v = c.Next() {
		if limit > 0 && visited == limit {
			next = bytes.Clone(k)
			break
		}
		visited++
		rec, err := decodeConnection(k, v)
		if err != nil {
			return 0, nil, err
		}
		if rec.Secret == nil {
			continue
		}
		env, err := decodeEnvelope(rec.Secret)
		if err != nil {
			return 0, nil, fmt.Errorf("store: connection %q: %w", k, err)
		}
		if env.KID == sealer.ActiveKeyID() {
			continue
		}
		conn, err := rec.connection(sealer)
		if err != nil {
			return 0, nil, err
		}
		data, err := encodeConnection(sealer, conn)
		if err != nil {
			return 0, nil, err
		}
		puts = append(puts, put{bytes.Clone(k), data})
	}
	for _, p := range puts {
		if err := b.Put(p.k, p.v); err != nil {
			return 0, nil, err
		}
	}
	return len(puts), next, nil
}
