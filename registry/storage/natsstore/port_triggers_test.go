package natsstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func newSourceWithSubs(t *testing.T, s *Store, subs ...Subscription) Source {
	t.Helper()
	ctx := context.Background()
	src := Source{ID: "src_1", Key: "k1", Kind: SourcePoll, Status: SourceActive, TriggerRef: TriggerRef{Connector: "c", Trigger: "tr", Params: json.RawMessage(`{}`)}}
	first := subs[0]
	first.SourceID = src.ID
	if err := s.CreateSource(ctx, src, []byte("source-secret"), &first, []byte("whsec_first")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range subs[1:] {
		sub.SourceID = src.ID
		if err := s.AddSubscription(ctx, sub, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func evs(ids ...string) []NewEvent {
	out := make([]NewEvent, len(ids))
	for i, id := range ids {
		out[i] = NewEvent{SourceEventID: id, Data: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id))}
	}
	return out
}

// Events are deduplicated by id per source, fanned out to every subscription that is not
// disabled, and committed with the cursor in one transaction.
func TestCommitEventsDedupFanOutAndCursor(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	src := newSourceWithSubs(t, s, Subscription{ID: "sub_a"}, Subscription{ID: "sub_b"}, Subscription{ID: "sub_off", Status: SubDisabled})
	cursor := "c1"
	res, err := s.CommitEvents(ctx, src.ID, evs("1", "2", "2"), Origin{CorrelationID: "corr"}, TriggerLimits{}, func(s *Source) { s.Cursor = &cursor })
	if err != nil || res.New != 2 || len(res.Notify) != 2 {
		t.Fatalf("commit = %+v, %v; want 2 new events for 2 subscriptions", res, err)
	}
	res, err = s.CommitEvents(ctx, src.ID, evs("2", "3"), Origin{CorrelationID: "corr"}, TriggerLimits{}, nil)
	if err != nil || res.New != 1 {
		t.Fatalf("second commit = %+v, %v; want only event 3 new", res, err)
	}
	got, _ := s.GetSource(ctx, src.ID)
	if got.Cursor == nil || *got.Cursor != "c1" || got.NextSeq != 4 || got.Events != 3 {
		t.Fatalf("source = %+v", got)
	}
	for _, id := range []string{"sub_a", "sub_b"} {
		sub, pend, err := s.QueueHead(ctx, id, 10)
		if err != nil || sub.Pending != 3 || len(pend) != 3 || pend[0].Event.SourceEventID != "1" || pend[2].Event.SourceEventID != "3" {
			t.Fatalf("%s: pending %d, queue %+v, %v", id, sub.Pending, pend, err)
		}
	}
	if sub, pend, _ := s.QueueHead(ctx, "sub_off", 10); len(pend) != 0 || sub.Events != 0 {
		t.Fatalf("a disabled subscription got events: %+v", pend)
	}
	// A failing update (the source is gone) commits nothing.
	if _, err := s.CommitEvents(ctx, "src_missing", evs("9"), Origin{}, TriggerLimits{}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("commit to a missing source: %v", err)
	}
}

// The queue bound drops (and counts) events for a full subscription only; acks make room and
// clear the overflow status; pruning keeps every pending event and bounds the ledger.
func TestQueueBoundAckAndPrune(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	src := newSourceWithSubs(t, s, Subscription{ID: "sub_q", Delivery: Delivery{Type: "queue"}})
	lim := TriggerLimits{MaxQueue: 3, MaxEvents: 4}
	if _, err := s.CommitEvents(ctx, src.ID, evs("1", "2", "3", "4", "5"), Origin{}, lim, nil); err != nil {
		t.Fatal(err)
	}
	sub, _, _ := s.GetSubscription(ctx, "sub_q")
	if sub.Pending != 3 || sub.Dropped != 2 || sub.Status != SubOverflow || sub.Events != 5 {
		t.Fatalf("subscription = %+v", sub)
	}
	got, _ := s.GetSource(ctx, src.ID)
	if got.Events != 5 { // bound 4, but the oldest event is pending: pruning never drops it
		t.Fatalf("source log holds %d events, want all 5 while event 1 is pending", got.Events)
	}
	leased, _, err := s.LeaseEvents(ctx, "sub_q", 10, time.Minute)
	if err != nil || len(leased) != 3 {
		t.Fatalf("leased %d, %v", len(leased), err)
	}
	n, err := s.Ack(ctx, "sub_q", []uint64{leased[0].Entry.Seq, leased[1].Entry.Seq, leased[2].Entry.Seq, 999})
	if err != nil || n != 3 {
		t.Fatalf("acked %d, %v", n, err)
	}
	sub, _, _ = s.GetSubscription(ctx, "sub_q")
	if sub.Pending != 0 || sub.Delivered != 3 || sub.Status != SubActive {
		t.Fatalf("after ack = %+v", sub)
	}
	// Now nothing is pending: the next commit prunes the log down to its bound, and the pruned
	// ids leave the ledger with them.
	if _, err := s.CommitEvents(ctx, src.ID, evs("6"), Origin{}, lim, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetSource(ctx, src.ID)
	if got.Events != 4 {
		t.Fatalf("source log holds %d events after pruning, want 4", got.Events)
	}
	res, _ := s.CommitEvents(ctx, src.ID, evs("1", "6"), Origin{}, lim, nil)
	if res.New != 1 {
		t.Fatalf("after pruning, %d of (pruned 1, kept 6) counted new; want 1", res.New)
	}
	// Replay enqueues what the log still holds and is not pending (4 and 5; 6 and the new 1
	// are pending), under their original sequence numbers.
	n, err = s.Replay(ctx, "sub_q", time.Time{}, 0)
	if err != nil || n != 2 {
		t.Fatalf("replayed %d, %v; want 2", n, err)
	}
	_, pend, _ := s.QueueHead(ctx, "sub_q", 10)
	var order []string
	for _, p := range pend {
		order = append(order, p.Event.SourceEventID)
	}
	if fmt.Sprint(order) != "[4 5 6 1]" {
		t.Fatalf("queue after replay = %v, want [4 5 6 1] (by sequence)", order)
	}
}

// Deleting the last subscription leaves the source for the engine to stop; deleting the source
// removes its log, ledger, hook token and secret.
func TestDeleteSubscriptionAndSource(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	src := Source{ID: "src_h", Key: "kh", Kind: SourceWebhook, Status: SourceActive, HookToken: "tok", TriggerRef: TriggerRef{Connector: "c", Trigger: "t"}}
	sub := Subscription{ID: "sub_h", SourceID: "src_h", Delivery: Delivery{Type: "webhook", URL: "https://x"}}
	if err := s.CreateSource(ctx, src, []byte("s3cret"), &sub, []byte("whsec_x")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSource(ctx, Source{ID: "src_dup", Key: "kh"}, nil, nil, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("a second source with the same key: %v", err)
	}
	if got, err := s.SourceByHookToken(ctx, "tok"); err != nil || got.ID != "src_h" {
		t.Fatalf("by token: %+v %v", got, err)
	}
	if err := s.DeleteSource(ctx, "src_h"); !errors.Is(err, ErrExists) {
		t.Fatalf("deleting a source with subscribers: %v", err)
	}
	if _, remaining, err := s.DeleteSubscription(ctx, "sub_h"); err != nil || remaining != 0 {
		t.Fatalf("delete subscription: %d %v", remaining, err)
	}
	if _, err := s.TriggerSecret(ctx, "sub", "sub_h"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the subscription's secret survived: %v", err)
	}
	if err := s.DeleteSource(ctx, "src_h"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SourceByHookToken(ctx, "tok"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the hook token survived: %v", err)
	}
	if _, found, _ := s.FindSource(ctx, "kh"); found {
		t.Fatal("the source key survived")
	}
}

// Trigger secrets are sealed at rest and re-sealed by a master-key rotation.
func TestTriggerSecretsSealedAndRotated(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	newSourceWithSubs(t, s, Subscription{ID: "sub_a"})
	raw := rawStream(t, s, s.trig.stream)
	if !bytes.Contains(raw, []byte("sub_a")) {
		t.Fatal("rawStream read nothing of the trigger state")
	}
	for _, secret := range []string{"source-secret", "whsec_first"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the trigger bucket holds %q in clear", secret)
		}
	}
	s = reopen(t, s, nil)
	if _, err := s.RotateMasterKey(ctx); err != nil {
		t.Fatal(err)
	}
	for kind, id := range map[string]string{"src": "src_1", "sub": "sub_a"} {
		if _, err := s.TriggerSecret(ctx, kind, id); err != nil {
			t.Fatalf("%s secret after rotation: %v", kind, err)
		}
	}
}
