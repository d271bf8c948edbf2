package trigger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/boltstore"
)

// upstream is the fake guest of these tests: a poll trigger "items" over a growing list of
// items (cursor: the number of items seen), a webhook trigger "hook", and a timer handler. It
// records which node made each call, and whether two nodes ever polled one source at once.
type upstream struct {
	mu       sync.Mutex
	items    int
	polls    map[string]int // node -> polls
	inflight map[string]int // source params -> polls running now
	overlap  int            // polls that started while another ran for the same params
	fired    map[string][]string
	unsubs   map[string]int // node -> upstream unsubscribes
	gate     chan struct{}  // when set, polls wait until it is closed
}

func newUpstream() *upstream {
	return &upstream{polls: map[string]int{}, inflight: map[string]int{}, fired: map[string][]string{}, unsubs: map[string]int{}}
}

func (u *upstream) add(n int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.items += n
}

func (u *upstream) pollsBy(node string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.polls[node]
}

var testTriggers = map[string]abi.Trigger{
	"items": {Name: "items", Kind: abi.TriggerPoll, DefaultIntervalS: 1, MinIntervalS: 1},
	"hook":  {Name: "hook", Kind: abi.TriggerWebhook},
}

// call is one prepared call of the fake guest on one node.
type call struct {
	u    *upstream
	node string
	spec registry.CallSpec
}

func (c *call) CorrelationID() string { return c.spec.CorrelationID }
func (c *call) Trigger() abi.Trigger  { return testTriggers[c.spec.Trigger] }
func (c *call) NeedsReauth() bool     { return false }
func (c *call) Release()              {}

func (c *call) Poll(ctx context.Context, req abi.PollRequest) (*abi.PollResult, *host.Report, error) {
	key := string(req.Params)
	c.u.mu.Lock()
	c.u.polls[c.node]++
	if c.u.inflight[key] > 0 {
		c.u.overlap++
	}
	c.u.inflight[key]++
	gate := c.u.gate
	c.u.mu.Unlock()
	defer func() {
		c.u.mu.Lock()
		c.u.inflight[key]--
		c.u.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	c.u.mu.Lock()
	total := c.u.items
	c.u.mu.Unlock()
	seen := 0
	if req.Cursor != nil {
		seen, _ = strconv.Atoi(*req.Cursor)
	} else {
		seen = total // the baseline: only items added from now on
	}
	res := &abi.PollResult{}
	for n := seen + 1; n <= total && len(res.Events) < 5; n++ {
		res.Events = append(res.Events, abi.Event{ID: fmt.Sprintf("item-%d", n), Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))})
		seen = n
	}
	res.Cursor = strconv.Itoa(seen)
	res.More = seen < total
	return res, nil, nil
}

func (c *call) Webhook(ctx context.Context, req abi.WebhookRequest) (*abi.WebhookResult, *host.Report, error) {
	switch req.Op {
	case abi.WebhookUnsubscribe:
		c.u.mu.Lock()
		c.u.unsubs[c.node]++
		c.u.mu.Unlock()
	case abi.WebhookReceive:
		var body struct{ ID string }
		raw, _ := decodeBase64(req.Request.BodyBase64)
		_ = json.Unmarshal(raw, &body)
		return &abi.WebhookResult{Events: []abi.Event{{ID: body.ID}}}, nil, nil
	}
	return &abi.WebhookResult{State: json.RawMessage(`{"upstream":"s1"}`)}, nil, nil
}

func (c *call) OnTimer(ctx context.Context, ev abi.TimerEvent) (*abi.TimerResult, *host.Report, error) {
	c.u.mu.Lock()
	c.u.fired[ev.Name] = append(c.u.fired[ev.Name], c.node)
	c.u.mu.Unlock()
	return &abi.TimerResult{}, nil, nil
}

// nodeTransport tags every push with the node that made it.
type nodeTransport struct{ node string }

func (t nodeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-Node", t.node)
	return http.DefaultTransport.RoundTrip(r)
}

// cluster is one bbolt store shared by engines with different node names: the leases of the
// store decide who does what, as they do over JetStream.
type cluster struct {
	t  *testing.T
	st *boltstore.Store
	u  *upstream
	o  Options
}

func newCluster(t *testing.T) *cluster {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "plugboard.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &cluster{t: t, st: st, u: newUpstream(), o: Options{Tick: 20 * time.Millisecond, LeaseTTL: 600 * time.Millisecond,
		Recheck: 50 * time.Millisecond, RetrySchedule: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}}}
}

