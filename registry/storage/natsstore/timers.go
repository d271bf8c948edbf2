package natsstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// Timers live in the state bucket: t.<id> is the timer, tscope.<connection>.<connector> the
// ids pending in that scope (its count, and the guard of the scope's writes). DueTimers reads
// the in-memory copy of t.>; DeleteTimer is checked by revision, so of several nodes firing
// one timer exactly one deletes it.

type timerRecord struct {
	ID         string          `json:"id"`
	Connector  string          `json:"connector"`
	Connection string          `json:"connection,omitempty"`
	Name       string          `json:"name,omitempty"`
	FireAt     time.Time       `json:"fire_at"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

func timerKey(id string) string { return "t." + enc(id) }

func tscopeKey(connection, connector string) string {
	return "tscope." + enc(connection) + "." + enc(connector)
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func timeInRange(t time.Time) bool { return !t.Before(minTime) && !t.After(maxTime) }

func newTimerID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("natsstore: timer id: %w", err)
	}
	return "t_" + hex.EncodeToString(b), nil
}

// scopeIDs reads a timer scope's id list.
func scopeIDs(ctx context.Context, t *txn, key string) ([]string, error) {
	var ids []string
	_, err := t.getJSON(ctx, key, &ids)
	return ids, err
}

// putScopeIDs writes a scope's id list, deleting the record once it is empty.
func putScopeIDs(t *txn, key string, ids []string) error {
	if len(ids) == 0 {
		t.del(key)
		return nil
	}
	return t.putJSON(key, ids)
}

// SetTimer implements [storage.Timers], with bbolt's checks and errors.
func (s *Store) SetTimer(ctx context.Context, tm storage.Timer) (string, error) {
	if err := checkID("timer connector", tm.Connector); err != nil {
		return "", err
	}
	if len(tm.Connection) > maxIDBytes {
		return "", fmt.Errorf("natsstore: timer connection is over %d bytes: %w", maxIDBytes, storage.ErrInvalid)
	}
	if tm.FireAt.IsZero() || !timeInRange(tm.FireAt) {
		return "", fmt.Errorf("natsstore: timer fire time %s is zero or out of range: %w", tm.FireAt, storage.ErrInvalid)
	}
	if len(tm.Payload) > 0 && !json.Valid(tm.Payload) {
		return "", fmt.Errorf("natsstore: timer payload is not valid JSON: %w", storage.ErrInvalid)
	}
	tm.FireAt = tm.FireAt.UTC().Round(0)
	if tm.ID != "" {
		if err := checkID("timer id", tm.ID); err != nil {
			return "", err
		}
	}
	given := tm.ID
	_, err := s.update(ctx, s.state, func(t *txn) error {
		tm.ID = given
		for {
			if tm.ID == "" {
				id, err := newTimerID()
				if err != nil {
					return err
				}
				tm.ID = id
			}
			var old timerRecord
			found, err := t.getJSON(ctx, timerKey(tm.ID), &old)
			if err != nil {
				return err
			}
			if found && given == "" {
				tm.ID = ""
				continue // a random id taken: draw again
			}
			if found && (old.Connector != tm.Connector || old.Connection != tm.Connection) {
				return fmt.Errorf("natsstore: timer %s is pending in another scope: %w", tm.ID, storage.ErrExists)
			}
			sk := tscopeKey(tm.Connection, tm.Connector)
			ids, err := scopeIDs(ctx, t, sk)
			if err != nil {
				return err
			}
			if !slices.Contains(ids, tm.ID) {
				if len(ids) >= storage.MaxTimersPerScope {
					return fmt.Errorf("natsstore: connector %q, connection %q: %d timers pending: %w", tm.Connector, tm.Connection, len(ids), storage.ErrTooMany)
				}
				ids = append(ids, tm.ID)
			}
			if err := putScopeIDs(t, sk, ids); err != nil {
				return err
			}
			return t.putJSON(timerKey(tm.ID), timerRecord(tm))
		}
	})
	if err != nil {
		return "", err
	}
	return tm.ID, nil
}

// CancelTimer implements [storage.Timers].
func (s *Store) CancelTimer(ctx context.Context, connector, connection, id string) error {
	_, err := s.update(ctx, s.state, func(t *txn) error {
		var tm timerRecord
		found := false
		var err error
		if id != "" {
			found, err = t.getJSON(ctx, timerKey(id), &tm)
		}
		if err != nil {
			return err
		}
		if !found || tm.Connector != connector || tm.Connection != connection {
			return fmt.Errorf("natsstore: timer %s of connector %q, connection %q: %w", id, connector, connection, storage.ErrNotFound)
		}
		return deleteTimer(ctx, t, tm)
	})
	return err
}

// deleteTimer deletes an existing timer and its scope entry.
func deleteTimer(ctx context.Context, t *txn, tm timerRecord) error {
	sk := tscopeKey(tm.Connection, tm.Connector)
	ids, err := scopeIDs(ctx, t, sk)
	if err != nil {
		return err
	}
	t.del(timerKey(tm.ID))
	return putScopeIDs(t, sk, slices.DeleteFunc(ids, func(x string) bool { return x == tm.ID }))
}

// deleteScopeTimers deletes every timer of one (connector, connection) scope.
func deleteScopeTimers(ctx context.Context, t *txn, connection, connector string) error {
	sk := tscopeKey(connection, connector)
	ids, err := scopeIDs(ctx, t, sk)
	if err != nil || len(ids) == 0 {
		return err
	}
	for _, id := range ids {
		t.del(timerKey(id))
	}
	t.del(sk)
	return nil
}

// DueTimers implements [storage.Timers], from memory: a timer set on another node a moment
// ago is returned once its watcher update arrives.
func (s *Store) DueTimers(ctx context.Context, now time.Time, max int) ([]storage.Timer, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []storage.Timer
	all, err := s.values(ctx, s.cTimers)
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		tm := v.(timerRecord)
		if !tm.FireAt.After(now) {
			out = append(out, storage.Timer(tm))
		}
	}
	slices.SortFunc(out, func(a, b storage.Timer) int {
		if c := a.FireAt.Compare(b.FireAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	for i := range out {
		out[i].Payload = slices.Clone(out[i].Payload)
	}
	return out, nil
}

// DeleteTimer implements [storage.Timers].
func (s *Store) DeleteTimer(ctx context.Context, id string) error {
	_, err := s.update(ctx, s.state, func(t *txn) error {
		var tm timerRecord
		found := false
		var err error
		if id != "" {
			found, err = t.getJSON(ctx, timerKey(id), &tm)
		}
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("natsstore: timer %s: %w", id, storage.ErrNotFound)
		}
		return deleteTimer(ctx, t, tm)
	})
	return err
}

// KV entries live in the state bucket: kv.<connection>.<connector>.<key> is the expiry (8
// bytes big-endian UnixNano, 0 = none) and the value, as bbolt stores them; kvs.<connection>.
// <connector> is the scope's size in bytes (its guard).

const kvExpiryBytes = 8

func kvKey(connector, connection, key string) string {
	return "kv." + enc(connection) + "." + enc(connector) + "." + enc(key)
}

func kvScopeKey(connector, connection string) string {
	return "kvs." + enc(connection) + "." + enc(connector)
}

func kvExpired(e []byte, now time.Time) bool {
	if len(e) < kvExpiryBytes {
		return true
	}
	exp := int64(binary.BigEndian.Uint64(e[:kvExpiryBytes]))
	return exp != 0 && now.UnixNano() >= exp
}

func checkKVKey(key string) error {
	if key == "" {
		return fmt.Errorf("natsstore: kv key is empty: %w", storage.ErrInvalid)
	}
	if len(key) > storage.MaxKVKeyBytes {
		return fmt.Errorf("natsstore: kv key is %d bytes, over %d: %w", len(key), storage.MaxKVKeyBytes, storage.ErrTooLarge)
	}
	return nil
}

// KVGet implements [storage.KV]; an expired entry reads as absent and is purged (best effort).
func (s *Store) KVGet(ctx context.Context, connector, connection, key string) ([]byte, bool, error) {
	if err := checkKVKey(key); err != nil {
		return nil, false, err
	}
	e, err := s.get(ctx, s.state, kvKey(connector, connection, key))
	if err != nil || !e.exists {
		return nil, false, err
	}
	now := s.now()
	if kvExpired(e.val, now) {
		_, _ = s.update(ctx, s.state, func(t *txn) error {
			cur, err := t.get(ctx, kvKey(connector, connection, key))
			if err != nil || !cur.exists || !kvExpired(cur.val, now) {
				return err
			}
			return kvDelete(ctx, t, connector, connection, key, cur.val)
		})
		return nil, false, nil
	}
	return append([]byte{}, e.val[kvExpiryBytes:]...), true, nil
}

func scopeTotal(ctx context.Context, t *txn, connector, connection string) (int64, error) {
	e, err := t.get(ctx, kvScopeKey(connector, connection))
	if err != nil || !e.exists {
		return 0, err
	}
	return strconv.ParseInt(string(e.val), 10, 64)
}

func putScopeTotal(t *txn, connector, connection string, total int64) {
	if total <= 0 {
		t.del(kvScopeKey(connector, connection))
		return
	}
	t.put(kvScopeKey(connector, connection), []byte(strconv.FormatInt(total, 10)))
}

// kvDelete deletes an existing entry whose stored bytes are old and updates the scope size.
func kvDelete(ctx context.Context, t *txn, connector, connection, key string, old []byte) error {
	total, err := scopeTotal(ctx, t, connector, connection)
	if err != nil {
		return err
	}
	t.del(kvKey(connector, connection, key))
	putScopeTotal(t, connector, connection, total-int64(len(key)+len(old)-kvExpiryBytes))
	return nil
}

// KVSet implements [storage.KV] with bbolt's limits: over the scope's limit, its expired
// entries are purged first and the limit checked again.
func (s *Store) KVSet(ctx context.Context, connector, connection, key string, value []byte, ttl time.Duration) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	if len(value) > storage.MaxKVValueBytes {
		return fmt.Errorf("natsstore: kv value is %d bytes, over %d: %w", len(value), storage.MaxKVValueBytes, storage.ErrTooLarge)
	}
	if ttl < 0 {
		return fmt.Errorf("natsstore: kv ttl %s is negative: %w", ttl, storage.ErrInvalid)
	}
	now := s.now()
	var exp int64
	if ttl > 0 {
		exp = maxTime.UnixNano()
		if t := now.Add(ttl); t.Before(maxTime) {
			exp = t.UnixNano()
		}
	}
	val := binary.BigEndian.AppendUint64(make([]byte, 0, kvExpiryBytes+len(value)), uint64(exp))
	val = append(val, value...)
	k := kvKey(connector, connection, key)
	tooLarge := false
	_, err := s.update(ctx, s.state, func(t *txn) error {
		tooLarge = false
		total, err := scopeTotal(ctx, t, connector, connection)
		if err != nil {
			return err
		}
		old, err := t.get(ctx, k)
		if err != nil {
			return err
		}
		if old.exists && len(old.val) >= kvExpiryBytes {
			total -= int64(len(key) + len(old.val) - kvExpiryBytes)
		}
		size := int64(len(key) + len(value))
		if total+size > storage.MaxKVScopeBytes {
			es, err := t.scan(ctx, "kv."+enc(connection)+"."+enc(connector)+".>")
			if err != nil {
				return err
			}
			var purged int64
			for _, e := range es {
				if e.key != k && kvExpired(e.val, now) {
					t.del(e.key)
					purged += int64(len(dec(e.key[strings.LastIndexByte(e.key, '.')+1:])) + len(e.val) - kvExpiryBytes)
				}
			}
			total -= purged
			if total+size > storage.MaxKVScopeBytes {
				if purged == 0 {
					return storage.ErrTooLarge
				}
				tooLarge = true
				putScopeTotal(t, connector, connection, total)
				return nil
			}
		}
		t.put(k, val)
		putScopeTotal(t, connector, connection, total+size)
		return nil
	})
	if err == nil && tooLarge {
		err = storage.ErrTooLarge
	}
	if err != nil {
		return fmt.Errorf("natsstore: kv set %q (connector %q, connection %q): %w", key, connector, connection, err)
	}
	return nil
}

// KVDelete implements [storage.KV].
func (s *Store) KVDelete(ctx context.Context, connector, connection, key string) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	_, err := s.update(ctx, s.state, func(t *txn) error {
		cur, err := t.get(ctx, kvKey(connector, connection, key))
		if err != nil || !cur.exists {
			return err
		}
		return kvDelete(ctx, t, connector, connection, key, cur.val)
	})
	return err
}
