package natsstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plugboard/plugboard/registry/storage"
)

// The audit log is the stream <prefix>_audit: one message per entry on <prefix>.audit, its
// stream sequence being the entry's Seq (the paging cursor). The invocation logs are the
// stream <prefix>_invocations: one message per record on <prefix>.inv.<correlation id>, the
// record's time in the Plugboard-Time header. Both are pruned from the front (purge), so
// their sequences are contiguous from the first to the last.

const invTimeHeader = "Plugboard-Time"

// AppendAudit implements [storage.Audit].
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEntry) error {
	if err := s.reach(ctx); err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = s.nowUTC()
	}
	e.Time = e.Time.UTC().Round(0)
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.js.Publish(ctx, s.prefix+".audit", data); err != nil {
		return s.netErr("appending to the audit log", err)
	}
	return nil
}

// streamState returns the first and last sequence and the message count of a stream.
func (s *Store) streamState(ctx context.Context, st jetstream.Stream) (first, last, msgs uint64, err error) {
	if err := s.reach(ctx); err != nil {
		return 0, 0, 0, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		return 0, 0, 0, s.netErr("reading stream state", err)
	}
	return info.State.FirstSeq, info.State.LastSeq, info.State.Msgs, nil
}

// getMsg reads one message by sequence; nil when there is none.
func (s *Store) getMsg(ctx context.Context, st jetstream.Stream, seq uint64) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.netErr("reading a log message", err)
	}
	return m, nil
}

func (s *Store) auditEntry(ctx context.Context, seq uint64) (*storage.AuditEntry, error) {
	m, err := s.getMsg(ctx, s.audit, seq)
	if err != nil || m == nil {
		return nil, err
	}
	var e storage.AuditEntry
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return nil, s.corruptErr(fmt.Sprintf("audit entry %d", seq), err)
	}
	e.Seq = seq
	return &e, nil
}

// Audit implements [storage.Audit]: newest first from the cursor, like bbolt (Since stops at
// the first older entry).
func (s *Store) Audit(ctx context.Context, q storage.AuditQuery) ([]storage.AuditEntry, uint64, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	first, last, msgs, err := s.streamState(ctx, s.audit)
	if err != nil || msgs == 0 {
		return nil, 0, err
	}
	start := last
	if q.Before > 0 && q.Before-1 < start {
		start = q.Before - 1
	}
	var out []storage.AuditEntry
	for seq := start; seq >= first && seq > 0; seq-- {
		e, err := s.auditEntry(ctx, seq)
		if err != nil {
			return nil, 0, err
		}
		if e == nil {
			continue
		}
		if !q.Since.IsZero() && e.Time.Before(q.Since) {
			break
		}
		if (q.Actor != "" && e.Actor != q.Actor) || (q.Target != "" && !targetMatches(e.Target, q.Target)) {
			continue
		}
		if len(out) == q.Limit {
			return out, out[len(out)-1].Seq, nil
		}
		out = append(out, *e)
	}
	return out, 0, nil
}

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

// firstAtOrAfter finds, by binary search over [first, last], the first sequence whose time
// (timeOf) is not before cutoff; the logs are appended in time order, up to the milliseconds
// concurrent appends may swap.
func (s *Store) firstAtOrAfter(ctx context.Context, first, last uint64, cutoff time.Time, timeOf func(uint64) (time.Time, bool, error)) (uint64, error) {
	lo, hi := first, last+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		t, ok, err := timeOf(mid)
		if err != nil {
			return 0, err
		}
		if ok && !t.Before(cutoff) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// purgeBefore removes every message of st below seq and returns how many it removed.
func (s *Store) purgeBefore(ctx context.Context, st jetstream.Stream, seq uint64) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(seq)); err != nil {
		return s.netErr("pruning a log", err)
	}
	return nil
}

// PruneAudit implements [storage.Audit].
func (s *Store) PruneAudit(ctx context.Context, maxAge time.Duration, maxEntries int) (int, error) {
	first, last, msgs, err := s.streamState(ctx, s.audit)
	if err != nil || msgs == 0 {
		return 0, err
	}
	cut := first
	if maxEntries > 0 && msgs > uint64(maxEntries) {
		cut = first + msgs - uint64(maxEntries)
	}
	if maxAge > 0 {
		cutoff := s.nowUTC().Add(-maxAge)
		at, err := s.firstAtOrAfter(ctx, first, last, cutoff, func(seq uint64) (time.Time, bool, error) {
			e, err := s.auditEntry(ctx, seq)
			if err != nil || e == nil {
				return time.Time{}, false, err
			}
			return e.Time, true, nil
		})
		if err != nil {
			return 0, err
		}
		cut = max(cut, at)
	}
	if cut <= first {
		return 0, nil
	}
	if err := s.purgeBefore(ctx, s.audit, cut); err != nil {
		return 0, err
	}
	return int(cut - first), nil
}

