package plugboard_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// queueEnv is a fake with a poll trigger, a queue subscription to it and a clock the test
// moves (for the 30 s lease).
type queueEnv struct {
	s     *plugboardtest.Server
	c     *plugboard.Client
	sub   string
	clock atomic.Int64 // seconds added to the real time
}

func newQueueEnv(t *testing.T) *queueEnv {
	t.Helper()
	e := &queueEnv{s: plugboardtest.New(t)}
	e.s.Now = func() time.Time { return time.Now().Add(time.Duration(e.clock.Load()) * time.Second) }
	e.c = plugboard.New(e.s.URL, plugboardtest.Token, plugboard.WithHTTPClient(e.s.Client()))
	m := abi.Manifest{ABI: 1, Name: "trig", Version: "1.0.0", Auth: abi.Auth{Types: []string{"none"}},
		Triggers: []abi.Trigger{{Name: "items", Kind: "poll"}}}
	if _, _, err := e.c.UploadConnector(t.Context(), plugboardtest.Wasm(m), true); err != nil {
		t.Fatal(err)
	}
	sub, err := e.c.CreateSubscription(t.Context(), plugboard.SubscriptionRequest{
		Connector: "trig", Trigger: "items", Delivery: plugboard.Delivery{Type: plugboard.DeliveryQueue}})
	if err != nil {
		t.Fatal(err)
	}
	e.sub = sub.ID
	return e
}

func (e *queueEnv) emit(n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, e.s.Emit(e.sub, "record.created", "rec_"+string(rune('1'+i)), time.Time{}, map[string]int{"n": i + 1}))
	}
	return ids
}

// acks returns the ids of each ack request, in order.
func (e *queueEnv) acks() [][]string {
	var out [][]string
	for _, r := range e.s.Requests() {
		if strings.HasSuffix(r.Path, "/events/ack") {
			var body struct {
				IDs []string `json:"ids"`
			}
			json.Unmarshal(r.Body, &body)
			out = append(out, body.IDs)
		}
	}
	return out
}

// pullNow pulls without waiting, acknowledging nothing.
func (e *queueEnv) pullNow(t *testing.T) []string {
	t.Helper()
	evs, err := e.c.PullEvents(t.Context(), e.sub, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	return ids
}

func TestEventsAcksWhatTheLoopHandled(t *testing.T) {
	e := newQueueEnv(t)
	want := e.emit(3)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []string
	for ev, err := range e.c.Events(ctx, e.sub, plugboard.EventsOptions{Wait: time.Second}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.ID)
		if ev.Type != "trig.items" || ev.EventType != "record.created" || ev.Subscription != e.sub {
			t.Errorf("event %+v", ev)
		}
		if len(got) == 3 {
			cancel() // stop after this one, which is handled: it is acknowledged
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if acks := e.acks(); len(acks) != 1 || !slices.Equal(acks[0], want) {
		t.Errorf("ack requests %v, want one with %v", acks, want)
	}
	e.clock.Add(31) // past every lease: anything not acknowledged comes back
	if ids := e.pullNow(t); len(ids) != 0 {
		t.Errorf("a second pull got %v: they were not acknowledged", ids)
	}
}

func TestEventsBreakLeavesTheEventUnacknowledged(t *testing.T) {
	e := newQueueEnv(t)
	ids := e.emit(3)
	n := 0
	for ev, err := range e.c.Events(t.Context(), e.sub, plugboard.EventsOptions{Wait: time.Second}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 2 {
			if ev.ID != ids[1] {
				t.Errorf("second event %s, want %s", ev.ID, ids[1])
			}
			break
		}
	}
	if acks := e.acks(); len(acks) != 1 || !slices.Equal(acks[0], ids[:1]) {
		t.Errorf("ack requests %v, want one with %v", acks, ids[:1])
	}
	if got := e.pullNow(t); len(got) != 0 {
		t.Errorf("within the lease a pull got %v", got)
	}
	e.clock.Add(31)
	if got := e.pullNow(t); !slices.Equal(got, ids[1:]) {
		t.Errorf("after the lease a pull got %v, want %v (the one the loop broke on, and the rest of its batch)", got, ids[1:])
	}
}

func TestEventsAcksPerBatchBeforeTheNextPull(t *testing.T) {
	e := newQueueEnv(t)
	ids := e.emit(5)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	n := 0
	for _, err := range e.c.Events(ctx, e.sub, plugboard.EventsOptions{Max: 2, Wait: time.Second}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 5 {
			cancel()
		}
	}
	if acks := e.acks(); !slices.EqualFunc(acks, [][]string{ids[0:2], ids[2:4], ids[4:5]}, slices.Equal) {
		t.Errorf("ack requests %v, want the batches of 2", acks)
	}
	// Each batch's ack comes before the next pull.
	var seq []string
	for _, r := range e.s.Requests() {
		switch {
		case strings.HasSuffix(r.Path, "/events/ack"):
			seq = append(seq, "ack")
		case strings.HasSuffix(r.Path, "/events"):
			seq = append(seq, "pull")
			if !strings.Contains(r.Query, "max=2") || !strings.Contains(r.Query, "wait_s=1") {
				t.Errorf("pull query %q", r.Query)
			}
		}
	}
	if got := strings.Join(seq, " "); got != "pull ack pull ack pull ack" {
		t.Errorf("requests %q", got)
	}
}

func TestEventsKeepsPullingThroughEmptyBatches(t *testing.T) {
	e := newQueueEnv(t)
	go func() {
		// Emit once the loop has seen three empty batches.
		for {
			pulls := 0
			for _, r := range e.s.Requests() {
				if strings.HasSuffix(r.Path, "/events") {
					pulls++
				}
			}
			if pulls >= 3 {
				e.emit(1)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for ev, err := range e.c.Events(ctx, e.sub, plugboard.EventsOptions{Wait: -1}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID == "" {
			t.Error("an empty event")
		}
		break
	}
	if ctx.Err() != nil {
		t.Error("no event within 10 s")
	}
}

func TestEventsEndsOnCancelAndOnErrors(t *testing.T) {
	e := newQueueEnv(t)
	t.Run("a cancelled context ends a waiting pull without an error", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		for _, err := range e.c.Events(ctx, e.sub, plugboard.EventsOptions{}) {
			t.Errorf("yielded %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v to stop", d)
		}
	})
	t.Run("a failed pull is yielded once and ends the loop", func(t *testing.T) {
		n := 0
		for _, err := range e.c.Events(t.Context(), "sub_missing", plugboard.EventsOptions{}) {
			n++
			if p, ok := err.(*plugboard.Problem); !ok || p.Status != 404 {
				t.Errorf("error %v, want a 404 Problem", err)
			}
		}
		if n != 1 {
			t.Errorf("%d iterations, want 1", n)
		}
	})
	t.Run("a panic in the body acknowledges only the events before it", func(t *testing.T) {
		ids := e.emit(2)
		before := len(e.acks())
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic was swallowed")
				}
			}()
			n := 0
			for range e.c.Events(t.Context(), e.sub, plugboard.EventsOptions{Wait: time.Second}) {
				if n++; n == 2 {
					panic("handler failed")
				}
			}
		}()
		if acks := e.acks()[before:]; len(acks) != 1 || !slices.Equal(acks[0], ids[:1]) {
			t.Errorf("ack requests %v, want one with %v", acks, ids[:1])
		}
	})
}
