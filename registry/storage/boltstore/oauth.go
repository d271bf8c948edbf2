package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketOAuthStates maps the hash of a pending OAuth2 consent's state parameter to the
// connection it belongs to. It is created on first use.
var bucketOAuthStates = []byte("oauth_states")

// PutOAuthState records a pending consent under key, replacing any entry there, and drops the
// entries that lapsed before now.
func (s *Store) PutOAuthState(ctx context.Context, key string, st OAuthState) error {
	if err := checkID("oauth state key", key); err != nil {
		return err
	}
	if err := checkID("connection id", st.Connection); err != nil {
		return err
	}
	st.ExpiresAt = st.ExpiresAt.UTC()
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("store: oauth state: %w: %w", ErrInvalid, err)
	}
	now := s.nowUTC()
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketOAuthStates)
		if err != nil {
			return err
		}
		var lapsed [][]byte
		err = b.ForEach(func(k, v []byte) error {
			var old OAuthState
			if json.Unmarshal(v, &old) != nil || !old.ExpiresAt.After(now) {
				lapsed = append(lapsed, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range lapsed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return b.Put([]byte(key), data)
	})
}

// TakeOAuthState removes the consent recorded under key and returns it, in one transaction, so
// a state is used at most once. It fails with [ErrNotFound] when there is no entry or it has
// lapsed (a lapsed entry is removed too).
func (s *Store) TakeOAuthState(ctx context.Context, key string) (OAuthState, error) {
	var out OAuthState
	now := s.nowUTC()
	var lapsed bool
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOAuthStates)
		var v []byte
		if b != nil && key != "" {
			v = b.Get([]byte(key))
		}
		if v == nil {
			return fmt.Errorf("store: oauth state: %w", ErrNotFound)
		}
		if err := json.Unmarshal(v, &out); err != nil {
			return fmt.Errorf("store: corrupt oauth state: %w", err)
		}
		lapsed = !out.ExpiresAt.After(now)
		return b.Delete([]byte(key))
	})
	if err != nil {
		return OAuthState{}, err
	}
	if lapsed {
		return OAuthState{}, fmt.Errorf("store: oauth state lapsed at %s: %w", out.ExpiresAt.Format(time.RFC3339), ErrNotFound)
	}
	return out, nil
}

// MasterKeyID returns the id of the master key new secrets are sealed with.
func (s *Store) MasterKeyID() string { return s.sealerNow().ActiveKeyID() }
