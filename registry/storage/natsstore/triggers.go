package natsstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// Trigger state lives in the trig bucket, one key per record:
//
//	src.<source>            srcRecord: the Source, its subscription ids, its first logged seq
//	srckey.<sha256(key)>    source id (FindSource)
//	hook.<token>            source id (SourceByHookToken)
//	sub.<subscription>      storage.Subscription
//	ev.<source>.<seq>       storage.StoredEvent (seq as 20 digits, so keys sort by seq)
//	eid.<source>.<hash>     seq: the deduplication ledger (hash: 32 hex of sha256(event id))
//	q.<subscription>.<seq>  storage.QueueEntry: one pending delivery
//	sec.src.<id>, sec.sub.<id>  sealed webhook and signing secrets
//
// src.<source> is the guard of a source's log: every transaction that appends to or prunes
// the log, or changes the source's subscriptions, rewrites it, so CommitEvents from two
// nodes on one source serialize (one of them runs again), and no seq is handed out twice.
// A subscription's counters live in its record, which every queue operation rewrites; each
// queue entry is checked by its revision, so a lease taken on one node holds on all.

type srcRecord struct {
	Source storage.Source `json:"source"`
	Subs   []string       `json:"subs,omitempty"`
	// First is the seq of the oldest event still in the log (0: NextSeq, the log is empty).
	First uint64 `json:"first,omitempty"`
}

func srcKey(id string) string             { return "src." + enc(id) }
func subKey(id string) string             { return "sub." + enc(id) }
func evKey(src string, seq uint64) string { return "ev." + enc(src) + "." + seqTok(seq) }
func qKey(sub string, seq uint64) string  { return "q." + enc(sub) + "." + seqTok(seq) }
func secKey(kind, id string) string       { return "sec." + enc(kind) + "." + enc(id) }

func srcKeyIndex(key string) string {
	h := sha256.Sum256([]byte(key))
	return "srckey." + hex.EncodeToString(h[:])
}

func eidKey(src, eventID string) string {
	h := sha256.Sum256([]byte(eventID))
	return "eid." + enc(src) + "." + hex.EncodeToString(h[:16])
}

// seqOf returns the seq at the end of an ev. or q. key.
func seqOf(key string) uint64 {
	n, _ := strconv.ParseUint(key[strings.LastIndexByte(key, '.')+1:], 10, 64)
	return n
}

// deleteChunk is how many keys one clean-up commit deletes.
const deleteChunk = 500

