package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Trigger state (API.md "Subscriptions", DESIGN.md "Nothing acknowledged is lost").
//
// A source is one (connector, trigger, connection, params): one poller or one upstream webhook
// registration. Its events are stored once, in sequence order, with an index of their ids (the
// deduplication ledger). Each subscription of the source has a queue of pending deliveries that
// point at the source's events by sequence number; the delivered event id is derived from
// (subscription, sequence), so it is the same across retries, restarts and replays.
var (
	bucketSources     = []byte("trig_sources")     // source id -> Source
	bucketSourceKeys  = []byte("trig_source_keys") // source key -> source id
	bucketHookTokens  = []byte("trig_hooks")       // hook token -> source id
	bucketSubs        = []byte("trig_subs")        // subscription id -> Subscription
	bucketSourceSubs  = []byte("trig_source_subs") // LP(source id) + subscription id -> nil
	bucketEvents      = []byte("trig_events")      // LP(source id) + seq -> StoredEvent
	bucketEventIDs    = []byte("trig_event_ids")   // LP(source id) + event id -> seq
	bucketQueue       = []byte("trig_queue")       // LP(subscription id) + seq -> QueueEntry
	bucketTrigSecrets = []byte("trig_secrets")     // "src:" or "sub:" + id -> sealed secret
)

func seqKey(prefix []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(prefix), seq)
}

func secretKey(kind, id string) []byte { return []byte(kind + ":" + id) }

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	data := b.Get(k)
	if data == nil {
		return false, nil
	}
	return true, json.Unmarshal(data, v)
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// sealTrigger seals a trigger secret bound to its key.
func (s *Store) putTriggerSecret(tx *bolt.Tx, kind, id string, secret []byte) error {
	if secret == nil {
		return nil
	}
	k := secretKey(kind, id)
	sealed, err := s.sealerNow().Seal(secret, k)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketTrigSecrets).Put(k, sealed)
}

// TriggerSecret opens the secret of a source ("src") or a subscription ("sub").
func (s *Store) TriggerSecret(ctx context.Context, kind, id string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		k := secretKey(kind, id)
		sealed := tx.Bucket(bucketTrigSecrets).Get(k)
		if sealed == nil {
			return fmt.Errorf("store: secret of %s %s: %w", kind, id, ErrNotFound)
		}
		var err error
		out, err = s.sealerNow().Open(sealed, k)
		return err
	})
	return out, err
}

// resealTriggerSecrets re-seals every trigger secret with sealer's active key (master-key
// rotation); it returns how many it re-sealed.
func resealTriggerSecrets(tx *bolt.Tx, sealer *Sealer) (int, error) {
	b := tx.Bucket(bucketTrigSecrets)
	if b == nil {
		return 0, nil
	}
	type put struct{ k, v []byte }
	var puts []put
	err := b.ForEach(func(k, v []byte) error {
		env, err := decodeEnvelope(v)
		if err != nil {
			return err
		}
		if env.KID == sealer.ActiveKeyID() {
			return nil
		}
		plain, err := sealer.Open(v, k)
		if err != nil {
			return err
		}
		sealed, err := sealer.Seal(plain, k)
		if err != nil {
			return err
		}
		puts = append(puts, put{bytes.Clone(k), sealed})
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, p := range puts {
		if err := b.Put(p.k, p.v); err != nil {
			return 0, err
		}
	}
	return len(puts), nil
}

// FindSource returns the source with key, if any.
func (s *Store) FindSource(ctx context.Context, key string) (Source, bool, error) {
	var src Source
	var found bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketSourceKeys).Get([]byte(key))
		if id == nil {
			return nil
		}
		var err error
		found, err = getJSON(tx.Bucket(bucketSources), id, &src)
		return err
	})
	return src, found, err
}

// GetSource returns one source; [ErrNotFound] when there is none.
func (s *Store) GetSource(ctx context.Context, id string) (Source, error) {
	var src Source
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return getRecord(tx, bucketSources, "source", id, &src)
	})
	return src, err
}

