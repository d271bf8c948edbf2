package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// connectionRecord is the stored form of a Connection; Secret holds the sealed document.
type connectionRecord struct {
	ID         string          `json:"id"`
	Connectors []string        `json:"connectors,omitempty"`
	Params     json.RawMessage `json:"params,omitempty"`
	AuthType   string          `json:"auth_type,omitempty"`
	Hosts      []string        `json:"hosts,omitempty"`
	Status     string          `json:"status,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	Meta       json.RawMessage `json:"meta,omitempty"`
	Secret     json.RawMessage `json:"secret,omitempty"`
}

// secretAD is the additional data a connection's secret is sealed with: a sealed secret copied
// into another connection's record does not open there.
func secretAD(id string) []byte { return []byte("plugboard/connection/" + id) }

func decodeConnection(key, data []byte) (connectionRecord, error) {
	var rec connectionRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return connectionRecord{}, fmt.Errorf("store: corrupt record of connection %q: %w", key, err)
	}
	return rec, nil
}

// encodeConnection seals c's secret with sealer and marshals the record.
func encodeConnection(sealer *Sealer, c Connection) ([]byte, error) {
	rec := connectionRecord{ID: c.ID, Connectors: c.Connectors, Params: c.Params, AuthType: c.AuthType,
		Hosts: c.Hosts, Status: c.Status, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), Meta: c.Meta}
	if len(c.Secret) > 0 {
		sealed, err := sealer.SealWith(sealer.ActiveKeyID(), c.Secret, secretAD(c.ID))
		if err != nil {
			return nil, fmt.Errorf("store: connection %q: sealing the secret: %w", c.ID, err)
		}
		rec.Secret = sealed
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("store: connection %q: params or meta: %w: %w", c.ID, ErrInvalid, err)
	}
	return data, nil
}

// connection turns a record into a Connection, opening its secret with sealer.
func (rec connectionRecord) connection(sealer *Sealer) (Connection, error) {
	c := Connection{ID: rec.ID, Connectors: rec.Connectors, Params: rec.Params, AuthType: rec.AuthType,
		Hosts: rec.Hosts, Status: rec.Status, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt, Meta: rec.Meta}
	if rec.Secret != nil {
		pt, err := sealer.OpenRaw(rec.Secret, secretAD(rec.ID))
		if err != nil {
			return Connection{}, fmt.Errorf("store: connection %q: %w", rec.ID, err)
		}
		c.Secret = pt
	}
	return c, nil
}

// CreateConnection stores a new connection, sealing its secret. It fails with [ErrExists] when
// the id is taken and with [ErrInvalid] when the id is empty or Params or Meta is not valid
// JSON. Zero CreatedAt and UpdatedAt become now.
func (s *Store) CreateConnection(ctx context.Context, c Connection) error {
	if err := checkID("connection id", c.ID); err != nil {
		return err
	}
	now := s.nowUTC()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = now
	}
	return s.notifyAfter(ChangeConnection, c.ID, s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		if b.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("store: connection %q: %w", c.ID, ErrExists)
		}
		data, err := encodeConnection(s.sealerNow(), c)
		if err != nil {
			return err
		}
		return b.Put([]byte(c.ID), data)
	}))
}

// Connection returns a connection with its secret opened; [ErrNotFound] when there is none, and
// an error wrapping [ErrUnknownKey] or [ErrDecrypt] when the secret does not open.
func (s *Store) Connection(ctx context.Context, id string) (Connection, error) {
	cs, err := s.readConnections(ctx, func(tx *bolt.Tx) ([]connectionRecord, error) {
		var data []byte
		if id != "" {
			data = tx.Bucket(bucketConnections).Get([]byte(id))
		}
		if data == nil {
			return nil, fmt.Errorf("store: connection %q: %w", id, ErrNotFound)
		}
		rec, err := decodeConnection([]byte(id), data)
		return []connectionRecord{rec}, err
	})
	if err != nil {
		return Connection{}, err
	}
	return cs[0], nil
}

// Connections returns every connection with its secret opened, sorted by id. A secret that
// does not open fails the whole list (an error naming the connection and wrapping
// [ErrUnknownKey] or [ErrDecrypt]).
func (s *Store) Connections(ctx context.Context) ([]Connection, error) {
	return s.readConnections(ctx, func(tx *bolt.Tx) ([]connectionRecord, error) {
		var recs []connectionRecord
		err := tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
			rec, err := decodeConnection(k, v)
			recs = append(recs, rec)
			return err
		})
		return recs, err
	})
}

// readConnections reads records in one read transaction and opens their secrets after it.
func (s *Store) readConnections(ctx context.Context, read func(tx *bolt.Tx) ([]connectionRecord, error)) ([]Connection, error) {
	for attempt := 0; ; attempt++ {
		sealer := s.sealerNow()
		var recs []connectionRecord
		err := s.view(ctx, func(tx *bolt.Tx) (err error) {
			recs, err = read(tx)
			return err
		})
		if err != nil {
			return nil, err
		}
		out := make([]Connection, 0, len(recs))
		for _, rec := range recs {
			c, err := rec.connection(s.sealerNow())
			if errors.Is(err, ErrUnknownKey) && s.sealerNow() != sealer && attempt < 3 {
				// A key rotation finished between the read and the open: the record was
				// sealed with a key that is gone now, and reading again finds it re-sealed.
				break
			}
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		if len(out) == len(recs) {
			return out, nil
		}
	}
}

// UpdateConnection reads the connection (secret opened), calls fn on it and writes the result
// back (secret sealed again, with the active key), all in one transaction. An error from fn
// aborts the update and is returned as is. A connector that fn removes from Connectors loses its
// pending timers with this connection in the same transaction. fn must not change ID
// ([ErrInvalid]); when it leaves UpdatedAt unchanged, UpdatedAt becomes now. fn runs inside the
// write transaction, holding every other writer back: keep it short and free of I/O. It returns
// the stored connection, [ErrNotFound] when there is none.
func (s *Store) UpdateConnection(ctx context.Context, id string, fn func(*Connection) error) (Connection, error) {
	var out Connection
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		var data []byte
		if id != "" {
			data = b.Get([]byte(id))
		}
		if data == nil {
			return fmt.Errorf("store: connection %q: %w", id, ErrNotFound)
		}
		rec, err := decodeConnection([]byte(id), data)
		if err != nil {
			return err
		}
		sealer := s.sealerNow()
		c, err := rec.connection(sealer)
		if err != nil {
			return err
		}
		updatedAt := c.UpdatedAt
		if err := fn(&c); err != nil {
			return err
		}
		if c.ID != id {
			return fmt.Errorf("store: connection %q: the update changed the id to %q: %w", id, c.ID, ErrInvalid)
		}
		if c.UpdatedAt.Equal(updatedAt) {
			c.UpdatedAt = s.nowUTC()
		}
		c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
		if data, err = encodeConnection(sealer, c); err != nil {
			return err
		}
		if err := b.Put([]byte(id), data); err != nil {
			return err
		}
		// A connector the connection no longer names loses its timers there: they could only
		// run it with a connection it may not use.
		for _, name := range rec.Connectors {
			if !slices.Contains(c.Connectors, name) {
				if err := deleteScopeTimers(tx, scopeKey(name, id)); err != nil {
					return err
				}
			}
		}
		if len(c.Secret) == 0 {
			c.Secret = nil
		}
		out = c
		return nil
	})
	if err := s.notifyAfter(ChangeConnection, id, err); err != nil {
		return Connection{}, err
	}
	return out, nil
}

// DeleteConnection deletes a connection together with its kv entries and pending timers (of
// every connector), in one transaction; [ErrNotFound] when there is none.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	return s.notifyAfter(ChangeConnection, id, s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		if id == "" || b.Get([]byte(id)) == nil {
			return fmt.Errorf("store: connection %q: %w", id, ErrNotFound)
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		prefix := connectionPrefix(id)
		kv := tx.Bucket(bucketKV)
		var scopes [][]byte
		c := kv.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			scopes = append(scopes, bytes.Clone(k))
		}
		for _, k := range scopes {
			if err := kv.DeleteBucket(k); err != nil {
				return err
			}
		}
		return deleteScopeTimers(tx, prefix)
	}))
}

// deleteScopeTimers deletes the pending timers of every scope whose key starts with prefix:
// [connectionPrefix] for all of a connection's, [scopeKey] for one (connector, connection).
func deleteScopeTimers(tx *bolt.Tx, prefix []byte) error {
	var timerIDs []string
	c := tx.Bucket(bucketTimersScope).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		_, id, ok := splitScopeIndexKey(k)
		if !ok {
			return fmt.Errorf("store: corrupt timer scope index key %q", k)
		}
		timerIDs = append(timerIDs, id)
	}
	for _, tid := range timerIDs {
		if err := deleteTimer(tx, tid); err != nil {
			return err
		}
	}
	return nil
}

// envelope is what the store reads of a sealed document: the id of the key that sealed it.
type envelope struct{ KID string }

func decodeEnvelope(sealed []byte) (envelope, error) {
	kid, err := SealedKeyID(sealed)
	return envelope{KID: kid}, err
}