// deleteAll deletes keys in commits of deleteChunk (used after the atomic part of a delete
// made them unreachable).
func (s *Store) deleteAll(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), deleteChunk)
		chunk := keys[:n]
		keys = keys[n:]
		if _, err := s.update(ctx, s.trig, func(t *txn) error {
			for _, k := range chunk {
				t.del(k)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) putTriggerSecret(t *txn, kind, id string, secret []byte) error {
	if secret == nil {
		return nil
	}
	sealed, err := s.sealerNow().Seal(secret, []byte(kind+":"+id))
	if err != nil {
		return err
	}
	t.put(secKey(kind, id), sealed)
	return nil
}

// TriggerSecret implements [storage.Sources].
func (s *Store) TriggerSecret(ctx context.Context, kind, id string) ([]byte, error) {
	e, err := s.get(ctx, s.trig, secKey(kind, id))
	if err != nil {
		return nil, err
	}
	if !e.exists {
		return nil, fmt.Errorf("natsstore: secret of %s %s: %w", kind, id, storage.ErrNotFound)
	}
	return s.sealerNow().Open(e.val, []byte(kind+":"+id))
}

// readSource reads a source record outside a transaction.
func (s *Store) readSource(ctx context.Context, id string) (srcRecord, bool, error) {
	var rec srcRecord
	if id == "" {
		return rec, false, s.check(ctx)
	}
	found, err := s.getJSON(ctx, s.trig, srcKey(id), &rec)
	return rec, found, err
}

// FindSource implements [storage.Sources].
func (s *Store) FindSource(ctx context.Context, key string) (storage.Source, bool, error) {
	e, err := s.get(ctx, s.trig, srcKeyIndex(key))
	if err != nil || !e.exists {
		return storage.Source{}, false, err
	}
	rec, found, err := s.readSource(ctx, string(e.val))
	return rec.Source, found, err
}

// GetSource implements [storage.Sources].
func (s *Store) GetSource(ctx context.Context, id string) (storage.Source, error) {
	rec, found, err := s.readSource(ctx, id)
	if err == nil && !found {
		err = fmt.Errorf("natsstore: source %q: %w", id, storage.ErrNotFound)
	}
	return rec.Source, err
}

// Sources implements [storage.Sources], by id.
func (s *Store) Sources(ctx context.Context) ([]storage.Source, error) {
	es, err := s.scan(ctx, s.trig, "src.>")
	if err != nil {
		return nil, err
	}
	var out []storage.Source
	for _, e := range es {
		var rec srcRecord
		if err := json.Unmarshal(e.val, &rec); err != nil {
			return nil, s.corruptErr("source "+e.key, err)
		}
		out = append(out, rec.Source)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// CreateSource implements [storage.Sources].
func (s *Store) CreateSource(ctx context.Context, src storage.Source, secret []byte, sub *storage.Subscription, subSecret []byte) error {
	if err := checkID("source id", src.ID); err != nil {
		return err
	}
	if src.CreatedAt.IsZero() {
		src.CreatedAt = s.nowUTC()
	}
	if src.NextSeq == 0 {
		src.NextSeq = 1
	}
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		idx, err := t.get(ctx, srcKeyIndex(src.Key))
		if err != nil {
			return err
		}
		if idx.exists {
			return fmt.Errorf("natsstore: source for %s.%s: %w", src.Connector, src.Trigger, storage.ErrExists)
		}
		if old, err := t.get(ctx, srcKey(src.ID)); err != nil || old.exists {
			if err == nil {
				err = fmt.Errorf("natsstore: source %s: %w", src.ID, storage.ErrExists)
			}
			return err
		}
		t.put(srcKeyIndex(src.Key), []byte(src.ID))
		if src.HookToken != "" {
			t.put("hook."+enc(src.HookToken), []byte(src.ID))
		}
		if err := s.putTriggerSecret(t, "src", src.ID, secret); err != nil {
			return err
		}
		rec := srcRecord{Source: src, First: src.NextSeq}
		if sub != nil {
			if err := s.putNewSub(ctx, t, *sub, subSecret); err != nil {
				return err
			}
			rec.Subs = []string{sub.ID}
		}
		return t.putJSON(srcKey(src.ID), rec)
	})
	return err
}

func (s *Store) putNewSub(ctx context.Context, t *txn, sub storage.Subscription, secret []byte) error {
	if err := checkID("subscription id", sub.ID); err != nil {
		return err
	}
	if sub.CreatedAt.IsZero() {
		sub.CreatedAt = s.nowUTC()
	}
	if sub.Status == "" {
		sub.Status = storage.SubActive
	}
	old, err := t.get(ctx, subKey(sub.ID))
	if err != nil {
		return err
	}
	if old.exists {
		return fmt.Errorf("natsstore: subscription %s: %w", sub.ID, storage.ErrExists)
	}
	if err := s.putTriggerSecret(t, "sub", sub.ID, secret); err != nil {
		return err
	}
	return t.putJSON(subKey(sub.ID), sub)
}

// getSource reads a source in a transaction; [storage.ErrNotFound] when it is gone.
func getSource(ctx context.Context, t *txn, id string) (srcRecord, error) {
	var rec srcRecord
	found := false
	var err error
	if id != "" {
		found, err = t.getJSON(ctx, srcKey(id), &rec)
	}
	if err == nil && !found {
		err = fmt.Errorf("natsstore: source %q: %w", id, storage.ErrNotFound)
	}
	if rec.First == 0 {
		rec.First = rec.Source.NextSeq
	}
	return rec, err
}

// getSub reads a subscription in a transaction; [storage.ErrNotFound] when it is gone.
func getSub(ctx context.Context, t *txn, id string) (storage.Subscription, error) {
	var sub storage.Subscription
	found := false
	var err error
	if id != "" {
		found, err = t.getJSON(ctx, subKey(id), &sub)
	}
	if err == nil && !found {
		err = fmt.Errorf("natsstore: subscription %q: %w", id, storage.ErrNotFound)
	}
	return sub, err
}

// AddSubscription implements [storage.Sources].
func (s *Store) AddSubscription(ctx context.Context, sub storage.Subscription, secret []byte, update func(*storage.Source)) error {
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		rec, err := getSource(ctx, t, sub.SourceID)
		if err != nil {
			return err
		}
		if update != nil {
			update(&rec.Source)
		}
		if err := s.putNewSub(ctx, t, sub, secret); err != nil {
			return err
		}
		rec.Subs = append(rec.Subs, sub.ID)
		return t.putJSON(srcKey(rec.Source.ID), rec)
	})
	return err
}

