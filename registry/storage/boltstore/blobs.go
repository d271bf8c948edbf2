package boltstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// PutBlob stores data under its digest ([Digest]) and returns the digest. Storing the same bytes
// again writes nothing. A blob stays until [Store.DeleteVersion] removes the last version that
// references it; a blob no version ever references (an upload that failed after PutBlob) is
// kept, and reused by the next upload of the same bytes.
func (s *Store) PutBlob(ctx context.Context, data []byte) (string, error) {
	digest := Digest(data)
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if _, ok := get(b, []byte(digest)); ok {
			return errUnchanged
		}
		return b.Put([]byte(digest), data)
	})
	if err != nil {
		return "", fmt.Errorf("store: storing blob %s: %w", digest, err)
	}
	return digest, nil
}

// Blob returns a copy of the bytes stored under digest; [ErrNotFound] when there are none.
func (s *Store) Blob(ctx context.Context, digest string) ([]byte, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, err
	}
	var data []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, ok := get(tx.Bucket(bucketBlobs), []byte(digest))
		if !ok {
			return fmt.Errorf("store: blob %s: %w", digest, ErrNotFound)
		}
		data = append([]byte{}, v...)
		return nil
	})
	return data, err
}
