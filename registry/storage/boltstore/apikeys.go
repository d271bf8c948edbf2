package boltstore

import (
	"context"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// bucketAPIKeys holds one JSON record per API key, keyed by key id. It is created by the first
// write, so data files from before API keys existed open unchanged.
var bucketAPIKeys = []byte("api_keys")

// CreateAPIKey stores a new API key; [ErrExists] when the id is taken.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) error {
	if err := checkID("API key id", k.ID); err != nil {
		return err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.nowUTC()
	}
	return s.notifyAfter(ChangeAPIKey, k.ID, s.createRecord(ctx, bucketAPIKeys, "API key", k.ID, k))
}

// APIKey returns one API key; [ErrNotFound] when there is none with that id.
func (s *Store) APIKey(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	err := s.view(ctx, func(tx *bolt.Tx) error { return getRecord(tx, bucketAPIKeys, "API key", id, &k) })
	return k, err
}

// APIKeys lists every API key in id order.
func (s *Store) APIKeys(ctx context.Context) ([]APIKey, error) {
	out, err := listRecords[APIKey](s, ctx, bucketAPIKeys)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// DeleteAPIKey removes (revokes) an API key; [ErrNotFound] when there is none with that id.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	return s.notifyAfter(ChangeAPIKey, id, s.deleteRecord(ctx, bucketAPIKeys, "API key", id))
}