// UpdateSource implements [storage.Sources]; fn may run again on a conflict.
func (s *Store) UpdateSource(ctx context.Context, id string, fn func(*storage.Source)) (storage.Source, error) {
	var out storage.Source
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		rec, err := getSource(ctx, t, id)
		if err != nil {
			return err
		}
		fn(&rec.Source)
		out = rec.Source
		return t.putJSON(srcKey(id), rec)
	})
	return out, err
}

// DeleteSource implements [storage.Sources]: the source, its indexes and secret go in one
// commit ([storage.ErrExists] while it has subscriptions); its log is deleted after, in
// chunks, unreachable already.
func (s *Store) DeleteSource(ctx context.Context, id string) error {
	var rec srcRecord
	var found bool
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		rec = srcRecord{}
		found = false
		if id == "" {
			return nil
		}
		var err error
		if found, err = t.getJSON(ctx, srcKey(id), &rec); err != nil || !found {
			return err
		}
		if len(rec.Subs) > 0 {
			return fmt.Errorf("natsstore: source %s still has subscriptions: %w", id, storage.ErrExists)
		}
		if rec.Source.HookToken != "" {
			t.del("hook." + enc(rec.Source.HookToken))
		}
		t.del(srcKeyIndex(rec.Source.Key))
		if e, err := t.get(ctx, secKey("src", id)); err != nil {
			return err
		} else if e.exists {
			t.del(secKey("src", id))
		}
		t.del(srcKey(id))
		return nil
	})
	if err != nil || !found {
		return err
	}
	var keys []string
	for _, f := range []string{"ev." + enc(id) + ".>", "eid." + enc(id) + ".>"} {
		ks, err := s.listKeys(ctx, s.trig, f)
		if err != nil {
			return err
		}
		keys = append(keys, ks...)
	}
	return s.deleteAll(ctx, keys)
}

