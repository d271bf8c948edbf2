package store

import (
	"context"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketAPIKeys holds one JSON record per API key, keyed by key id. It is created by the first
// write, so data files from before API keys existed open unchanged.
var bucketAPIKeys = []byte("api_keys")

// APIKey is a stored API key (API.md "Keys, audit and invocation logs"). Nothing in it is
// secret: the bearer secret is kept only as its SHA-256 hash.
type APIKey struct {
	// ID is the key's id ("key_..."), unique in the store; the secret embeds it, so the key of a
	// presented secret is found without scanning.
	ID string `json:"id"`
	// Name is the human name given at creation.
	Name string `json:"name"`
	// Role is one of the server's roles (admin, author, connections, invoker, reader).
	Role string `json:"role"`
	// Connectors and Connections narrow the key; nil means no narrowing.
	Connectors  []string `json:"connectors,omitempty"`
	Connections []string `json:"connections,omitempty"`
	// SecretHash is "sha256:" and the hex SHA-256 of the secret.
	SecretHash string `json:"secret_hash"`
	// CreatedAt is set to now by [Store.CreateAPIKey] when zero.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// CreateAPIKey stores a new API key; [ErrExists] when the id is taken.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) error {
	if err := checkID("API key id", k.ID); err != nil {
		return err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.nowUTC()
	}
	return s.createRecord(ctx, bucketAPIKeys, "API key", k.ID, k)
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
	return s.deleteRecord(ctx, bucketAPIKeys, "API key", id)
}