// Sources returns every source, by id.
func (s *Store) Sources(ctx context.Context) ([]Source, error) {
	var out []Source
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSources).ForEach(func(k, v []byte) error {
			var src Source
			if err := json.Unmarshal(v, &src); err != nil {
				return fmt.Errorf("store: source %s: %w", k, err)
			}
			out = append(out, src)
			return nil
		})
	})
	return out, err
}

// CreateSource stores a new source (and its secret, sealed); [ErrExists] when a source with the
// same key exists. With sub non-nil the first subscription is created in the same transaction.
func (s *Store) CreateSource(ctx context.Context, src Source, secret []byte, sub *Subscription, subSecret []byte) error {
	if err := checkID("source id", src.ID); err != nil {
		return err
	}
	if src.CreatedAt.IsZero() {
		src.CreatedAt = s.nowUTC()
	}
	if src.NextSeq == 0 {
		src.NextSeq = 1
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketSourceKeys)
		if keys.Get([]byte(src.Key)) != nil {
			return fmt.Errorf("store: source for %s.%s: %w", src.Connector, src.Trigger, ErrExists)
		}
		if err := keys.Put([]byte(src.Key), []byte(src.ID)); err != nil {
			return err
		}
		if src.HookToken != "" {
			if err := tx.Bucket(bucketHookTokens).Put([]byte(src.HookToken), []byte(src.ID)); err != nil {
				return err
			}
		}
		if err := s.putTriggerSecret(tx, "src", src.ID, secret); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketSources), []byte(src.ID), src); err != nil {
			return err
		}
		if sub != nil {
			return s.putNewSub(tx, *sub, subSecret)
		}
		return nil
	})
}

func (s *Store) putNewSub(tx *bolt.Tx, sub Subscription, secret []byte) error {
	if err := checkID("subscription id", sub.ID); err != nil {
		return err
	}
	if sub.CreatedAt.IsZero() {
		sub.CreatedAt = s.nowUTC()
	}
	if sub.Status == "" {
		sub.Status = SubActive
	}
	subs := tx.Bucket(bucketSubs)
	if subs.Get([]byte(sub.ID)) != nil {
		return fmt.Errorf("store: subscription %s: %w", sub.ID, ErrExists)
	}
	if err := s.putTriggerSecret(tx, "sub", sub.ID, secret); err != nil {
		return err
	}
	if err := tx.Bucket(bucketSourceSubs).Put(append(appendLP(nil, sub.SourceID), sub.ID...), nil); err != nil {
		return err
	}
	return putJSON(subs, []byte(sub.ID), sub)
}

// AddSubscription adds a subscription to its existing source; update, when non-nil, changes the
// source in the same transaction (a webhook source becoming active). [ErrNotFound] when the
// source is gone.
func (s *Store) AddSubscription(ctx context.Context, sub Subscription, secret []byte, update func(*Source)) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		var src Source
		if err := getRecord(tx, bucketSources, "source", sub.SourceID, &src); err != nil {
			return err
		}
		if update != nil {
			update(&src)
			if err := putJSON(tx.Bucket(bucketSources), []byte(src.ID), src); err != nil {
				return err
			}
		}
		return s.putNewSub(tx, sub, secret)
	})
}

// UpdateSource changes a source in one transaction; [ErrNotFound] when it is gone.
func (s *Store) UpdateSource(ctx context.Context, id string, fn func(*Source)) (Source, error) {
	var src Source
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if err := getRecord(tx, bucketSources, "source", id, &src); err != nil {
			return err
		}
		fn(&src)
		return putJSON(tx.Bucket(bucketSources), []byte(id), src)
	})
	return src, err
}