// engine starts an engine named node; it is stopped cleanly at the end of the test unless the
// test crashed it.
func (c *cluster) engine(node string) *Engine {
	o := c.o
	o.NodeName = node
	e := New(Deps{Store: c.st, HTTPClient: &http.Client{Transport: nodeTransport{node}},
		Prepare: func(ctx context.Context, spec registry.CallSpec) (Call, error) {
			return &call{u: c.u, node: node, spec: spec}, nil
		}}, o)
	if err := e.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		e.Stop()
		_ = e.Wait(context.Background())
	})
	return e
}

// subscribe subscribes through e to trigger with params, a poll trigger every second.
func (c *cluster) subscribe(e *Engine, trig string, params string, d storage.Delivery) storage.Subscription {
	c.t.Helper()
	iv := 0
	if trig == "items" {
		iv = 1
	}
	return c.subscribeEvery(e, trig, params, d, iv)
}

// subscribeEvery subscribes through e to trigger with params and interval_s intervalS.
func (c *cluster) subscribeEvery(e *Engine, trig string, params string, d storage.Delivery, intervalS int) storage.Subscription {
	c.t.Helper()
	ref, err := e.Prepare(context.Background(), "fake", trig, "", "", "c_test", false)
	if err != nil {
		c.t.Fatal(err)
	}
	defer ref.Release()
	sub := storage.Subscription{ID: NewSubscriptionID(), TriggerRef: storage.TriggerRef{Connector: "fake", Trigger: trig, Params: json.RawMessage(params)},
		Delivery: d, Status: storage.SubActive, IntervalS: intervalS}
	var secret []byte
	if d.Type == DeliveryWebhook {
		secret = []byte(NewSigningSecret())
	}
	if err := e.Subscribe(context.Background(), ref, &sub, secret, "http://plugboard.test"); err != nil {
		c.t.Fatal(err)
	}
	return sub
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drain pulls and acks sub's queue through e until it has want distinct events, and checks
// that no upstream item came with two delivered ids.
func drain(t *testing.T, e *Engine, sub storage.Subscription, want int) map[string]string {
	t.Helper()
	ids := map[string]string{} // source_event_id -> delivered id
	deadline := time.Now().Add(10 * time.Second)
	for len(ids) < want {
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d events", len(ids), want)
		}
		got, err := e.Pull(context.Background(), sub.ID, 100, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, p := range got {
			ev := Deliver(sub, p.Event)
			if prev, ok := ids[ev.SourceEventID]; ok && prev != ev.ID {
				t.Fatalf("%s delivered with two ids: %s and %s", ev.SourceEventID, prev, ev.ID)
			}
			ids[ev.SourceEventID] = ev.ID
			seqs = append(seqs, p.Entry.Seq)
		}
		if len(seqs) > 0 {
			if _, err := e.st.Ack(context.Background(), sub.ID, seqs); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ids
}

// One node polls a source while it lives; when it dies without releasing its lease, another
// takes the source once the lease expired, from the last committed cursor: every item arrives
// once, with one delivered id.
func TestClusterOnePollerAndFailover(t *testing.T) {
	c := newCluster(t)
	a, b := c.engine("node-a"), c.engine("node-b")
	sub := c.subscribe(a, "items", `{"feed":"one"}`, storage.Delivery{Type: DeliveryQueue})
	if a.Sources() != 1 || b.Sources() != 0 {
		t.Fatalf("after subscribing on a: a leads %d sources, b %d; want 1 and 0", a.Sources(), b.Sources())
	}

	c.u.add(12)
	waitFor(t, 5*time.Second, "a to poll twice", func() bool { return c.u.pollsBy("node-a") >= 3 })
	ids := drain(t, b, sub, 12) // pulled from the other node: queues are in the store
	if n := c.u.pollsBy("node-b"); n != 0 {
		t.Fatalf("b polled %d times while a led the source", n)
	}

	a.abandon() // a crash: no lease released
	crashed := time.Now()
	c.u.add(9)
	waitFor(t, 10*time.Second, "b to take the source", func() bool { return b.Sources() == 1 && c.u.pollsBy("node-b") > 0 })
	if took := time.Since(crashed); took < c.o.LeaseTTL/2 {
		t.Fatalf("b took the source %v after the crash, before a's lease (TTL %v) could expire", took, c.o.LeaseTTL)
	}
	for k, v := range drain(t, b, sub, 9) {
		if prev, ok := ids[k]; ok && prev != v {
			t.Fatalf("%s delivered before the crash as %s and after it as %s", k, prev, v)
		}
		ids[k] = v
	}
	for n := 1; n <= 21; n++ {
		if _, ok := ids[fmt.Sprintf("item-%d", n)]; !ok {
			t.Fatalf("item-%d was never delivered", n)
		}
	}
	c.u.mu.Lock()
	defer c.u.mu.Unlock()
	if c.u.overlap != 0 {
		t.Fatalf("%d polls ran while another node polled the same source", c.u.overlap)
	}
}

// Sources created on one node are polled by whichever node takes them, each by one; a source
// deleted on a node that does not lead it is released by its leader.
func TestClusterSourcesSpreadAndDeletesAreSeen(t *testing.T) {
	c := newCluster(t)
	a, b := c.engine("node-a"), c.engine("node-b")
	var subs []storage.Subscription
	for i := range 4 {
		e := a
		if i%2 == 1 {
			e = b
		}
		subs = append(subs, c.subscribe(e, "items", fmt.Sprintf(`{"feed":"f%d"}`, i), storage.Delivery{Type: DeliveryQueue}))
	}
	c.u.add(3)
	waitFor(t, 5*time.Second, "every source polled", func() bool {
		total := 0
		for _, s := range subs {
			if src, err := c.st.GetSource(context.Background(), s.SourceID); err == nil && src.Events == 3 {
				total++
			}
		}
		return total == 4
	})
	if got := a.Sources() + b.Sources(); got != 4 {
		t.Fatalf("a leads %d and b %d sources; want 4 in all", a.Sources(), b.Sources())
	}
	// b's first source, deleted through a.
	if err := a.DeleteSubscription(context.Background(), subs[1].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b to let the deleted source go", func() bool { return a.Sources()+b.Sources() == 3 })
	c.u.mu.Lock()
	overlap := c.u.overlap
	c.u.mu.Unlock()
	if overlap != 0 {
		t.Fatalf("%d polls ran while another node polled the same source", overlap)
	}
}

// A webhook source created on a leads its unsubscribe: deleting its last subscription on b
// hands the stop to a, which unsubscribes upstream once.
func TestClusterWebhookStopRunsOnLeader(t *testing.T) {
	c := newCluster(t)
	a, b := c.engine("node-a"), c.engine("node-b")
	sub := c.subscribe(a, "hook", `{"channel":"c"}`, storage.Delivery{Type: DeliveryQueue})
	src, err := c.st.GetSource(context.Background(), sub.SourceID)
	if err != nil {
		t.Fatal(err)
	}
	// Inbound webhooks on either node land in the one queue.
	for i, e := range []*Engine{a, b, a, b} {
		body := fmt.Sprintf(`{"id":"h-%d"}`, i)
		if _, err := e.Receive(context.Background(), src, &abi.InboundRequest{Method: "POST", BodyBase64: encodeBase64([]byte(body))}, "c_test"); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, b, sub, 4)
	if err := b.DeleteSubscription(context.Background(), sub.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the source to be deleted", func() bool {
		_, err := c.st.GetSource(context.Background(), src.ID)
		return err != nil
	})
	c.u.mu.Lock()
	defer c.u.mu.Unlock()
	if c.u.unsubs["node-a"] != 1 || c.u.unsubs["node-b"] != 0 {
		t.Fatalf("upstream unsubscribes by node: %v; want one, by node-a (the leader)", c.u.unsubs)
	}
}

// receiver is a push endpoint that fails the first attempt of every third event and records
// which node pushed each attempt.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	attempts map[string]int    // webhook-id -> attempts
	by       map[string]int    // node -> attempts
	ok       map[string]string // data n -> delivered id
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{attempts: map[string]int{}, by: map[string]int{}, ok: map[string]string{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev Event
		_ = json.Unmarshal(body, &ev)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.by[r.Header.Get("X-Test-Node")]++
		id := r.Header.Get("webhook-id")
		rc.attempts[id]++
		n, _ := strconv.Atoi(ev.SourceEventID[len("item-"):])
		if n%3 == 0 && rc.attempts[id] == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if prev, ok := rc.ok[ev.SourceEventID]; ok && prev != id {
			t.Errorf("%s pushed with two ids: %s and %s", ev.SourceEventID, prev, id)
		}
		rc.ok[ev.SourceEventID] = id
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) delivered() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.ok)
}

func (rc *receiver) attemptsBy(node string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.by[node]
}

// A push subscription is pushed by one node; when it dies, another continues its queue and
// its retries from the store: every event is delivered, each with one id.
func TestClusterOnePusherAndFailover(t *testing.T) {
	c := newCluster(t)
	rc := newReceiver(t)
	a := c.engine("node-a")
	b := c.engine("node-b")
	c.subscribe(a, "items", `{"feed":"push"}`, storage.Delivery{Type: DeliveryWebhook, URL: rc.URL + "/hook"})
	c.u.add(9)
	waitFor(t, 10*time.Second, "9 deliveries", func() bool { return rc.delivered() == 9 })
	// Either node may win the subscription's push lease (a's own start races b's scan); only
	// one may push.
	byA, byB := rc.attemptsBy("node-a"), rc.attemptsBy("node-b")
	if (byA == 0) == (byB == 0) {
		t.Fatalf("node-a pushed %d times and node-b %d: want exactly one pusher", byA, byB)
	}
	holder, other := a, "node-b"
	if byB > 0 {
		holder, other = b, "node-a"
	}
	holder.abandon()
	c.u.add(9)
	waitFor(t, 15*time.Second, "18 deliveries", func() bool { return rc.delivered() == 18 })
	if rc.attemptsBy(other) == 0 {
		t.Fatalf("%s never pushed after the pusher died", other)
	}
}

// Timers fire once with several nodes running, also when the node firing them dies.
func TestClusterTimersFireOnce(t *testing.T) {
	c := newCluster(t)
	a, b := c.engine("node-a"), c.engine("node-b")
	ctx := context.Background()
	set := func(prefix string, n int) {
		for i := range n {
			if _, err := c.st.SetTimer(ctx, storage.Timer{Connector: "fake", Name: fmt.Sprintf("%s-%d", prefix, i), FireAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	firedAll := func(prefix string, n int) func() bool {
		return func() bool {
			c.u.mu.Lock()
			defer c.u.mu.Unlock()
			for i := range n {
				if len(c.u.fired[fmt.Sprintf("%s-%d", prefix, i)]) == 0 {
					return false
				}
			}
			return true
		}
	}
	set("first", 20)
	waitFor(t, 5*time.Second, "the first timers to fire", firedAll("first", 20))
	holder := ""
	c.u.mu.Lock()
	for name, nodes := range c.u.fired {
		if len(nodes) != 1 {
			t.Fatalf("timer %s fired %d times (%v)", name, len(nodes), nodes)
		}
		if holder == "" {
			holder = nodes[0]
		} else if nodes[0] != holder {
			t.Fatalf("timers fired on %s and %s; want one node", holder, nodes[0])
		}
	}
	c.u.mu.Unlock()
	// Crash the holder (a in practice, which started first; b otherwise) and fire more.
	survivor := "node-b"
	if holder == "node-a" {
		a.abandon()
	} else {
		b.abandon()
		survivor = "node-a"
	}
	set("second", 10)
	waitFor(t, 10*time.Second, "the second timers to fire", firedAll("second", 10))
	waitFor(t, 5*time.Second, "fired timers to be deleted", func() bool {
		due, err := c.st.DueTimers(ctx, time.Now(), 100)
		return err == nil && len(due) == 0
	})
	c.u.mu.Lock()
	defer c.u.mu.Unlock()
	for name, nodes := range c.u.fired {
		if len(nodes) != 1 {
			t.Fatalf("timer %s fired %d times (%v)", name, len(nodes), nodes)
		}
		if name[:6] == "second" && nodes[0] != survivor {
			t.Fatalf("timer %s fired on %s after it crashed", name, nodes[0])
		}
	}
}

// A clean stop releases the leases at once: the other node takes the source without waiting
// for them to expire.
func TestClusterStopReleasesLeases(t *testing.T) {
	c := newCluster(t)
	c.o.LeaseTTL = time.Minute // expiry would take far longer than the test waits
	a := c.engine("node-a")
	c.engine("node-b")
	c.subscribe(a, "items", `{"feed":"stop"}`, storage.Delivery{Type: DeliveryQueue})
	a.Stop()
	if err := a.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.Sources() != 0 {
		t.Fatalf("a leads %d sources after Wait", a.Sources())
	}
	// Had b found the lease held, it would retry only after a third of the TTL (20 s): a
	// poll by b within 5 s shows the lease was released.
	c.u.add(1)
	waitFor(t, 5*time.Second, "b to take the source", func() bool { return c.u.pollsBy("node-b") > 0 })
}

func encodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
