package boltstore

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Records: one JSON document per key in a bucket created by the first write, so data files from
// before the bucket existed open unchanged. MCP servers and API keys are stored this way; what
// names a record in errors ("MCP server", "API key") is passed in.

// createRecord stores v under key; [ErrExists] when the key is taken.
func (s *Store) createRecord(ctx context.Context, bucket []byte, what, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		if b.Get([]byte(key)) != nil {
			return fmt.Errorf("store: %s %q: %w", what, key, ErrExists)
		}
		return b.Put([]byte(key), data)
	})
}

// getRecord decodes the record under key into v; [ErrNotFound] when there is none.
func getRecord(tx *bolt.Tx, bucket []byte, what, key string, v any) error {
	var data []byte
	if b := tx.Bucket(bucket); b != nil && key != "" {
		data = b.Get([]byte(key))
	}
	if data == nil {
		return fmt.Errorf("store: %s %q: %w", what, key, ErrNotFound)
	}
	return json.Unmarshal(data, v) // decodes a copy: data is valid only inside the transaction
}

// listRecords decodes every record of bucket, in key order.
func listRecords[T any](s *Store, ctx context.Context, bucket []byte) ([]T, error) {
	var out []T
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, data []byte) error {
			var v T
			if err := json.Unmarshal(data, &v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	return out, err
}

// deleteRecord removes the record under key; [ErrNotFound] when there is none.
func (s *Store) deleteRecord(ctx context.Context, bucket []byte, what, key string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil || key == "" || b.Get([]byte(key)) == nil {
			return fmt.Errorf("store: %s %q: %w", what, key, ErrNotFound)
		}
		return b.Delete([]byte(key))
	})
}
