package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// In a scope bucket, kvTotalKey holds the scope's size (8 bytes, big-endian) and every entry
// is stored under kvEntryPrefix + key as expiry (8 bytes, big-endian UnixNano, 0 = none) +
// value. The prefixes keep the size apart from any key.
var (
	kvTotalKey    = []byte("t")
	kvEntryPrefix = []byte("k")
)

const kvExpiryBytes = 8

func kvEntryKey(key string) []byte { return append(bytes.Clone(kvEntryPrefix), key...) }

// kvExpired reports whether an entry's value has expired at now.
func kvExpired(entry []byte, now time.Time) bool {
	exp := int64(binary.BigEndian.Uint64(entry[:kvExpiryBytes]))
	return exp != 0 && now.UnixNano() >= exp
}

func checkKVKey(key string) error {
	if key == "" {
		return fmt.Errorf("store: kv key is empty: %w", ErrInvalid)
	}
	if len(key) > MaxKVKeyBytes {
		return fmt.Errorf("store: kv key is %d bytes, over %d: %w", len(key), MaxKVKeyBytes, ErrTooLarge)
	}
	return nil
}

// KVGet returns the value stored under key in the (connector, connection) scope; found is false
// when there is none or it has expired. An expired entry is purged (best effort, in a write
// transaction of its own) when read.
func (s *Store) KVGet(ctx context.Context, connector, connection, key string) (value []byte, found bool, err error) {
	if err := checkKVKey(key); err != nil {
		return nil, false, err
	}
	scope, ek := scopeKey(connector, connection), kvEntryKey(key)
	now := s.now()
	expired := false
	err = s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(scope)
		if b == nil {
			return nil
		}
		entry := b.Get(ek)
		if len(entry) < kvExpiryBytes {
			return nil
		}
		if kvExpired(entry, now) {
			expired = true
			return nil
		}
		value, found = bytes.Clone(entry[kvExpiryBytes:]), true
		if value == nil {
			value = []byte{}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if expired {
		_ = s.update(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketKV).Bucket(scope)
			if b == nil {
				return errUnchanged
			}
			if entry := b.Get(ek); len(entry) < kvExpiryBytes || !kvExpired(entry, now) {
				return errUnchanged // deleted or set again meanwhile
			}
			return kvDelete(tx, scope, b, ek)
		})
	}
	return value, found, nil
}

// KVSet stores value under key in the (connector, connection) scope, replacing any value there.
// ttl 0 means no expiry; a positive ttl makes the entry read as absent from now+ttl on. It
// fails with [ErrTooLarge] when the key is over MaxKVKeyBytes, the value over MaxKVValueBytes,
// or the scope's size would pass MaxKVScopeBytes (the entry it replaces is not counted; when
// the limit would be passed, the scope's expired entries are purged first and the limit
// checked again). An empty key or a negative ttl is [ErrInvalid]. The scope's size is kept
// with it, so a write never scans the scope except to purge before refusing.
func (s *Store) KVSet(ctx context.Context, connector, connection, key string, value []byte, ttl time.Duration) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	if len(value) > MaxKVValueBytes {
		return fmt.Errorf("store: kv value is %d bytes, over %d: %w", len(value), MaxKVValueBytes, ErrTooLarge)
	}
	if ttl < 0 {
		return fmt.Errorf("store: kv ttl %s is negative: %w", ttl, ErrInvalid)
	}
	now := s.now()
	var exp int64
	if ttl > 0 {
		exp = maxTime.UnixNano()
		if t := now.Add(ttl); t.Before(maxTime) {
			exp = t.UnixNano()
		}
	}
	entry := binary.BigEndian.AppendUint64(make([]byte, 0, kvExpiryBytes+len(value)), uint64(exp))
	entry = append(entry, value...)
	scope, ek := scopeKey(connector, connection), kvEntryKey(key)
	tooLarge := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketKV).CreateBucketIfNotExists(scope)
		if err != nil {
			return err
		}
		total := kvTotal(b)
		if old := b.Get(ek); len(old) >= kvExpiryBytes {
			total -= int64(len(key) + len(old) - kvExpiryBytes)
		}
		size := int64(len(key) + len(value))
		if total+size > MaxKVScopeBytes {
			purged, err := kvPurgeExpired(b, ek, now)
			if err != nil {
				return err
			}
			total -= purged
			if total+size > MaxKVScopeBytes {
				if purged == 0 {
					return ErrTooLarge // nothing changed: roll back
				}
				tooLarge = true // keep the purge, refuse the write
				return putKVTotal(b, total)
			}
		}
		if err := b.Put(ek, entry); err != nil {
			return err
		}
		return putKVTotal(b, total+size)
	})
	if err == nil && tooLarge {
		err = ErrTooLarge
	}
	if err != nil {
		return fmt.Errorf("store: kv set %q (connector %q, connection %q): %w", key, connector, connection, err)
	}
	return nil
}

// KVDelete deletes key from the (connector, connection) scope. Deleting a key that is not there
// is not an error.
func (s *Store) KVDelete(ctx context.Context, connector, connection, key string) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	scope, ek := scopeKey(connector, connection), kvEntryKey(key)
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket(scope)
		if b == nil || b.Get(ek) == nil {
			return errUnchanged
		}
		return kvDelete(tx, scope, b, ek)
	})
}

// kvDelete deletes an entry, updates the scope's size and drops the scope bucket once empty.
func kvDelete(tx *bolt.Tx, scope []byte, b *bolt.Bucket, ek []byte) error {
	old := b.Get(ek)
	if len(old) < kvExpiryBytes {
		return nil
	}
	total := kvTotal(b) - int64(len(ek)-len(kvEntryPrefix)+len(old)-kvExpiryBytes)
	if err := b.Delete(ek); err != nil {
		return err
	}
	if k, _ := b.Cursor().Seek(kvEntryPrefix); k == nil || !bytes.HasPrefix(k, kvEntryPrefix) {
		return tx.Bucket(bucketKV).DeleteBucket(scope)
	}
	return putKVTotal(b, total)
}

// kvPurgeExpired deletes the scope's expired entries except keep, returning the bytes freed.
func kvPurgeExpired(b *bolt.Bucket, keep []byte, now time.Time) (int64, error) {
	var dead [][]byte
	var freed int64
	c := b.Cursor()
	for k, v := c.Seek(kvEntryPrefix); k != nil && bytes.HasPrefix(k, kvEntryPrefix); k, v = c.Next() {
		if len(v) >= kvExpiryBytes && kvExpired(v, now) && !bytes.Equal(k, keep) {
			dead = append(dead, bytes.Clone(k))
			freed += int64(len(k) - len(kvEntryPrefix) + len(v) - kvExpiryBytes)
		}
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return freed, nil
}

func kvTotal(b *bolt.Bucket) int64 {
	v := b.Get(kvTotalKey)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func putKVTotal(b *bolt.Bucket, total int64) error {
	return b.Put(kvTotalKey, binary.BigEndian.AppendUint64(nil, uint64(max(total, 0))))
}
