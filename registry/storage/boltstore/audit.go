package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketAudit holds the audit log: one JSON [AuditEntry] per key, keyed by an 8-byte big-endian
// sequence number, so keys sort in append order and pruning removes a prefix. It is created by
// the first append.
var bucketAudit = []byte("audit")

// AppendAudit appends e to the audit log durably. Concurrent appends share one transaction
// and one fsync (bbolt's Batch), so a burst of denied calls costs few disk flushes.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = s.nowUTC()
	}
	e.Time = e.Time.UTC().Round(0)
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.mapErr(s.run(s.db.Batch, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAudit)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(auditKey(seq), v)
	}))
}

// Audit returns the entries q selects, newest first, and the cursor of the next page (0 when
// there is none). Entries are in append order, which is time order up to the few milliseconds
// concurrent appends may swap, so Since stops at the first older entry.
func (s *Store) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, uint64, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	var out []AuditEntry
	var next uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if q.Before == 0 {
			k, v = c.Last()
		} else {
			k, v = c.Seek(auditKey(q.Before))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && binary.BigEndian.Uint64(k) >= q.Before {
				k, v = c.Prev()
			}
		}
		for ; k != nil; k, v = c.Prev() {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("store: audit entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			e.Seq = binary.BigEndian.Uint64(k)
			if !q.Since.IsZero() && e.Time.Before(q.Since) {
				return nil
			}
			if (q.Actor != "" && e.Actor != q.Actor) || (q.Target != "" && !targetMatches(e.Target, q.Target)) {
				continue
			}
			if len(out) == q.Limit {
				next = out[len(out)-1].Seq
				return nil
			}
			out = append(out, e)
		}
		return nil
	})
	return out, next, err
}

// targetMatches reports whether an entry's target is want or has want as a part.
func targetMatches(target, want string) bool {
	if target == want {
		return true
	}
	for part := range strings.FieldsSeq(target) {
		if part == want {
			return true
		}
	}
	return false
}

// PruneAudit removes the entries older than maxAge (0: no age limit) and the oldest entries
// beyond maxEntries (0: no count limit), and returns how many it removed. Pruning works from
// the oldest entry, in transactions of at most 10000 deletions, so appends are not held up.
func (s *Store) PruneAudit(ctx context.Context, maxAge time.Duration, maxEntries int) (int, error) {
	cutoff := time.Time{}
	if maxAge > 0 {
		cutoff = s.nowUTC().Add(-maxAge)
	}
	removed := 0
	for {
		n := 0
		err := s.update(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			if b == nil {
				return errUnchanged
			}
			c := b.Cursor()
			first, _ := c.First()
			last, _ := c.Last()
			if first == nil {
				return errUnchanged
			}
			// Only a prefix is ever removed, so the keys are contiguous: count by subtraction.
			count := int(binary.BigEndian.Uint64(last) - binary.BigEndian.Uint64(first) + 1)
			for k, v := c.First(); k != nil && n < 10000; k, v = c.First() {
				over := maxEntries > 0 && count-n > maxEntries
				if !over && !cutoff.IsZero() {
					var e AuditEntry
					if json.Unmarshal(v, &e) == nil && e.Time.Before(cutoff) {
						over = true
					}
				}
				if !over {
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return errUnchanged
			}
			return nil
		})
		if err != nil {
			return removed, err
		}
		removed += n
		if n < 10000 {
			return removed, nil
		}
	}
}

func auditKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