// listKeys lists the existing keys matching filter (headers only).
func (s *Store) listKeys(ctx context.Context, b *bucket, filter string) ([]string, error) {
	if err := s.reach(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	kl, err := b.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, s.netErr("listing "+b.name+" "+filter, err)
	}
	var out []string
	for k := range kl.Keys() {
		out = append(out, k)
	}
	if ctx.Err() != nil {
		return nil, s.netErr("listing "+b.name+" "+filter, ctx.Err())
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// SourceByHookToken implements [storage.Sources].
func (s *Store) SourceByHookToken(ctx context.Context, token string) (storage.Source, error) {
	e, err := s.get(ctx, s.trig, "hook."+enc(token))
	if err != nil {
		return storage.Source{}, err
	}
	if e.exists {
		rec, found, err := s.readSource(ctx, string(e.val))
		if err != nil || found {
			return rec.Source, err
		}
	}
	return storage.Source{}, fmt.Errorf("natsstore: hook token: %w", storage.ErrNotFound)
}

// GetSubscription implements [storage.Sources].
func (s *Store) GetSubscription(ctx context.Context, id string) (storage.Subscription, time.Time, error) {
	var sub storage.Subscription
	found := false
	var err error
	if id != "" {
		found, err = s.getJSON(ctx, s.trig, subKey(id), &sub)
	}
	if err == nil && !found {
		err = fmt.Errorf("natsstore: subscription %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Subscription{}, time.Time{}, err
	}
	oldest, err := s.oldestPending(ctx, sub)
	return sub, oldest, err
}

// oldestPending returns the receive time of the subscription's first pending event.
func (s *Store) oldestPending(ctx context.Context, sub storage.Subscription) (time.Time, error) {
	if sub.Pending <= 0 {
		return time.Time{}, nil
	}
	keys, err := s.listKeys(ctx, s.trig, "q."+enc(sub.ID)+".>")
	if err != nil || len(keys) == 0 {
		return time.Time{}, err
	}
	var ev storage.StoredEvent
	if found, err := s.getJSON(ctx, s.trig, evKey(sub.SourceID, seqOf(keys[0])), &ev); err != nil || !found {
		return time.Time{}, err
	}
	return ev.Received, nil
}

// Subscriptions implements [storage.Sources], by id.
func (s *Store) Subscriptions(ctx context.Context, source string) ([]storage.SubscriptionView, error) {
	var subs []storage.Subscription
	if source != "" {
		rec, found, err := s.readSource(ctx, source)
		if err != nil || !found {
			return nil, err
		}
		for _, id := range rec.Subs {
			var sub storage.Subscription
			found, err := s.getJSON(ctx, s.trig, subKey(id), &sub)
			if err != nil {
				return nil, err
			}
			if found {
				subs = append(subs, sub)
			}
		}
	} else {
		es, err := s.scan(ctx, s.trig, "sub.>")
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			var sub storage.Subscription
			if err := json.Unmarshal(e.val, &sub); err != nil {
				return nil, s.corruptErr("subscription "+e.key, err)
			}
			subs = append(subs, sub)
		}
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].ID < subs[j].ID })
	var out []storage.SubscriptionView
	for _, sub := range subs {
		oldest, err := s.oldestPending(ctx, sub)
		if err != nil {
			return nil, err
		}
		out = append(out, storage.SubscriptionView{Subscription: sub, OldestPending: oldest})
	}
	return out, nil
}

// DeleteSubscription implements [storage.Sources]: the subscription and its place in the
// source go in one commit; its queue is deleted after, in chunks, unreachable already.
func (s *Store) DeleteSubscription(ctx context.Context, id string) (storage.Subscription, int, error) {
	var sub storage.Subscription
	var remaining int
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		var err error
		if sub, err = getSub(ctx, t, id); err != nil {
			return err
		}
		rec, err := getSource(ctx, t, sub.SourceID)
		if err == nil {
			rec.Subs = slices.DeleteFunc(rec.Subs, func(x string) bool { return x == id })
			remaining = len(rec.Subs)
			if err := t.putJSON(srcKey(sub.SourceID), rec); err != nil {
				return err
			}
		} else if remaining = 0; !isNotFound(err) {
			return err
		}
		if e, err := t.get(ctx, secKey("sub", id)); err != nil {
			return err
		} else if e.exists {
			t.del(secKey("sub", id))
		}
		t.del(subKey(id))
		return nil
	})
	if err != nil {
		return storage.Subscription{}, 0, err
	}
	keys, err := s.listKeys(ctx, s.trig, "q."+enc(id)+".>")
	if err == nil {
		err = s.deleteAll(ctx, keys)
	}
	return sub, remaining, err
}

