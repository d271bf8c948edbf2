package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugboard/plugboard/registry/storage"
)

var _ storage.Exporter = (*Store)(nil)

// ExportSources implements [storage.Exporter].
func (s *Store) ExportSources(ctx context.Context, fn func(storage.SourceDump) error) error {
	sealer := s.sealerNow()
	return s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSources).ForEach(func(k, v []byte) error {
			var d storage.SourceDump
			if err := json.Unmarshal(v, &d.Source); err != nil {
				return fmt.Errorf("store: source %s: %w", k, err)
			}
			var err error
			if d.Secret, err = openSecret(tx, sealer, "src", d.Source.ID); err != nil {
				return err
			}
			prefix := appendLP(nil, d.Source.ID)
			c := tx.Bucket(bucketEvents).Cursor()
			for ek, ev := c.Seek(prefix); ek != nil && bytes.HasPrefix(ek, prefix); ek, ev = c.Next() {
				var e StoredEvent
				if err := json.Unmarshal(ev, &e); err != nil {
					return fmt.Errorf("store: event of source %s: %w", d.Source.ID, err)
				}
				d.Events = append(d.Events, e)
			}
			subs, err := s.sourceSubs(tx, d.Source.ID)
			if err != nil {
				return err
			}
			for _, sub := range subs {
				sd := storage.SubscriptionDump{Subscription: *sub}
				if sd.Secret, err = openSecret(tx, sealer, "sub", sub.ID); err != nil {
					return err
				}
				qp := appendLP(nil, sub.ID)
				qc := tx.Bucket(bucketQueue).Cursor()
				for qk, qv := qc.Seek(qp); qk != nil && bytes.HasPrefix(qk, qp); qk, qv = qc.Next() {
					var q QueueEntry
					if err := json.Unmarshal(qv, &q); err != nil {
						return fmt.Errorf("store: queue of subscription %s: %w", sub.ID, err)
					}
					sd.Queue = append(sd.Queue, q)
				}
				d.Subscriptions = append(d.Subscriptions, sd)
			}
			return fn(d)
		})
	})
}

// openSecret returns the trigger secret of kind ("src" or "sub") and id in the clear, nil when
// there is none.
func openSecret(tx *bolt.Tx, sealer *Sealer, kind, id string) ([]byte, error) {
	k := secretKey(kind, id)
	sealed := tx.Bucket(bucketTrigSecrets).Get(k)
	if sealed == nil {
		return nil, nil
	}
	pt, err := sealer.Open(sealed, k)
	if err != nil {
		return nil, fmt.Errorf("store: secret of %s %s: %w", kind, id, err)
	}
	return pt, nil
}

// KVEntries implements [storage.Exporter].
func (s *Store) KVEntries(ctx context.Context, fn func(storage.KVEntry) error) error {
	now := s.now()
	return s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKV).ForEach(func(scope, v []byte) error {
			if v != nil {
				return nil // not a scope bucket
			}
			connection, rest, ok := readLP(scope)
			connector, _, ok2 := readLP(rest)
			if !ok || !ok2 {
				return fmt.Errorf("store: kv scope %x: %w", scope, errors.New("malformed key"))
			}
			return tx.Bucket(bucketKV).Bucket(scope).ForEach(func(k, entry []byte) error {
				key, isEntry := bytes.CutPrefix(k, kvEntryPrefix)
				if !isEntry || len(entry) < kvExpiryBytes || kvExpired(entry, now) {
					return nil
				}
				e := storage.KVEntry{Connector: connector, Connection: connection, Key: string(key),
					Value: bytes.Clone(entry[kvExpiryBytes:])}
				if exp := int64(binary.BigEndian.Uint64(entry[:kvExpiryBytes])); exp != 0 {
					e.ExpiresAt = time.Unix(0, exp)
				}
				return fn(e)
			})
		})
	})
}
