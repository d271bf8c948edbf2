package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// newSource creates a poll source "src_1" (key "k1") with the given subscriptions; the first
// gets secret "whsec_first", the source "source-secret".
func newSource(t *testing.T, st storage.Store, subs ...storage.Subscription) storage.Source {
	t.Helper()
	src := storage.Source{ID: "src_1", Key: "k1", Kind: storage.SourcePoll, Status: storage.SourceActive,
		TriggerRef: storage.TriggerRef{Connector: "github", Trigger: "issue_opened", Params: json.RawMessage(`{"repo":"acme/x"}`)}}
	var first *storage.Subscription
	if len(subs) > 0 {
		f := subs[0]
		f.SourceID = src.ID
		first = &f
	}
	ok(t, st.CreateSource(ctx(t), src, []byte("source-secret"), first, []byte("whsec_first")), "CreateSource")
	for _, sub := range subs[min(1, len(subs)):] {
		sub.SourceID = src.ID
		ok(t, st.AddSubscription(ctx(t), sub, []byte("whsec_"+sub.ID), nil), "AddSubscription %s", sub.ID)
	}
	return must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), src.ID))
}

func queueSub(id string) storage.Subscription {
	return storage.Subscription{ID: id, Delivery: storage.Delivery{Type: "queue"}}
}

func pushSub(id string) storage.Subscription {
	return storage.Subscription{ID: id, Delivery: storage.Delivery{Type: "webhook", URL: "https://receiver.example/" + id}}
}

// events returns one new event per id, its data naming the id.
func events(ids ...string) []storage.NewEvent {
	out := make([]storage.NewEvent, len(ids))
	for i, id := range ids {
		out[i] = storage.NewEvent{SourceEventID: id, Type: "issue", Data: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id))}
	}
	return out
}

func commit(t *testing.T, st storage.Store, srcID string, lim storage.TriggerLimits, ids ...string) storage.CommitResult {
	t.Helper()
	return must[storage.CommitResult](t, "CommitEvents")(st.CommitEvents(ctx(t), srcID, events(ids...), storage.Origin{}, lim, nil))
}

// queue returns the source event ids of a subscription's queue, head first.
func queue(t *testing.T, st storage.Store, subID string) []string {
	t.Helper()
	_, pend, err := st.QueueHead(ctx(t), subID, 1000)
	ok(t, err, "QueueHead %s", subID)
	var ids []string
	for _, p := range pend {
		ids = append(ids, p.Event.SourceEventID)
	}
	return ids
}

func sub(t *testing.T, st storage.Store, id string) storage.Subscription {
	t.Helper()
	s, _, err := st.GetSubscription(ctx(t), id)
	ok(t, err, "GetSubscription %s", id)
	return s
}

