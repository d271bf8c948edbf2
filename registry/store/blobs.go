package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// digestPrefix starts every blob digest.
const digestPrefix = "sha256:"

// Digest returns the content address of data: "sha256:" and the lowercase hex SHA-256.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return digestPrefix + hex.EncodeToString(sum[:])
}

// checkDigest accepts "sha256:" followed by 64 lowercase hex digits.
func checkDigest(d string) error {
	hexPart, ok := strings.CutPrefix(d, digestPrefix)
	isHex := func(r rune) bool { return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' }
	if !ok || len(hexPart) != 2*sha256.Size || strings.IndexFunc(hexPart, func(r rune) bool { return !isHex(r) }) >= 0 {
		return fmt.Errorf("store: digest %q is not \"sha256:<64 lowercase hex>\": %w", d, ErrInvalid)
	}
	return nil
}

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
	if err := checkDigest(digest); err != nil {
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