// DeleteSource deletes a source, its log, ledger, hook token and secret. A source that still has
// subscriptions is not deleted ([ErrExists]).
func (s *Store) DeleteSource(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		var src Source
		found, err := getJSON(tx.Bucket(bucketSources), []byte(id), &src)
		if err != nil || !found {
			return err
		}
		prefix := appendLP(nil, id)
		if countPrefix(tx.Bucket(bucketSourceSubs), prefix, 1) > 0 {
			return fmt.Errorf("store: source %s still has subscriptions: %w", id, ErrExists)
		}
		for _, b := range [][]byte{bucketEvents, bucketEventIDs} {
			if err := deletePrefix(tx.Bucket(b), prefix); err != nil {
				return err
			}
		}
		if src.HookToken != "" {
			if err := tx.Bucket(bucketHookTokens).Delete([]byte(src.HookToken)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketSourceKeys).Delete([]byte(src.Key)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTrigSecrets).Delete(secretKey("src", id)); err != nil {
			return err
		}
		return tx.Bucket(bucketSources).Delete([]byte(id))
	})
}

func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// SourceByHookToken returns the source a /hooks/{token} URL names.
func (s *Store) SourceByHookToken(ctx context.Context, token string) (Source, error) {
	var src Source
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketHookTokens).Get([]byte(token))
		found := false
		var err error
		if id != nil {
			found, err = getJSON(tx.Bucket(bucketSources), id, &src)
		}
		if err == nil && !found {
			err = fmt.Errorf("store: hook token: %w", ErrNotFound)
		}
		return err
	})
	return src, err
}

// GetSubscription returns one subscription and the receive time of its oldest pending event
// (zero when none is pending); [ErrNotFound] when there is none.
func (s *Store) GetSubscription(ctx context.Context, id string) (Subscription, time.Time, error) {
	var sub Subscription
	var oldest time.Time
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if err := getRecord(tx, bucketSubs, "subscription", id, &sub); err != nil {
			return err
		}
		oldest = oldestPending(tx, sub)
		return nil
	})
	return sub, oldest, err
}

func oldestPending(tx *bolt.Tx, sub Subscription) time.Time {
	prefix := appendLP(nil, sub.ID)
	k, _ := tx.Bucket(bucketQueue).Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return time.Time{}
	}
	var ev StoredEvent
	if found, _ := getJSON(tx.Bucket(bucketEvents), seqKey(appendLP(nil, sub.SourceID), binary.BigEndian.Uint64(k[len(prefix):])), &ev); found {
		return ev.Received
	}
	return time.Time{}
}

// Subscriptions returns every subscription, by id; with source != "" only that source's.
func (s *Store) Subscriptions(ctx context.Context, source string) ([]SubscriptionView, error) {
	var out []SubscriptionView
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if source != "" { // through the source's index, not a scan of every subscription
			subs, err := s.sourceSubs(tx, source)
			for _, sub := range subs {
				out = append(out, SubscriptionView{Subscription: *sub, OldestPending: oldestPending(tx, *sub)})
			}
			return err
		}
		return tx.Bucket(bucketSubs).ForEach(func(k, v []byte) error {
			var sub Subscription
			if err := json.Unmarshal(v, &sub); err != nil {
				return fmt.Errorf("store: subscription %s: %w", k, err)
			}
			out = append(out, SubscriptionView{Subscription: sub, OldestPending: oldestPending(tx, sub)})
			return nil
		})
	})
	return out, err
}

// DeleteSubscription deletes a subscription, its queue and secret, and returns its source and
// how many subscriptions the source still has.
func (s *Store) DeleteSubscription(ctx context.Context, id string) (Subscription, int, error) {
	var sub Subscription
	var remaining int
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if err := getRecord(tx, bucketSubs, "subscription", id, &sub); err != nil {
			return err
		}
		if err := deletePrefix(tx.Bucket(bucketQueue), appendLP(nil, id)); err != nil {
			return err
		}
		ss := tx.Bucket(bucketSourceSubs)
		if err := ss.Delete(append(appendLP(nil, sub.SourceID), id...)); err != nil {
			return err
		}
		remaining = countPrefix(ss, appendLP(nil, sub.SourceID), 1<<30)
		if err := tx.Bucket(bucketTrigSecrets).Delete(secretKey("sub", id)); err != nil {
			return err
		}
		return tx.Bucket(bucketSubs).Delete([]byte(id))
	})
	return sub, remaining, err
}