// sourceCases are the promises of [storage.Sources]: sources with their subscriptions, keys,
// hook tokens and sealed secrets, and what deleting each takes with it.
var sourceCases = []testCase{
	{"CreateSource stores the source, its first subscription and both secrets", func(t *testing.T, st storage.Store) {
		src := storage.Source{ID: "src_h", Key: "kh", Kind: storage.SourceWebhook, Status: storage.SourceStarting, HookToken: "tok_1",
			CallbackURL: "https://pb.example/hooks/tok_1", TriggerRef: storage.TriggerRef{Connector: "github", Trigger: "push", Connection: "gh", Params: json.RawMessage(`{}`)}}
		s1 := pushSub("sub_1")
		s1.SourceID = "src_h"
		s1.Owner = "key_a"
		ok(t, st.CreateSource(ctx(t), src, []byte("signing"), &s1, []byte("whsec_1")), "CreateSource")
		got := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_h"))
		if got.Key != "kh" || got.Kind != storage.SourceWebhook || got.Status != storage.SourceStarting || got.HookToken != "tok_1" ||
			got.Connector != "github" || got.Connection != "gh" || got.CallbackURL != src.CallbackURL {
			t.Fatalf("GetSource = %+v", got)
		}
		if got.NextSeq != 1 || got.Cursor != nil || got.Events != 0 || got.CreatedAt.IsZero() {
			t.Fatalf("a new source: NextSeq %d (want 1), Cursor %v (want nil), Events %d, CreatedAt %v", got.NextSeq, got.Cursor, got.Events, got.CreatedAt)
		}
		found, ok2, err := st.FindSource(ctx(t), "kh")
		if err != nil || !ok2 || found.ID != "src_h" {
			t.Fatalf("FindSource = %+v, %v, %v", found, ok2, err)
		}
		if _, ok2, err := st.FindSource(ctx(t), "other"); err != nil || ok2 {
			t.Fatalf("FindSource of an unknown key: found %v, %v", ok2, err)
		}
		if by, err := st.SourceByHookToken(ctx(t), "tok_1"); err != nil || by.ID != "src_h" {
			t.Fatalf("SourceByHookToken = %+v, %v", by, err)
		}
		_, err = st.SourceByHookToken(ctx(t), "tok_x")
		wantErr(t, err, storage.ErrNotFound, "SourceByHookToken of an unknown token")
		if sec, err := st.TriggerSecret(ctx(t), "src", "src_h"); err != nil || string(sec) != "signing" {
			t.Fatalf("source secret = %q, %v", sec, err)
		}
		if sec, err := st.TriggerSecret(ctx(t), "sub", "sub_1"); err != nil || string(sec) != "whsec_1" {
			t.Fatalf("subscription secret = %q, %v", sec, err)
		}
		_, err = st.TriggerSecret(ctx(t), "sub", "sub_x")
		wantErr(t, err, storage.ErrNotFound, "TriggerSecret of an unknown subscription")
		s := sub(t, st, "sub_1")
		if s.SourceID != "src_h" || s.Status != storage.SubActive || s.Owner != "key_a" || s.Delivery != s1.Delivery || s.CreatedAt.IsZero() {
			t.Fatalf("GetSubscription = %+v (an empty status must become active)", s)
		}
	}},
	{"a second source with the same key is ErrExists", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"))
		err := st.CreateSource(ctx(t), storage.Source{ID: "src_2", Key: "k1", Kind: storage.SourcePoll}, nil, nil, nil)
		wantErr(t, err, storage.ErrExists, "CreateSource with a taken key")
		_, err = st.GetSource(ctx(t), "src_2")
		wantErr(t, err, storage.ErrNotFound, "GetSource of the refused source")
	}},
	{"Sources and Subscriptions list what was stored", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"), pushSub("sub_b"))
		ok(t, st.CreateSource(ctx(t), storage.Source{ID: "src_2", Key: "k2", Kind: storage.SourcePoll, Status: storage.SourceActive}, nil,
			&storage.Subscription{ID: "sub_c", SourceID: "src_2", Delivery: storage.Delivery{Type: "queue"}}, nil), "CreateSource src_2")
		var ids []string
		for _, s := range must[[]storage.Source](t, "Sources")(st.Sources(ctx(t))) {
			ids = append(ids, s.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"src_1", "src_2"}) {
			t.Fatalf("Sources = %v", ids)
		}
		subIDs := func(source string) []string {
			var out []string
			for _, v := range must[[]storage.SubscriptionView](t, "Subscriptions")(st.Subscriptions(ctx(t), source)) {
				out = append(out, v.ID)
			}
			slices.Sort(out)
			return out
		}
		if got := subIDs("src_1"); !slices.Equal(got, []string{"sub_a", "sub_b"}) {
			t.Fatalf("Subscriptions(src_1) = %v", got)
		}
		if got := subIDs(""); !slices.Equal(got, []string{"sub_a", "sub_b", "sub_c"}) {
			t.Fatalf("Subscriptions(\"\") = %v", got)
		}
	}},
	{"AddSubscription applies update in the same commit; a missing source is ErrNotFound", func(t *testing.T, st storage.Store) {
		newSource(t, st)
		ok(t, st.AddSubscription(ctx(t), storage.Subscription{ID: "sub_a", SourceID: "src_1", Delivery: storage.Delivery{Type: "queue"}}, []byte("sa"),
			func(s *storage.Source) { s.Status = storage.SourceStopping }), "AddSubscription")
		if got := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1")); got.Status != storage.SourceStopping {
			t.Fatalf("update not applied: status %q", got.Status)
		}
		err := st.AddSubscription(ctx(t), storage.Subscription{ID: "sub_b", SourceID: "src_x"}, nil, nil)
		wantErr(t, err, storage.ErrNotFound, "AddSubscription to a missing source")
		_, _, err = st.GetSubscription(ctx(t), "sub_b")
		wantErr(t, err, storage.ErrNotFound, "GetSubscription of the refused subscription")
	}},
	{"UpdateSource and UpdateSubscription", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"))
		next := time.Now().Add(time.Minute).UTC().Truncate(time.Millisecond)
		got, err := st.UpdateSource(ctx(t), "src_1", func(s *storage.Source) { s.NextPollAt = next; s.Failures = 2 })
		ok(t, err, "UpdateSource")
		if !got.NextPollAt.Equal(next) || got.Failures != 2 {
			t.Fatalf("UpdateSource returned %+v", got)
		}
		if read := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1")); !read.NextPollAt.Equal(next) || read.Failures != 2 {
			t.Fatalf("GetSource after UpdateSource = %+v", read)
		}
		_, err = st.UpdateSource(ctx(t), "src_x", func(*storage.Source) {})
		wantErr(t, err, storage.ErrNotFound, "UpdateSource of a missing source")
		s, err := st.UpdateSubscription(ctx(t), "sub_a", func(s *storage.Subscription) { s.IntervalS = 60 })
		ok(t, err, "UpdateSubscription")
		if s.IntervalS != 60 || sub(t, st, "sub_a").IntervalS != 60 {
			t.Fatalf("UpdateSubscription returned %+v", s)
		}
		_, err = st.UpdateSubscription(ctx(t), "sub_x", func(*storage.Subscription) {})
		wantErr(t, err, storage.ErrNotFound, "UpdateSubscription of a missing subscription")
	}},
	{"DeleteSubscription removes it, its queue and secret, and counts what is left", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"), queueSub("sub_b"))
		commit(t, st, "src_1", storage.TriggerLimits{}, "e1", "e2")
		gone, left, err := st.DeleteSubscription(ctx(t), "sub_a")
		ok(t, err, "DeleteSubscription")
		if gone.ID != "sub_a" || gone.SourceID != "src_1" || left != 1 {
			t.Fatalf("DeleteSubscription = %+v, %d left; want sub_a of src_1, 1 left", gone, left)
		}
		_, _, err = st.GetSubscription(ctx(t), "sub_a")
		wantErr(t, err, storage.ErrNotFound, "GetSubscription after DeleteSubscription")
		_, err = st.TriggerSecret(ctx(t), "sub", "sub_a")
		wantErr(t, err, storage.ErrNotFound, "the deleted subscription's secret")
		// The pusher learns that its subscription is gone from an empty one (and no error).
		s, pend, err := st.QueueHead(ctx(t), "sub_a", 10)
		if err != nil || s.ID != "" || len(pend) != 0 {
			t.Fatalf("QueueHead of a deleted subscription = %+v, %d entries, %v; want an empty subscription and no error", s, len(pend), err)
		}
		if got := queue(t, st, "sub_b"); !slices.Equal(got, []string{"e1", "e2"}) {
			t.Fatalf("the other subscription's queue = %v", got)
		}
		_, left, err = st.DeleteSubscription(ctx(t), "sub_b")
		if err != nil || left != 0 {
			t.Fatalf("deleting the last subscription: %d left, %v", left, err)
		}
		_, _, err = st.DeleteSubscription(ctx(t), "sub_b")
		wantErr(t, err, storage.ErrNotFound, "a second DeleteSubscription")
	}},
	{"DeleteSource refuses a source with subscriptions, then removes everything of it", func(t *testing.T, st storage.Store) {
		src := storage.Source{ID: "src_h", Key: "kh", Kind: storage.SourceWebhook, Status: storage.SourceActive, HookToken: "tok", TriggerRef: storage.TriggerRef{Connector: "c", Trigger: "t"}}
		s1 := pushSub("sub_h")
		s1.SourceID = "src_h"
		ok(t, st.CreateSource(ctx(t), src, []byte("s3cret"), &s1, nil), "CreateSource")
		must[storage.CommitResult](t, "CommitEvents")(st.CommitEvents(ctx(t), "src_h", events("e1"), storage.Origin{}, storage.TriggerLimits{}, nil))
		wantErr(t, st.DeleteSource(ctx(t), "src_h"), storage.ErrExists, "DeleteSource with a subscription")
		must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_h"))
		_, _, err := st.DeleteSubscription(ctx(t), "sub_h")
		ok(t, err, "DeleteSubscription")
		ok(t, st.DeleteSource(ctx(t), "src_h"), "DeleteSource")
		_, err = st.GetSource(ctx(t), "src_h")
		wantErr(t, err, storage.ErrNotFound, "GetSource after DeleteSource")
		_, err = st.SourceByHookToken(ctx(t), "tok")
		wantErr(t, err, storage.ErrNotFound, "SourceByHookToken after DeleteSource")
		if _, found, err := st.FindSource(ctx(t), "kh"); err != nil || found {
			t.Fatalf("FindSource after DeleteSource: found %v, %v", found, err)
		}
		_, err = st.TriggerSecret(ctx(t), "src", "src_h")
		wantErr(t, err, storage.ErrNotFound, "the deleted source's secret")
		// The key is free again, and the new source starts with an empty log and ledger.
		src.ID = "src_h2"
		ok(t, st.CreateSource(ctx(t), src, nil, nil, nil), "CreateSource with the freed key and token")
		s2 := queueSub("sub_2")
		s2.SourceID = "src_h2"
		ok(t, st.AddSubscription(ctx(t), s2, nil, nil), "AddSubscription")
		if res := commit(t, st, "src_h2", storage.TriggerLimits{}, "e1"); res.New != 1 {
			t.Fatalf("event e1 of the deleted source deduplicated the new source's: %+v", res)
		}
	}},
	{"RotateMasterKey re-seals the trigger secrets, which still open", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"))
		before := st.MasterKeyID()
		if n := must[int](t, "RotateMasterKey")(st.RotateMasterKey(ctx(t))); n != 2 {
			t.Fatalf("RotateMasterKey re-sealed %d secrets, want the source's and the subscription's", n)
		}
		if st.MasterKeyID() == before {
			t.Fatalf("MasterKeyID is still %q after the rotation", before)
		}
		for kind, want := range map[string][2]string{"src": {"src_1", "source-secret"}, "sub": {"sub_a", "whsec_first"}} {
			if sec, err := st.TriggerSecret(ctx(t), kind, want[0]); err != nil || string(sec) != want[1] {
				t.Fatalf("%s secret after the rotation = %q, %v; want %q", kind, sec, err, want[1])
			}
		}
	}},
}

