package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Invocation logs: one record per action call, kept for a bounded time and count (API.md
// "GET /v1/invocations/{correlation_id}"). The store keeps each record's JSON document without
// reading it.
//
// Bucket layout (created at the first write, so a data file that never logged has none):
//
//	invocations          lp(correlation id) + time (8 bytes) + seq (8 bytes BE) -> document
//	invocations_by_time  time (8 bytes) + seq (8 bytes BE) -> the invocations key
//	                     the bucket's sequence counts the records held
//
// seq is the invocations bucket's sequence, so records written in one batch keep their order
// even with equal times, and records that share a correlation id (a client may send the same
// X-Correlation-ID twice) are all kept, oldest first.
var (
	bucketInvocations       = []byte("invocations")
	bucketInvocationsByTime = []byte("invocations_by_time")
)

// PutInvocations appends records in one transaction (one fsync for the batch), in order. A
// record with an empty or oversized correlation id, or a time out of range, fails the batch
// with [ErrInvalid] before anything is written.
func (s *Store) PutInvocations(ctx context.Context, recs []Invocation) error {
	for _, r := range recs {
		if err := checkID("invocation correlation id", r.CorrelationID); err != nil {
			return err
		}
		if r.Time.IsZero() || !timeInRange(r.Time) {
			return fmt.Errorf("store: invocation time %s is zero or out of range: %w", r.Time, ErrInvalid)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		inv, err := tx.CreateBucketIfNotExists(bucketInvocations)
		if err != nil {
			return err
		}
		byTime, err := tx.CreateBucketIfNotExists(bucketInvocationsByTime)
		if err != nil {
			return err
		}
		for _, r := range recs {
			seq, err := inv.NextSequence()
			if err != nil {
				return err
			}
			tk := binary.BigEndian.AppendUint64(appendTime(nil, r.Time), seq)
			key := append(appendLP(nil, r.CorrelationID), tk...)
			if err := inv.Put(key, bytes.Clone(r.Document)); err != nil {
				return err
			}
			if err := byTime.Put(tk, key); err != nil {
				return err
			}
		}
		return byTime.SetSequence(byTime.Sequence() + uint64(len(recs)))
	})
}

// Invocations returns the records of a correlation id, oldest first (at most the newest
// MaxInvocationsPerID); none is not an error.
func (s *Store) Invocations(ctx context.Context, correlationID string) ([]Invocation, error) {
	var out []Invocation
	err := s.view(ctx, func(tx *bolt.Tx) error {
		inv := tx.Bucket(bucketInvocations)
		if inv == nil {
			return nil
		}
		prefix := appendLP(nil, correlationID)
		c := inv.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rest := k[len(prefix):]
			if len(rest) != 16 {
				continue // another id whose length prefix happens to match: impossible with lp, kept safe
			}
			out = append(out, Invocation{CorrelationID: correlationID, Time: readTime(rest[:8]), Document: bytes.Clone(v)})
			if len(out) > MaxInvocationsPerID {
				out = out[1:]
			}
		}
		return nil
	})
	return out, err
}

// PruneInvocations deletes the records older than before, then the oldest ones beyond keep
// (keep <= 0 keeps no bound on the count), at most MaxPruneBatch in one transaction, and
// returns how many it deleted.
func (s *Store) PruneInvocations(ctx context.Context, before time.Time, keep int) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		inv, byTime := tx.Bucket(bucketInvocations), tx.Bucket(bucketInvocationsByTime)
		if inv == nil || byTime == nil {
			return errUnchanged
		}
		held := byTime.Sequence()
		limit := appendTime(nil, before)
		c := byTime.Cursor()
		for k, v := c.First(); k != nil && n < MaxPruneBatch; k, v = c.First() {
			old := bytes.Compare(k[:8], limit) < 0
			over := keep > 0 && held > uint64(keep)
			if !old && !over {
				break
			}
			if err := inv.Delete(v); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
			held--
			n++
		}
		if n == 0 {
			return errUnchanged
		}
		return byTime.SetSequence(held)
	})
	return n, err
}
