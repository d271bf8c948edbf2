package boltstore

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Meta returns a copy of the setting stored under key; [ErrNotFound] when there is none.
func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var v []byte
		ok := false
		if key != "" {
			v, ok = get(tx.Bucket(bucketMeta), []byte(key))
		}
		if !ok {
			return fmt.Errorf("store: meta %q: %w", key, ErrNotFound)
		}
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

// SetMeta stores v under key, replacing any value there (small settings such as the admin
// token's hash; the store does not seal them). An empty key is [ErrInvalid].
func (s *Store) SetMeta(ctx context.Context, key string, v []byte) error {
	if err := checkID("meta key", key); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if old, ok := get(b, []byte(key)); ok && bytes.Equal(old, v) {
			return errUnchanged
		}
		return b.Put([]byte(key), append([]byte{}, v...))
	})
}