// eventCases are the promises of [storage.Events]: atomic commits with deduplication, queues in
// sequence order with their bound, leases, acks, replay, push outcomes and retention.
var eventCases = []testCase{
	{"a commit stores events, enqueues them and moves the cursor together", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"), pushSub("sub_b"))
		cursor := "c1"
		origin := storage.Origin{CorrelationID: "corr-1", Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
		evTime := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
		in := events("e1", "e2")
		in[0].Time = evTime
		res, err := st.CommitEvents(ctx(t), "src_1", in, origin, storage.TriggerLimits{}, func(s *storage.Source) { s.Cursor = &cursor })
		ok(t, err, "CommitEvents")
		if res.New != 2 || !slices.Equal(res.Notify, []string{"sub_a", "sub_b"}) {
			t.Fatalf("CommitEvents = %+v, want 2 new and Notify [sub_a sub_b] (sorted)", res)
		}
		src := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1"))
		if src.Cursor == nil || *src.Cursor != "c1" || src.NextSeq != 3 || src.Events != 2 || src.LastEventAt.IsZero() {
			t.Fatalf("source after the commit = cursor %v, NextSeq %d, Events %d, LastEventAt %v", src.Cursor, src.NextSeq, src.Events, src.LastEventAt)
		}
		_, pend, err := st.QueueHead(ctx(t), "sub_a", 10)
		ok(t, err, "QueueHead")
		if len(pend) != 2 {
			t.Fatalf("queue holds %d entries, want 2", len(pend))
		}
		e := pend[0].Event
		if pend[0].Entry.Seq != 1 || e.Seq != 1 || e.SourceEventID != "e1" || e.Type != "issue" || !e.Time.Equal(evTime) ||
			e.Received.IsZero() || !jsonEqual(e.Data, []byte(`{"id":"e1"}`)) || e.CorrelationID != origin.CorrelationID || e.Traceparent != origin.Traceparent {
			t.Fatalf("first pending event = %+v", e)
		}
		if e2 := pend[1].Event; e2.Seq != 2 || !e2.Time.Equal(e2.Received) {
			t.Fatalf("second event: seq %d, time %v, received %v (a zero time must become the receive time)", e2.Seq, e2.Time, e2.Received)
		}
		s := sub(t, st, "sub_b")
		if s.Events != 2 || s.Pending != 2 {
			t.Fatalf("subscription counters: events %d, pending %d; want 2 and 2", s.Events, s.Pending)
		}
		if _, oldest, _ := st.GetSubscription(ctx(t), "sub_b"); !oldest.Equal(e.Received) {
			t.Fatalf("oldest pending = %v, want the first event's receive time %v", oldest, e.Received)
		}
	}},
	{"a failed commit keeps neither cursor nor events", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"))
		cursor := "c1"
		_, err := st.CommitEvents(ctx(t), "src_missing", events("e1"), storage.Origin{}, storage.TriggerLimits{}, func(s *storage.Source) { s.Cursor = &cursor })
		wantErr(t, err, storage.ErrNotFound, "CommitEvents to a missing source")
		cancelled, cancel := contextWithCancel(t)
		cancel()
		if _, err := st.CommitEvents(cancelled, "src_1", events("e1"), storage.Origin{}, storage.TriggerLimits{}, func(s *storage.Source) { s.Cursor = &cursor }); err == nil {
			t.Fatal("CommitEvents with a cancelled context succeeded")
		}
		src := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1"))
		if src.Cursor != nil || src.Events != 0 || src.NextSeq != 1 {
			t.Fatalf("after failed commits: cursor %v, Events %d, NextSeq %d", src.Cursor, src.Events, src.NextSeq)
		}
		if got := queue(t, st, "sub_a"); len(got) != 0 {
			t.Fatalf("after failed commits the queue holds %v", got)
		}
	}},
	{"a reader that sees a cursor sees its events", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"))
		const commits = 30
		stop := make(chan struct{})
		var bad atomic.Value
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				src, err := st.GetSource(ctx(t), "src_1")
				if err != nil {
					bad.Store(err.Error())
					return
				}
				if src.Cursor == nil {
					continue
				}
				var k int
				fmt.Sscanf(*src.Cursor, "c%d", &k)
				_, pend, err := st.QueueHead(ctx(t), "sub_a", 1000)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				if len(pend) < 2*k {
					bad.Store(fmt.Sprintf("cursor %s is visible with %d queued events, want at least %d", *src.Cursor, len(pend), 2*k))
					return
				}
			}
		}()
		for k := 1; k <= commits; k++ {
			cursor := fmt.Sprintf("c%d", k)
			_, err := st.CommitEvents(ctx(t), "src_1", events(fmt.Sprintf("a%d", k), fmt.Sprintf("b%d", k)), storage.Origin{}, storage.TriggerLimits{},
				func(s *storage.Source) { s.Cursor = &cursor })
			ok(t, err, "CommitEvents %d", k)
		}
		close(stop)
		wg.Wait()
		if msg, _ := bad.Load().(string); msg != "" {
			t.Fatal(msg)
		}
	}},
	{"events are deduplicated by id within and across commits", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_a"))
		if res := commit(t, st, "src_1", storage.TriggerLimits{}, "1", "2", "2"); res.New != 2 {
			t.Fatalf("first commit: %d new, want 2", res.New)
		}
		if res := commit(t, st, "src_1", storage.TriggerLimits{}, "2", "3", "1"); res.New != 1 {
			t.Fatalf("second commit: %d new, want 1 (only 3)", res.New)
		}
		res := commit(t, st, "src_1", storage.TriggerLimits{}, "3")
		if res.New != 0 || len(res.Notify) != 0 {
			t.Fatalf("a commit of seen events = %+v, want nothing new and no one notified", res)
		}
		if got := queue(t, st, "sub_a"); !slices.Equal(got, []string{"1", "2", "3"}) {
			t.Fatalf("queue = %v, want [1 2 3]", got)
		}
		if src := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1")); src.NextSeq != 4 || src.Events != 3 {
			t.Fatalf("NextSeq %d, Events %d; want 4 and 3", src.NextSeq, src.Events)
		}
	}},
	{"each queue is in sequence order; a disabled subscription gets nothing", func(t *testing.T, st storage.Store) {
		off := queueSub("sub_off")
		off.Status = storage.SubDisabled
		newSource(t, st, queueSub("sub_a"), pushSub("sub_b"), off)
		commit(t, st, "src_1", storage.TriggerLimits{}, "x", "b")
		commit(t, st, "src_1", storage.TriggerLimits{}, "a", "z")
		commit(t, st, "src_1", storage.TriggerLimits{}, "m")
		want := []string{"x", "b", "a", "z", "m"}
		for _, id := range []string{"sub_a", "sub_b"} {
			_, pend, err := st.QueueHead(ctx(t), id, 100)
			ok(t, err, "QueueHead")
			var got []string
			for i, p := range pend {
				got = append(got, p.Event.SourceEventID)
				if p.Entry.Seq != uint64(i+1) || p.Event.Seq != p.Entry.Seq {
					t.Fatalf("%s entry %d: seq %d / event seq %d, want %d", id, i, p.Entry.Seq, p.Event.Seq, i+1)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s queue = %v, want %v", id, got, want)
			}
			_, head, err := st.QueueHead(ctx(t), id, 2)
			if err != nil || len(head) != 2 || head[1].Event.SourceEventID != "b" {
				t.Fatalf("QueueHead max 2 = %d entries, %v", len(head), err)
			}
		}
		if got := queue(t, st, "sub_off"); len(got) != 0 {
			t.Fatalf("the disabled subscription's queue = %v", got)
		}
		if s := sub(t, st, "sub_off"); s.Events != 0 || s.Pending != 0 {
			t.Fatalf("the disabled subscription counted events %d, pending %d", s.Events, s.Pending)
		}
	}},
	{"a full queue drops and counts; the log keeps the events for replay", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_q"), queueSub("sub_big"))
		commit(t, st, "src_1", storage.TriggerLimits{MaxQueue: 3}, "1", "2", "3", "4", "5")
		s := sub(t, st, "sub_q")
		if s.Pending != 3 || s.Dropped != 2 || s.Events != 5 || s.Status != storage.SubOverflow || s.StatusReason == "" {
			t.Fatalf("subscription over its bound = pending %d, dropped %d, events %d, status %q (%q)", s.Pending, s.Dropped, s.Events, s.Status, s.StatusReason)
		}
		if got := queue(t, st, "sub_q"); !slices.Equal(got, []string{"1", "2", "3"}) {
			t.Fatalf("queue = %v, want the first 3", got)
		}
		if src := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1")); src.Events != 5 {
			t.Fatalf("source log holds %d events, want all 5", src.Events)
		}
		leased, _, err := st.LeaseEvents(ctx(t), "sub_q", 10, time.Minute)
		ok(t, err, "LeaseEvents")
		if n := must[int](t, "Ack")(st.Ack(ctx(t), "sub_q", seqs(leased))); n != 3 {
			t.Fatalf("Ack removed %d, want 3", n)
		}
		if s := sub(t, st, "sub_q"); s.Status != storage.SubActive || s.Pending != 0 {
			t.Fatalf("after the acks: status %q, pending %d; an ack that makes room clears overflow", s.Status, s.Pending)
		}
		n := must[int](t, "Replay")(st.Replay(ctx(t), "sub_q", time.Time{}, 3))
		if got := queue(t, st, "sub_q"); n != 3 || !slices.Equal(got, []string{"1", "2", "3"}) {
			t.Fatalf("Replay up to the bound 3 enqueued %d: %v", n, got)
		}
	}},
	{"concurrent leasers never get the same event", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_q"))
		var ids []string
		for i := range 60 {
			ids = append(ids, fmt.Sprintf("e%02d", i))
		}
		commit(t, st, "src_1", storage.TriggerLimits{}, ids...)
		var mu sync.Mutex
		got := map[uint64]int{}
		var failed atomic.Value
		parallel(6, func(int) {
			for range 60 { // bounded: a backend that leases an event twice must fail, not hang
				leased, _, err := st.LeaseEvents(ctx(t), "sub_q", 4, time.Minute)
				if err != nil {
					failed.Store(err)
					return
				}
				if len(leased) == 0 {
					return
				}
				mu.Lock()
				for _, p := range leased {
					got[p.Entry.Seq]++
				}
				mu.Unlock()
			}
		})
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("LeaseEvents: %v", err)
		}
		if len(got) != 60 {
			t.Fatalf("leased %d distinct events, want all 60", len(got))
		}
		for seq, n := range got {
			if n != 1 {
				t.Fatalf("event %d was leased %d times while its lease held", seq, n)
			}
		}
	}},
	{"LeaseEvents leases in order and an expired lease is redelivered", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_q"))
		commit(t, st, "src_1", storage.TriggerLimits{}, "e1", "e2", "e3")
		first, _, err := st.LeaseEvents(ctx(t), "sub_q", 2, shortTTL)
		ok(t, err, "LeaseEvents")
		if len(first) != 2 || first[0].Event.SourceEventID != "e1" || first[1].Event.SourceEventID != "e2" || first[0].Entry.Attempts != 1 {
			t.Fatalf("first lease = %+v", first)
		}
		if first[0].Entry.LeaseUntil.IsZero() {
			t.Fatal("a leased entry has no LeaseUntil")
		}
		second, next, err := st.LeaseEvents(ctx(t), "sub_q", 10, time.Minute)
		ok(t, err, "LeaseEvents")
		if len(second) != 1 || second[0].Event.SourceEventID != "e3" {
			t.Fatalf("second lease = %d entries; want only e3 while e1 and e2 are leased", len(second))
		}
		if next.IsZero() || next.After(time.Now().Add(time.Minute)) {
			t.Fatalf("next ready = %v, want when the first lease ends", next)
		}
		var again []storage.Pending
		waitFor(t, expiryWait, "the expired lease is redelivered", func() (bool, string) {
			again, _, err = st.LeaseEvents(ctx(t), "sub_q", 10, time.Minute)
			if err != nil {
				t.Fatalf("LeaseEvents: %v", err)
			}
			return len(again) > 0, fmt.Sprintf("%d leased", len(again))
		})
		if len(again) != 2 || again[0].Event.SourceEventID != "e1" || again[1].Event.SourceEventID != "e2" || again[0].Entry.Attempts != 2 {
			t.Fatalf("redelivery = %+v; want e1 and e2 again, attempt 2", again)
		}
		if again[0].Entry.Seq != first[0].Entry.Seq {
			t.Fatalf("redelivered seq %d, first delivered as %d: the id must be stable", again[0].Entry.Seq, first[0].Entry.Seq)
		}
		_, err = st.Ack(ctx(t), "sub_q", seqs(append(again, second...)))
		ok(t, err, "Ack")
		if more, _, err := st.LeaseEvents(ctx(t), "sub_q", 10, time.Minute); err != nil || len(more) != 0 {
			t.Fatalf("after acking everything LeaseEvents gave %d, %v", len(more), err)
		}
		_, _, err = st.LeaseEvents(ctx(t), "sub_x", 10, time.Minute)
		wantErr(t, err, storage.ErrNotFound, "LeaseEvents of an unknown subscription")
	}},
	{"Ack removes pending entries once and counts them delivered", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_q"))
		commit(t, st, "src_1", storage.TriggerLimits{}, "e1", "e2", "e3")
		if n := must[int](t, "Ack")(st.Ack(ctx(t), "sub_q", []uint64{1, 3, 99})); n != 2 {
			t.Fatalf("Ack of 1, 3 and an unknown 99 = %d, want 2", n)
		}
		if n := must[int](t, "Ack again")(st.Ack(ctx(t), "sub_q", []uint64{1, 3})); n != 0 {
			t.Fatalf("a second Ack = %d, want 0", n)
		}
		if got := queue(t, st, "sub_q"); !slices.Equal(got, []string{"e2"}) {
			t.Fatalf("queue after the acks = %v, want [e2]", got)
		}
		if s := sub(t, st, "sub_q"); s.Pending != 1 || s.Delivered != 2 {
			t.Fatalf("pending %d, delivered %d; want 1 and 2", s.Pending, s.Delivered)
		}
		_, err := st.Ack(ctx(t), "sub_x", []uint64{1})
		wantErr(t, err, storage.ErrNotFound, "Ack on an unknown subscription")
	}},
	{"Replay enqueues again the events received since a time", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_q"))
		commit(t, st, "src_1", storage.TriggerLimits{}, "old1", "old2")
		_, pend, err := st.QueueHead(ctx(t), "sub_q", 10)
		ok(t, err, "QueueHead")
		received := pend[1].Event.Received
		waitFor(t, time.Second, "the clock passes the first commit", func() (bool, string) { return time.Now().After(received), "" })
		since := time.Now()
		waitFor(t, time.Second, "the clock passes since", func() (bool, string) { return time.Now().After(since), "" })
		commit(t, st, "src_1", storage.TriggerLimits{}, "new1", "new2")
		_, err = st.Ack(ctx(t), "sub_q", []uint64{1, 2, 3, 4})
		ok(t, err, "Ack")
		if n := must[int](t, "Replay")(st.Replay(ctx(t), "sub_q", since, 0)); n != 2 {
			t.Fatalf("Replay since the second commit enqueued %d, want 2", n)
		}
		if got := queue(t, st, "sub_q"); !slices.Equal(got, []string{"new1", "new2"}) {
			t.Fatalf("queue after Replay = %v, want [new1 new2]", got)
		}
		if n := must[int](t, "Replay all")(st.Replay(ctx(t), "sub_q", time.Time{}, 0)); n != 2 {
			t.Fatalf("Replay of everything enqueued %d, want 2 (old1 and old2; new1 and new2 are pending)", n)
		}
		_, pend, _ = st.QueueHead(ctx(t), "sub_q", 10)
		var got []uint64
		for _, p := range pend {
			got = append(got, p.Entry.Seq)
		}
		if !slices.Equal(got, []uint64{1, 2, 3, 4}) {
			t.Fatalf("queue seqs after replay = %v, want [1 2 3 4] (original sequence numbers)", got)
		}
		if s := sub(t, st, "sub_q"); s.Pending != 4 {
			t.Fatalf("pending %d after replay, want 4", s.Pending)
		}
		_, err = st.Replay(ctx(t), "sub_x", time.Time{}, 0)
		wantErr(t, err, storage.ErrNotFound, "Replay of an unknown subscription")
	}},
	{"RecordPush: delivered, retried, given up and disabled", func(t *testing.T, st storage.Store) {
		newSource(t, st, pushSub("sub_p"))
		commit(t, st, "src_1", storage.TriggerLimits{}, "e1", "e2", "e3", "e4")
		at := time.Now().UTC().Truncate(time.Millisecond)
		retryAt := at.Add(time.Hour)
		ok(t, st.RecordPush(ctx(t), "sub_p",
			storage.PushOutcome{Seq: 1, At: at, Status: 200, Delivered: true},
			storage.PushOutcome{Seq: 2, At: at, Status: 503, Err: "receiver answered 503", Code: "push_status", NextAt: retryAt}), "RecordPush")
		s := sub(t, st, "sub_p")
		if s.Delivered != 1 || s.Pending != 3 || s.Push.Attempts != 2 || s.Push.LastStatus != 503 || s.Push.LastError != "receiver answered 503" ||
			s.Push.LastErrorCode != "push_status" || !s.Push.NextAttemptAt.Equal(retryAt) || !s.Push.LastAttemptAt.Equal(at) {
			t.Fatalf("after delivered + retry: %+v, push %+v", s, s.Push)
		}
		// The pusher reads the head even when it is not due yet: order holds the rest back.
		_, head, err := st.QueueHead(ctx(t), "sub_p", 10)
		ok(t, err, "QueueHead")
		if len(head) != 3 || head[0].Entry.Seq != 2 || head[0].Entry.Attempts != 1 || !head[0].Entry.NextAt.Equal(retryAt) {
			t.Fatalf("queue head after a retry = %+v, want seq 2 first with attempt 1 and its NextAt", head)
		}
		ok(t, st.RecordPush(ctx(t), "sub_p", storage.PushOutcome{Seq: 2, At: at, Status: 500, GiveUp: true, Err: "gave up"}), "RecordPush give up")
		if s := sub(t, st, "sub_p"); s.Failed != 1 || s.Pending != 2 || !s.Push.NextAttemptAt.IsZero() {
			t.Fatalf("after give up: failed %d, pending %d, next attempt %v", s.Failed, s.Pending, s.Push.NextAttemptAt)
		}
		ok(t, st.RecordPush(ctx(t), "sub_p", storage.PushOutcome{Seq: 3, At: at, Status: 410, Disable: true, GiveUp: true}), "RecordPush 410")
		s = sub(t, st, "sub_p")
		if s.Status != storage.SubDisabled || s.StatusReason == "" {
			t.Fatalf("after 410: status %q (%q), want disabled with a reason", s.Status, s.StatusReason)
		}
		if got := queue(t, st, "sub_p"); !slices.Equal(got, []string{"e4"}) {
			t.Fatalf("queue = %v, want [e4]", got)
		}
		if res := commit(t, st, "src_1", storage.TriggerLimits{}, "e5"); len(res.Notify) != 0 {
			t.Fatalf("a disabled subscription was notified: %+v", res)
		}
	}},
	{"retention prunes the oldest events no queue still needs", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_q"), queueSub("sub_r"))
		lim := storage.TriggerLimits{MaxEvents: 4}
		commit(t, st, "src_1", lim, "1", "2", "3", "4", "5", "6")
		if src := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1")); src.Events != 6 {
			t.Fatalf("log holds %d events over its bound 4 while all are pending, want 6", src.Events)
		}
		_, err := st.Ack(ctx(t), "sub_q", []uint64{1, 2, 3, 4, 5})
		ok(t, err, "Ack sub_q")
		_, err = st.Ack(ctx(t), "sub_r", []uint64{1, 2})
		ok(t, err, "Ack sub_r")
		commit(t, st, "src_1", lim, "7")
		// sub_r still needs 3: only 1 and 2 may go.
		if src := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1")); src.Events != 5 {
			t.Fatalf("log holds %d events, want 5 (3 is still pending on sub_r)", src.Events)
		}
		if got := queue(t, st, "sub_r"); !slices.Equal(got, []string{"3", "4", "5", "6", "7"}) {
			t.Fatalf("sub_r queue = %v: pruning took a pending event", got)
		}
		_, err = st.Ack(ctx(t), "sub_r", []uint64{3, 4, 5, 6})
		ok(t, err, "Ack sub_r")
		commit(t, st, "src_1", lim, "8")
		if src := must[storage.Source](t, "GetSource")(st.GetSource(ctx(t), "src_1")); src.Events != 4 {
			t.Fatalf("log holds %d events, want its bound 4", src.Events)
		}
		if res := commit(t, st, "src_1", lim, "6", "7", "8"); res.New != 0 {
			t.Fatalf("events still in the log were not deduplicated: %d new", res.New)
		}
		if n := must[int](t, "Replay")(st.Replay(ctx(t), "sub_q", time.Time{}, 0)); n != 1 {
			t.Fatalf("Replay enqueued %d, want 1 (5: 6 to 8 are pending on sub_q, 1 to 4 pruned)", n)
		}
	}},
	{"an event pruned from the log leaves the ledger: its id is new again", func(t *testing.T, st storage.Store) {
		newSource(t, st, queueSub("sub_q"))
		lim := storage.TriggerLimits{MaxEvents: 2}
		commit(t, st, "src_1", lim, "1", "2", "3")
		_, err := st.Ack(ctx(t), "sub_q", []uint64{1, 2, 3})
		ok(t, err, "Ack")
		commit(t, st, "src_1", lim, "4") // nothing pending but 4: the log keeps 3 and 4
		if res := commit(t, st, "src_1", lim, "1", "4"); res.New != 1 {
			t.Fatalf("a commit of the pruned 1 and the kept 4 counted %d new, want 1", res.New)
		}
		if got := queue(t, st, "sub_q"); !slices.Equal(got, []string{"4", "1"}) {
			t.Fatalf("queue = %v, want [4 1]", got)
		}
	}},
}

func seqs(ps []storage.Pending) []uint64 {
	out := make([]uint64, len(ps))
	for i, p := range ps {
		out[i] = p.Entry.Seq
	}
	return out
}

// contextWithCancel is a child of t's context and its cancel.
func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