// PutInvocations implements [storage.Invocations]: the records are one atomic batch.
func (s *Store) PutInvocations(ctx context.Context, recs []storage.Invocation) error {
	for _, r := range recs {
		if err := checkID("invocation correlation id", r.CorrelationID); err != nil {
			return err
		}
		if r.Time.IsZero() || !timeInRange(r.Time) {
			return fmt.Errorf("natsstore: invocation time %s is zero or out of range: %w", r.Time, storage.ErrInvalid)
		}
	}
	for len(recs) > 0 {
		n := min(len(recs), maxBatch)
		msgs := make([]*nats.Msg, n)
		for i, r := range recs[:n] {
			m := nats.NewMsg(s.prefix + ".inv." + enc(r.CorrelationID))
			m.Data = append([]byte{}, r.Document...)
			m.Header.Set(invTimeHeader, r.Time.UTC().Format(time.RFC3339Nano))
			msgs[i] = m
		}
		if _, err := s.publishBatch(ctx, s.prefix+"_invocations", msgs); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// Invocations implements [storage.Invocations]: the newest MaxInvocationsPerID records of
// the id, oldest first.
func (s *Store) Invocations(ctx context.Context, correlationID string) ([]storage.Invocation, error) {
	if err := s.reach(ctx); err != nil {
		return nil, err
	}
	if correlationID == "" {
		return nil, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	subj := s.prefix + ".inv." + enc(correlationID)
	info, err := s.inv.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, s.netErr("reading invocation logs", err)
	}
	count := info.State.Subjects[subj]
	if count == 0 {
		return nil, nil
	}
	cons, err := s.inv.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, s.netErr("reading invocation logs", err)
	}
	var out []storage.Invocation
	for uint64(len(out)) < count {
		batch, err := cons.Fetch(int(min(count-uint64(len(out)), 256)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, s.netErr("reading invocation logs", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			t, _ := time.Parse(time.RFC3339Nano, m.Headers().Get(invTimeHeader))
			out = append(out, storage.Invocation{CorrelationID: correlationID, Time: t.UTC(), Document: append([]byte{}, m.Data()...)})
		}
		if batch.Error() != nil || got == 0 {
			break
		}
	}
	if len(out) > storage.MaxInvocationsPerID {
		out = out[len(out)-storage.MaxInvocationsPerID:]
	}
	return out, nil
}

// PruneInvocations implements [storage.Invocations]: records older than before, then the
// oldest beyond keep, at most MaxPruneBatch per call, by their times (records are appended
// when their calls end, so stream order is not time order). It reads the headers of the whole
// log to order them; a prefix of the stream goes with one purge, other records one by one.
func (s *Store) PruneInvocations(ctx context.Context, before time.Time, keep int) (int, error) {
	first, last, msgs, err := s.streamState(ctx, s.inv)
	if err != nil || msgs == 0 {
		return 0, err
	}
	type rec struct {
		seq uint64
		t   time.Time
	}
	recs := make([]rec, 0, msgs)
	err = func() error {
		ctx, cancel := s.opCtx(ctx)
		defer cancel()
		cons, err := s.inv.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
		if err != nil {
			return err
		}
		for uint64(len(recs)) < msgs {
			batch, err := cons.Fetch(1024, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				return err
			}
			got := 0
			for m := range batch.Messages() {
				got++
				md, err := m.Metadata()
				if err != nil {
					return err
				}
				t, _ := time.Parse(time.RFC3339Nano, m.Headers().Get(invTimeHeader))
				recs = append(recs, rec{md.Sequence.Stream, t})
				if md.Sequence.Stream >= last {
					return nil
				}
			}
			if batch.Error() != nil || got == 0 {
				return batch.Error()
			}
		}
		return nil
	}()
	if err != nil {
		return 0, s.netErr("reading invocation logs", err)
	}
	slices.SortFunc(recs, func(a, b rec) int { return cmp.Or(a.t.Compare(b.t), cmp.Compare(a.seq, b.seq)) })
	var drop []uint64
	held := len(recs)
	for _, r := range recs {
		if len(drop) == storage.MaxPruneBatch {
			break
		}
		if !r.t.Before(before) && !(keep > 0 && held > keep) {
			break
		}
		drop = append(drop, r.seq)
		held--
	}
	if len(drop) == 0 {
		return 0, nil
	}
	slices.Sort(drop)
	prefix := 0 // drop[:prefix] are first, first+1, ...
	for prefix < len(drop) && drop[prefix] == first+uint64(prefix) {
		prefix++
	}
	if prefix > 0 {
		if err := s.purgeBefore(ctx, s.inv, first+uint64(prefix)); err != nil {
			return 0, err
		}
	}
	for i, seq := range drop[prefix:] {
		dctx, cancel := s.opCtx(ctx)
		err := s.inv.DeleteMsg(dctx, seq)
		cancel()
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return prefix + i, s.netErr("pruning invocation logs", err)
		}
	}
	return len(drop), nil
}