// UpdateSubscription implements [storage.Sources]; fn may run again on a conflict.
func (s *Store) UpdateSubscription(ctx context.Context, id string, fn func(*storage.Subscription)) (storage.Subscription, error) {
	var out storage.Subscription
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		sub, err := getSub(ctx, t, id)
		if err != nil {
			return err
		}
		fn(&sub)
		out = sub
		return t.putJSON(subKey(id), sub)
	})
	return out, err
}

// CommitEvents implements [storage.Events]: the new events, their ledger entries, every
// subscriber's queue entries, the subscriptions' counters and the source (its cursor, by
// update) are one atomic batch, checked against the source record, so a crash keeps all or
// none, and two nodes committing on one source never hand out the same seq.
func (s *Store) CommitEvents(ctx context.Context, sourceID string, events []storage.NewEvent, origin storage.Origin, lim storage.TriggerLimits, update func(*storage.Source)) (storage.CommitResult, error) {
	var res storage.CommitResult
	now := s.nowUTC()
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		res = storage.CommitResult{}
		rec, err := getSource(ctx, t, sourceID)
		if err != nil {
			return err
		}
		src := &rec.Source
		var subs []*storage.Subscription
		for _, id := range rec.Subs {
			var sub storage.Subscription
			found, err := t.getJSON(ctx, subKey(id), &sub)
			if err != nil {
				return err
			}
			if found {
				subs = append(subs, &sub)
			}
		}
		notified := map[string]bool{}
		seen := map[string]bool{}
		for _, e := range events {
			if seen[e.SourceEventID] {
				continue
			}
			seen[e.SourceEventID] = true
			ik := eidKey(sourceID, e.SourceEventID)
			dup, err := t.get(ctx, ik)
			if err != nil {
				return err
			}
			if dup.exists {
				continue
			}
			seq := src.NextSeq
			src.NextSeq++
			src.Events++
			tm := e.Time
			if tm.IsZero() {
				tm = now
			}
			ev := storage.StoredEvent{Seq: seq, SourceEventID: e.SourceEventID, Type: e.Type, Time: tm.UTC(), Received: now, Data: e.Data,
				CorrelationID: origin.CorrelationID, Traceparent: origin.Traceparent}
			if err := t.putJSON(evKey(sourceID, seq), ev); err != nil {
				return err
			}
			t.put(ik, []byte(strconv.FormatUint(seq, 10)))
			res.New++
			src.LastEventAt = now
			for _, sub := range subs {
				if sub.Status == storage.SubDisabled {
					continue
				}
				sub.Events++
				if lim.MaxQueue > 0 && sub.Pending >= int64(lim.MaxQueue) {
					sub.Dropped++
					sub.Status = storage.SubOverflow
					sub.StatusReason = fmt.Sprintf("the queue holds %d undelivered events, its bound; later events are dropped for this subscription and stay replayable from the source log", lim.MaxQueue)
					continue
				}
				if err := t.putJSON(qKey(sub.ID, seq), storage.QueueEntry{Seq: seq}); err != nil {
					return err
				}
				sub.Pending++
				notified[sub.ID] = true
			}
		}
		for _, sub := range subs {
			if err := t.putJSON(subKey(sub.ID), sub); err != nil {
				return err
			}
		}
		if update != nil {
			update(src)
		}
		if lim.MaxEvents > 0 && src.Events > lim.MaxEvents {
			if err := s.pruneEvents(ctx, t, &rec, subs, lim.MaxEvents); err != nil {
				return err
			}
		}
		for id := range notified {
			res.Notify = append(res.Notify, id)
		}
		sort.Strings(res.Notify)
		return t.putJSON(srcKey(sourceID), rec)
	})
	return res, err
}

