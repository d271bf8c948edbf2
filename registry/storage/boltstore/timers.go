package boltstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

type timerRecord struct {
	ID         string          `json:"id"`
	Connector  string          `json:"connector"`
	Connection string          `json:"connection,omitempty"`
	Name       string          `json:"name,omitempty"`
	FireAt     time.Time       `json:"fire_at"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

func decodeTimer(data []byte) (Timer, error) {
	var rec timerRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return Timer{}, fmt.Errorf("store: corrupt timer record: %w", err)
	}
	return Timer(rec), nil
}

// timerDueKey orders timers by fire time, then id.
func timerDueKey(t Timer) []byte { return append(appendTime(nil, t.FireAt), t.ID...) }

// timerScopeKey groups a scope's timers under the scope key.
func timerScopeKey(t Timer) []byte { return append(scopeKey(t.Connector, t.Connection), t.ID...) }

// splitScopeIndexKey splits a timer scope index key into scope key and timer id.
func splitScopeIndexKey(k []byte) (scope []byte, id string, ok bool) {
	_, rest, ok := readLP(k)
	if !ok {
		return nil, "", false
	}
	_, rest, ok = readLP(rest)
	if !ok {
		return nil, "", false
	}
	n := len(k) - len(rest)
	return k[:n], string(rest), true
}

func newTimerID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("store: timer id: %w", err)
	}
	return "t_" + hex.EncodeToString(b), nil
}

// SetTimer stores a pending timer and returns its id. An empty ID gets a new random one; an ID
// already pending in the same scope is replaced (rescheduled), one pending in another scope
// fails with [ErrExists]. A new timer fails with [ErrTooMany] when the scope already has
// MaxTimersPerScope pending, and with [ErrInvalid] when Connector is empty, FireAt is zero or
// out of range, or Payload is not valid JSON.
func (s *Store) SetTimer(ctx context.Context, t Timer) (string, error) {
	if err := checkID("timer connector", t.Connector); err != nil {
		return "", err
	}
	if len(t.Connection) > maxIDBytes {
		return "", fmt.Errorf("store: timer connection is over %d bytes: %w", maxIDBytes, ErrInvalid)
	}
	if t.FireAt.IsZero() || !timeInRange(t.FireAt) {
		return "", fmt.Errorf("store: timer fire time %s is zero or out of range: %w", t.FireAt, ErrInvalid)
	}
	t.FireAt = t.FireAt.UTC().Round(0)
	if t.ID != "" {
		if err := checkID("timer id", t.ID); err != nil {
			return "", err
		}
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		timers := tx.Bucket(bucketTimers)
		if t.ID == "" {
			for t.ID == "" || timers.Get([]byte(t.ID)) != nil {
				id, err := newTimerID()
				if err != nil {
					return err
				}
				t.ID = id
			}
		}
		scope := scopeKey(t.Connector, t.Connection)
		if data := timers.Get([]byte(t.ID)); data != nil {
			old, err := decodeTimer(data)
			if err != nil {
				return err
			}
			if !bytes.Equal(scopeKey(old.Connector, old.Connection), scope) {
				return fmt.Errorf("store: timer %s is pending in another scope: %w", t.ID, ErrExists)
			}
			if err := tx.Bucket(bucketTimersDue).Delete(timerDueKey(old)); err != nil {
				return err
			}
		} else if n := countPrefix(tx.Bucket(bucketTimersScope), scope, MaxTimersPerScope); n >= MaxTimersPerScope {
			return fmt.Errorf("store: connector %q, connection %q: %d timers pending: %w", t.Connector, t.Connection, n, ErrTooMany)
		}
		data, err := json.Marshal(timerRecord(t))
		if err != nil {
			return fmt.Errorf("store: timer payload: %w: %w", ErrInvalid, err)
		}
		if err := timers.Put([]byte(t.ID), data); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTimersDue).Put(timerDueKey(t), nil); err != nil {
			return err
		}
		return tx.Bucket(bucketTimersScope).Put(timerScopeKey(t), nil)
	})
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// countPrefix counts the keys of b that start with prefix, stopping at limit.
func countPrefix(b *bolt.Bucket, prefix []byte, limit int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}

// CancelTimer deletes a pending timer of the (connector, connection) scope; [ErrNotFound] when
// the scope has no pending timer with that id (a timer of another scope is not found either).
func (s *Store) CancelTimer(ctx context.Context, connector, connection, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		var data []byte
		if id != "" {
			data = tx.Bucket(bucketTimers).Get([]byte(id))
		}
		if data != nil {
			t, err := decodeTimer(data)
			if err != nil {
				return err
			}
			if t.Connector == connector && t.Connection == connection {
				return deleteTimer(tx, id)
			}
		}
		return fmt.Errorf("store: timer %s of connector %q, connection %q: %w", id, connector, connection, ErrNotFound)
	})
}

// DueTimers returns the pending timers whose FireAt is not after now, earliest first (ties by
// id), at most max of them (max <= 0: all). It does not delete them: the caller deletes each
// ([Store.DeleteTimer]) once it has fired, so a crash in between fires it again.
func (s *Store) DueTimers(ctx context.Context, now time.Time, max int) ([]Timer, error) {
	var out []Timer
	err := s.view(ctx, func(tx *bolt.Tx) error {
		timers := tx.Bucket(bucketTimers)
		c := tx.Bucket(bucketTimersDue).Cursor()
		for k, _ := c.First(); k != nil && (max <= 0 || len(out) < max); k, _ = c.Next() {
			if len(k) < 8 {
				return fmt.Errorf("store: corrupt timer index key %q", k)
			}
			if readTime(k[:8]).After(now) {
				break
			}
			data := timers.Get(k[8:])
			if data == nil {
				return fmt.Errorf("store: timer index names missing timer %q", k[8:])
			}
			t, err := decodeTimer(data)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteTimer deletes a timer of any scope (the scheduler calls it once the timer has fired);
// [ErrNotFound] when there is none (cancelled or deleted already).
func (s *Store) DeleteTimer(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if id == "" || tx.Bucket(bucketTimers).Get([]byte(id)) == nil {
			return fmt.Errorf("store: timer %s: %w", id, ErrNotFound)
		}
		return deleteTimer(tx, id)
	})
}

// deleteTimer deletes an existing timer and its index entries.
func deleteTimer(tx *bolt.Tx, id string) error {
	timers := tx.Bucket(bucketTimers)
	data := timers.Get([]byte(id))
	if data == nil {
		return nil
	}
	t, err := decodeTimer(data)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketTimersDue).Delete(timerDueKey(t)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketTimersScope).Delete(timerScopeKey(t)); err != nil {
		return err
	}
	return timers.Delete([]byte(id))
}