// UpdateSubscription changes a subscription in one transaction.
func (s *Store) UpdateSubscription(ctx context.Context, id string, fn func(*Subscription)) (Subscription, error) {
	var sub Subscription
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if err := getRecord(tx, bucketSubs, "subscription", id, &sub); err != nil {
			return err
		}
		fn(&sub)
		return putJSON(tx.Bucket(bucketSubs), []byte(id), sub)
	})
	return sub, err
}

// CommitEvents appends the events the source has not seen yet to its log, enqueues each for
// every subscription that is not disabled, and applies update to the source: all in one
// transaction, so a poll's cursor and its events are committed together or not at all.
func (s *Store) CommitEvents(ctx context.Context, sourceID string, events []NewEvent, origin Origin, lim TriggerLimits, update func(*Source)) (CommitResult, error) {
	var res CommitResult
	now := s.nowUTC()
	err := s.update(ctx, func(tx *bolt.Tx) error {
		res = CommitResult{}
		srcs := tx.Bucket(bucketSources)
		var src Source
		if err := getRecord(tx, bucketSources, "source", sourceID, &src); err != nil {
			return err
		}
		prefix := appendLP(nil, sourceID)
		subs, err := s.sourceSubs(tx, sourceID)
		if err != nil {
			return err
		}
		evb, ids, queue := tx.Bucket(bucketEvents), tx.Bucket(bucketEventIDs), tx.Bucket(bucketQueue)
		notified := map[string]bool{}
		seen := map[string]bool{}
		for _, e := range events {
			idKey := append(bytes.Clone(prefix), e.SourceEventID...)
			if seen[e.SourceEventID] || ids.Get(idKey) != nil {
				continue
			}
			seen[e.SourceEventID] = true
			seq := src.NextSeq
			src.NextSeq++
			src.Events++
			t := e.Time
			if t.IsZero() {
				t = now
			}
			ev := StoredEvent{Seq: seq, SourceEventID: e.SourceEventID, Type: e.Type, Time: t.UTC(), Received: now, Data: e.Data,
				CorrelationID: origin.CorrelationID, Traceparent: origin.Traceparent}
			if err := putJSON(evb, seqKey(prefix, seq), ev); err != nil {
				return err
			}
			if err := ids.Put(idKey, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
				return err
			}
			res.New++
			src.LastEventAt = now
			for _, sub := range subs {
				if sub.Status == SubDisabled {
					continue
				}
				sub.Events++
				if lim.MaxQueue > 0 && sub.Pending >= int64(lim.MaxQueue) {
					sub.Dropped++
					sub.Status = SubOverflow
					sub.StatusReason = fmt.Sprintf("the queue holds %d undelivered events, its bound; later events are dropped for this subscription and stay replayable from the source log", lim.MaxQueue)
					continue
				}
				if err := putJSON(queue, seqKey(appendLP(nil, sub.ID), seq), QueueEntry{Seq: seq}); err != nil {
					return err
				}
				sub.Pending++
				notified[sub.ID] = true
			}
		}
		for _, sub := range subs {
			if err := putJSON(tx.Bucket(bucketSubs), []byte(sub.ID), sub); err != nil {
				return err
			}
		}
		if update != nil {
			update(&src)
		}
		if lim.MaxEvents > 0 && src.Events > lim.MaxEvents {
			if err := pruneEvents(tx, &src, subs, lim.MaxEvents); err != nil {
				return err
			}
		}
		for id := range notified {
			res.Notify = append(res.Notify, id)
		}
		sort.Strings(res.Notify)
		return putJSON(srcs, []byte(sourceID), src)
	})
	return res, err
}