// pruneEvents deletes the oldest events beyond max that no queue of subs still holds: from
// the oldest up, it stops at the first event some queue holds (this commit's own entries
// included), which is bbolt's "below the lowest pending seq" without listing the queues.
func (s *Store) pruneEvents(ctx context.Context, t *txn, rec *srcRecord, subs []*storage.Subscription, max int) error {
	src := &rec.Source
	for rec.First < src.NextSeq && src.Events > max {
		for _, sub := range subs {
			q, err := t.get(ctx, qKey(sub.ID, rec.First))
			if err != nil {
				return err
			}
			if q.exists {
				return nil
			}
		}
		var ev storage.StoredEvent
		found, err := t.getJSON(ctx, evKey(src.ID, rec.First), &ev)
		if err != nil {
			return err
		}
		if found {
			t.del(evKey(src.ID, rec.First))
			t.del(eidKey(src.ID, ev.SourceEventID))
			src.Events--
		}
		rec.First++
	}
	return nil
}

// QueueHead implements [storage.Events]: a zero subscription when it was deleted.
func (s *Store) QueueHead(ctx context.Context, subID string, max int) (storage.Subscription, []storage.Pending, error) {
	var sub storage.Subscription
	found, err := s.getJSON(ctx, s.trig, subKey(subID), &sub)
	if err != nil || !found || subID == "" {
		return storage.Subscription{}, nil, err
	}
	keys, err := s.listKeys(ctx, s.trig, "q."+enc(subID)+".>")
	if err != nil {
		return storage.Subscription{}, nil, err
	}
	var out []storage.Pending
	for _, k := range keys {
		if len(out) >= max {
			break
		}
		var p storage.Pending
		found, err := s.getJSON(ctx, s.trig, k, &p.Entry)
		if err != nil {
			return storage.Subscription{}, nil, err
		}
		if !found {
			continue // acknowledged meanwhile
		}
		if found, err = s.getJSON(ctx, s.trig, evKey(sub.SourceID, p.Entry.Seq), &p.Event); err != nil {
			return storage.Subscription{}, nil, err
		}
		if found {
			out = append(out, p)
		}
	}
	return sub, out, nil
}

// queue returns the subscription's queue entries in a transaction, by seq.
func queue(ctx context.Context, t *txn, subID string) ([]entry, error) {
	es, err := t.scan(ctx, "q."+enc(subID)+".>")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(seqOf(a.key), seqOf(b.key)) })
	return es, nil
}

// RecordPush implements [storage.Events].
func (s *Store) RecordPush(ctx context.Context, subID string, outcomes ...storage.PushOutcome) error {
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		sub, err := getSub(ctx, t, subID)
		if isNotFound(err) {
			return nil // deleted meanwhile: nothing to record
		}
		if err != nil {
			return err
		}
		for _, o := range outcomes {
			qk := qKey(subID, o.Seq)
			var e storage.QueueEntry
			found, err := t.getJSON(ctx, qk, &e)
			if err != nil {
				return err
			}
			sub.Push.Attempts++
			sub.Push.LastStatus = o.Status
			sub.Push.LastAttemptAt = o.At
			sub.Push.LastError = o.Err
			sub.Push.LastErrorCode = o.Code
			sub.Push.NextAttemptAt = time.Time{}
			switch {
			case !found:
			case o.Delivered || o.GiveUp:
				t.del(qk)
				sub.Pending--
				if o.Delivered {
					sub.Delivered++
				} else {
					sub.Failed++
				}
				if sub.Status == storage.SubOverflow {
					sub.Status, sub.StatusReason = storage.SubActive, ""
				}
			default:
				e.Attempts++
				e.NextAt = o.NextAt
				sub.Push.NextAttemptAt = o.NextAt
				if err := t.putJSON(qk, e); err != nil {
					return err
				}
			}
			if o.Disable {
				sub.Status = storage.SubDisabled
				sub.StatusReason = fmt.Sprintf("the receiver answered 410 Gone at %s; deliveries stopped (delete the subscription and create a new one)", o.At.Format(time.RFC3339))
			}
		}
		return t.putJSON(subKey(subID), sub)
	})
	return err
}