// sourceSubs returns the subscriptions of a source, as pointers for in-place counting.
func (s *Store) sourceSubs(tx *bolt.Tx, sourceID string) ([]*Subscription, error) {
	prefix := appendLP(nil, sourceID)
	var out []*Subscription
	c := tx.Bucket(bucketSourceSubs).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		var sub Subscription
		found, err := getJSON(tx.Bucket(bucketSubs), k[len(prefix):], &sub)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, &sub)
		}
	}
	return out, nil
}

// pruneEvents deletes the oldest events beyond max that no queue of subs still holds.
func pruneEvents(tx *bolt.Tx, src *Source, subs []*Subscription, max int) error {
	prefix := appendLP(nil, src.ID)
	minPending := uint64(1<<63 - 1)
	q := tx.Bucket(bucketQueue)
	for _, sub := range subs {
		sp := appendLP(nil, sub.ID)
		if k, _ := q.Cursor().Seek(sp); k != nil && bytes.HasPrefix(k, sp) {
			minPending = min(minPending, binary.BigEndian.Uint64(k[len(sp):]))
		}
	}
	evb, ids := tx.Bucket(bucketEvents), tx.Bucket(bucketEventIDs)
	c := evb.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && src.Events > max; k, v = c.Seek(prefix) {
		if binary.BigEndian.Uint64(k[len(prefix):]) >= minPending {
			break
		}
		var ev StoredEvent
		if err := json.Unmarshal(v, &ev); err != nil {
			return err
		}
		if err := ids.Delete(append(bytes.Clone(prefix), ev.SourceEventID...)); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
		src.Events--
	}
	return nil
}

// event reads one event of a source inside tx.
func event(tx *bolt.Tx, sourceID string, seq uint64) (StoredEvent, bool, error) {
	var ev StoredEvent
	found, err := getJSON(tx.Bucket(bucketEvents), seqKey(appendLP(nil, sourceID), seq), &ev)
	return ev, found, err
}

// QueueHead returns up to max pending deliveries of a subscription from the head of its queue,
// in order (push delivery is ordered), with the subscription. An empty subscription id in the
// result means it was deleted.
func (s *Store) QueueHead(ctx context.Context, subID string, max int) (Subscription, []Pending, error) {
	var sub Subscription
	var out []Pending
	err := s.view(ctx, func(tx *bolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketSubs), []byte(subID), &sub)
		if err != nil || !found {
			return err
		}
		prefix := appendLP(nil, subID)
		c := tx.Bucket(bucketQueue).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < max; k, v = c.Next() {
			var p Pending
			if err := json.Unmarshal(v, &p.Entry); err != nil {
				return err
			}
			ev, found, err := event(tx, sub.SourceID, p.Entry.Seq)
			if err != nil {
				return err
			}
			if !found {
				continue // cannot happen: pruning keeps pending events
			}
			p.Event = ev
			out = append(out, p)
		}
		return nil
	})
	return sub, out, err
}

// RecordPush records push attempts, in the order they were made, in one transaction:
// success or give-up removes an entry, a failure schedules its next attempt, 410 disables the
// subscription. A crash before it commits repeats those deliveries (at least once).
func (s *Store) RecordPush(ctx context.Context, subID string, outcomes ...PushOutcome) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		var sub Subscription
		found, err := getJSON(tx.Bucket(bucketSubs), []byte(subID), &sub)
		if err != nil || !found {
			return err // deleted meanwhile: nothing to record
		}
		q := tx.Bucket(bucketQueue)
		for _, o := range outcomes {
			qk := seqKey(appendLP(nil, subID), o.Seq)
			var e QueueEntry
			found, err = getJSON(q, qk, &e)
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
				if err := q.Delete(qk); err != nil {
					return err
				}
				sub.Pending--
				if o.Delivered {
					sub.Delivered++
				} else {
					sub.Failed++
				}
				if sub.Status == SubOverflow {
					sub.Status, sub.StatusReason = SubActive, ""
				}
			default:
				e.Attempts++
				e.NextAt = o.NextAt
				sub.Push.NextAttemptAt = o.NextAt
				if err := putJSON(q, qk, e); err != nil {
					return err
				}
			}
			if o.Disable {
				sub.Status = SubDisabled
				sub.StatusReason = fmt.Sprintf("the receiver answered 410 Gone at %s; deliveries stopped (delete the subscription and create a new one)", o.At.Format(time.RFC3339))
			}
		}
		return putJSON(tx.Bucket(bucketSubs), []byte(subID), sub)
	})
}

// LeaseEvents leases up to max ready events of a queue subscription (in order) until
// now+leaseFor. It also returns when the next leased event becomes ready again (zero: none).
func (s *Store) LeaseEvents(ctx context.Context, subID string, max int, leaseFor time.Duration) ([]Pending, time.Time, error) {
	var out []Pending
	var next time.Time
	now := s.nowUTC()
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out, next = nil, time.Time{}
		var sub Subscription
		if err := getRecord(tx, bucketSubs, "subscription", subID, &sub); err != nil {
			return err
		}
		prefix := appendLP(nil, subID)
		q := tx.Bucket(bucketQueue)
		type put struct {
			k []byte
			e QueueEntry
		}
		var puts []put
		c := q.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < max; k, v = c.Next() {
			var e QueueEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if e.LeaseUntil.After(now) {
				if next.IsZero() || e.LeaseUntil.Before(next) {
					next = e.LeaseUntil
				}
				continue
			}
			ev, found, err := event(tx, sub.SourceID, e.Seq)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			e.Attempts++
			e.LeaseUntil = now.Add(leaseFor)
			puts = append(puts, put{bytes.Clone(k), e})
			out = append(out, Pending{Entry: e, Event: ev})
		}
		if len(puts) == 0 {
			return errUnchanged
		}
		for _, p := range puts {
			if err := putJSON(q, p.k, p.e); err != nil {
				return err
			}
		}
		return nil
	})
	return out, next, err
}

// Ack removes the acknowledged entries of a queue subscription and returns how many were
// pending (ids already acked or unknown count nothing).
func (s *Store) Ack(ctx context.Context, subID string, seqs []uint64) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		var sub Subscription
		if err := getRecord(tx, bucketSubs, "subscription", subID, &sub); err != nil {
			return err
		}
		q := tx.Bucket(bucketQueue)
		for _, seq := range seqs {
			k := seqKey(appendLP(nil, subID), seq)
			if q.Get(k) == nil {
				continue
			}
			if err := q.Delete(k); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return errUnchanged
		}
		sub.Pending -= int64(n)
		sub.Delivered += int64(n)
		if sub.Status == SubOverflow {
			sub.Status, sub.StatusReason = SubActive, ""
		}
		return putJSON(tx.Bucket(bucketSubs), []byte(subID), sub)
	})
	return n, err
}

// Replay enqueues again every event of the subscription's source received at or after since
// that is not pending, up to the queue bound; it returns how many it enqueued.
func (s *Store) Replay(ctx context.Context, subID string, since time.Time, maxQueue int) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		var sub Subscription
		if err := getRecord(tx, bucketSubs, "subscription", subID, &sub); err != nil {
			return err
		}
		prefix := appendLP(nil, sub.SourceID)
		qp := appendLP(nil, subID)
		q := tx.Bucket(bucketQueue)
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var ev StoredEvent
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if ev.Received.Before(since) || ev.Received.Before(sub.CreatedAt) {
				continue
			}
			qk := seqKey(qp, ev.Seq)
			if q.Get(qk) != nil {
				continue
			}
			if maxQueue > 0 && sub.Pending >= int64(maxQueue) {
				break
			}
			if err := putJSON(q, qk, QueueEntry{Seq: ev.Seq}); err != nil {
				return err
			}
			sub.Pending++
			n++
		}
		if n == 0 {
			return errUnchanged
		}
		return putJSON(tx.Bucket(bucketSubs), []byte(subID), sub)
	})
	return n, err
}