// LeaseEvents implements [storage.Events]: each leased entry is rewritten checked by its
// revision, so two nodes leasing at once never get the same event.
func (s *Store) LeaseEvents(ctx context.Context, subID string, max int, leaseFor time.Duration) ([]storage.Pending, time.Time, error) {
	var out []storage.Pending
	var next time.Time
	now := s.nowUTC()
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		out, next = nil, time.Time{}
		sub, err := getSub(ctx, t, subID)
		if err != nil {
			return err
		}
		es, err := queue(ctx, t, subID)
		if err != nil {
			return err
		}
		for _, qe := range es {
			if len(out) >= max {
				break
			}
			var e storage.QueueEntry
			if err := json.Unmarshal(qe.val, &e); err != nil {
				return s.corruptErr("queue entry "+qe.key, err)
			}
			if e.LeaseUntil.After(now) {
				if next.IsZero() || e.LeaseUntil.Before(next) {
					next = e.LeaseUntil
				}
				continue
			}
			var ev storage.StoredEvent
			found, err := t.getJSON(ctx, evKey(sub.SourceID, e.Seq), &ev)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			e.Attempts++
			e.LeaseUntil = now.Add(leaseFor)
			if err := t.putJSON(qe.key, e); err != nil {
				return err
			}
			out = append(out, storage.Pending{Entry: e, Event: ev})
		}
		return nil
	})
	return out, next, err
}

// Ack implements [storage.Events].
func (s *Store) Ack(ctx context.Context, subID string, seqs []uint64) (int, error) {
	n := 0
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		n = 0
		sub, err := getSub(ctx, t, subID)
		if err != nil {
			return err
		}
		for _, seq := range seqs {
			k := qKey(subID, seq)
			e, err := t.get(ctx, k)
			if err != nil {
				return err
			}
			if !e.exists {
				continue
			}
			t.del(k)
			n++
		}
		if n == 0 {
			return nil
		}
		sub.Pending -= int64(n)
		sub.Delivered += int64(n)
		if sub.Status == storage.SubOverflow {
			sub.Status, sub.StatusReason = storage.SubActive, ""
		}
		return t.putJSON(subKey(subID), sub)
	})
	return n, err
}

// Replay implements [storage.Events]; it rewrites the source record too, so no commit prunes
// an event it enqueues.
func (s *Store) Replay(ctx context.Context, subID string, since time.Time, maxQueue int) (int, error) {
	n := 0
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		n = 0
		sub, err := getSub(ctx, t, subID)
		if err != nil {
			return err
		}
		rec, err := getSource(ctx, t, sub.SourceID)
		if err != nil {
			return err
		}
		pending := map[uint64]bool{}
		qs, err := queue(ctx, t, subID)
		if err != nil {
			return err
		}
		for _, q := range qs {
			pending[seqOf(q.key)] = true
		}
		evs, err := t.scan(ctx, "ev."+enc(sub.SourceID)+".>")
		if err != nil {
			return err
		}
		slices.SortFunc(evs, func(a, b entry) int { return cmp.Compare(seqOf(a.key), seqOf(b.key)) })
		for _, e := range evs {
			var ev storage.StoredEvent
			if err := json.Unmarshal(e.val, &ev); err != nil {
				return s.corruptErr("event "+e.key, err)
			}
			if ev.Received.Before(since) || ev.Received.Before(sub.CreatedAt) || pending[ev.Seq] {
				continue
			}
			if maxQueue > 0 && sub.Pending >= int64(maxQueue) {
				break
			}
			if _, err := t.get(ctx, qKey(subID, ev.Seq)); err != nil {
				return err
			}
			if err := t.putJSON(qKey(subID, ev.Seq), storage.QueueEntry{Seq: ev.Seq}); err != nil {
				return err
			}
			sub.Pending++
			n++
		}
		if n == 0 {
			t.writes, t.widx = nil, map[string]int{}
			return nil
		}
		if err := t.putJSON(subKey(subID), sub); err != nil {
			return err
		}
		return t.putJSON(srcKey(sub.SourceID), rec)
	})
	return n, err
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
