package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clusterTriggers sets up the trig connector on a cluster: a feed, a connection to it, a
// queue subscription Q pulled by a consumer that talks to whichever node is up, and a push
// subscription A. It returns the feed, the consumer, the receiver and each subscription's base
// item (the feed's count when its 201 came back: every later item is owed to it).
type clusterTriggers struct {
	feed       *crashFeed
	stopFeed   func()
	puller     *crashPuller
	recv       *crashReceiver
	subQ, subA string
	baseQ      int64
	baseA      int64
	stopPull   chan struct{}
	pulling    sync.WaitGroup
}

func setupClusterTriggers(t *testing.T, c *testCluster) *clusterTriggers {
	t.Helper()
	wasm, err := os.ReadFile(wasmPlugin(t, c.root, "plugins/testdata/trig", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ct := &clusterTriggers{feed: newCrashFeed(t)}
	ct.stopFeed = ct.feed.produce(50 * time.Millisecond)
	t.Cleanup(ct.stopFeed)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2%len(c.nodes)]
	n1.api.must(201, "POST", "/v1/connectors?activate=true", wasm)
	n2.api.must(201, "POST", "/v1/connections", map[string]any{"id": "feed", "connectors": []string{"trig"},
		"auth": map[string]any{"type": "none"}, "params": map[string]any{"base_url": ct.feed.srv.URL}})
	doc := n3.api.mustJSON(201, "POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
		"params": map[string]any{}, "interval_s": 1, "delivery": map[string]any{"type": "queue"}})
	ct.baseQ, ct.subQ = ct.feed.count(), doc["id"].(string)
	ct.recv = newCrashReceiver(t, "A", func(int64) (int, string) { return 0, "" })
	doc = n1.api.mustJSON(201, "POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
		"params": map[string]any{}, "interval_s": 1, "delivery": map[string]any{"type": "webhook", "url": ct.recv.srv.URL + "/hook"}})
	ct.baseA, ct.subA = ct.feed.count(), doc["id"].(string)
	ct.recv.setSubscription(ct.subA, doc["signing_secret"].(string))

	// The consumer reaches the cluster through a client-side round robin over the nodes that
	// are up, as behind a load balancer.
	api := &crashAPI{t: t}
	ct.puller = &crashPuller{t: t, api: api, sub: ct.subQ}
	ct.stopPull = make(chan struct{})
	ct.pulling.Add(2)
	go func() {
		defer ct.pulling.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			for k := range c.nodes {
				if b, _ := c.nodes[(i+k)%len(c.nodes)].api.base.Load().(string); b != "" {
					api.base.Store(b)
					break
				}
			}
			select {
			case <-ct.stopPull:
				return
			case <-tick.C:
			}
		}
	}()
	go func() { defer ct.pulling.Done(); ct.puller.run(ct.stopPull) }()
	t.Cleanup(ct.stop)
	return ct
}

func (ct *clusterTriggers) stop() {
	select {
	case <-ct.stopPull:
	default:
		close(ct.stopPull)
	}
	ct.pulling.Wait()
}

// check waits until Q and A hold every owed item up to the feed's final count, then checks
// that no item was lost and that every redelivery of an item kept its id.
func (ct *clusterTriggers) check(t *testing.T, c *testCluster, final int64) {
	t.Helper()
	missing := func(ds []crashDelivery, base int64) []int64 {
		have := crashByN(ds)
		var out []int64
		for n := base + 1; n <= final; n++ {
			if len(have[n]) == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing(ct.puller.deliveries(), ct.baseQ)) > 0 || len(missing(ct.recv.deliveries(), ct.baseA)) > 0 {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, sub := range map[string]struct {
		ds   []crashDelivery
		base int64
	}{"Q": {ct.puller.deliveries(), ct.baseQ}, "A": {ct.recv.deliveries(), ct.baseA}} {
		if miss := missing(sub.ds, sub.base); len(miss) > 0 {
			t.Errorf("subscription %s LOST %d of %d items, e.g. %v", name, len(miss), final-sub.base, crashFirst(miss, 20))
		}
		have := crashByN(sub.ds)
		dups := 0
		ids := map[string]int64{}
		for n, ds := range have {
			dups += len(ds) - 1
			for _, d := range ds[1:] {
				if d.ID != ds[0].ID {
					t.Errorf("subscription %s item %d delivered as %s and as %s: one event, two ids", name, n, ds[0].ID, d.ID)
				}
			}
			if prev, ok := ids[ds[0].ID]; ok && prev != n {
				t.Errorf("subscription %s: id %s names items %d and %d", name, ds[0].ID, prev, n)
			}
			ids[ds[0].ID] = n
		}
		t.Logf("subscription %s: %d distinct items of %d owed, %d redeliveries (same id)", name, len(have), final-sub.base, dups)
	}
	for _, p := range ct.puller.problems() {
		if !strings.Contains(p, "store_unavailable") {
			t.Errorf("queue consumer: %s", p)
		}
	}
	for _, p := range ct.recv.stats().problems {
		t.Errorf("push receiver: %s", p)
	}
}

// leader waits until exactly one node, other than skip, polls the one source, as GET
// /v1/cluster on a node that is up says, and returns it. skip's own entry is not counted: the
// failover time measured is the time until another node polls, not until skip's heartbeat
// expires.
func leader(t *testing.T, c *testCluster, skip *clusterNode) *clusterNode {
	t.Helper()
	var found *clusterNode
	waitFor(t, 15*time.Second, "one node polling the source", func() bool {
		for _, nd := range c.nodes {
			st, out, err := nd.api.do("GET", "/v1/cluster", nil)
			if err != nil || st != 200 {
				continue
			}
			var doc clusterDocument
			if json.Unmarshal(out, &doc) != nil {
				continue
			}
			total, name := 0, ""
			for _, n := range doc.Nodes {
				if skip != nil && n.Name == skip.name {
					continue // a killed node stays listed, with its last count, until its heartbeat expires
				}
				total += n.Sources
				if n.Sources == 1 {
					name = n.Name
				}
			}
			if total != 1 || (skip != nil && name == skip.name) {
				return false
			}
			for _, cand := range c.nodes {
				if cand.name == name {
					found = cand
				}
			}
			return found != nil
		}
		return false
	})
	return found
}

// TestClusterPollerFailover: one node polls the source; after kill -9 of that node another
// takes it within 10 s, from the last committed cursor, and no event is lost or delivered
// twice with different ids; the push subscription's deliveries go on from another node.
func TestClusterPollerFailover(t *testing.T) {
	c := startCluster(t, 3)
	ct := setupClusterTriggers(t, c)
	first := leader(t, c, nil)
	waitFor(t, 15*time.Second, "the first deliveries", func() bool {
		return len(ct.puller.deliveries()) > 5 && len(ct.recv.deliveries()) > 5
	})
	killedAt := time.Now()
	c.kill(first)
	next := leader(t, c, first)
	failover := time.Since(killedAt)
	t.Logf("node %s polled the source; after its kill -9, %s took it in %v (lease TTL %v)", first.name, next.name, failover.Round(time.Millisecond), 6*time.Second)
	if failover > 10*time.Second {
		t.Errorf("failover took %v, want within 10 s (API.md)", failover)
	}
	c.start(first)
	time.Sleep(2 * time.Second)
	ct.stopFeed()
	ct.check(t, c, ct.feed.count())
}

// TestClusterChaos runs polls, deliveries, writes and calls across three nodes while nodes
// are killed with SIGKILL and restarted (six kills), then checks that every acknowledged write
// and every upstream event is there.
func TestClusterChaos(t *testing.T) {
	c := startCluster(t, 3)
	ct := setupClusterTriggers(t, c)
	c.nodes[0].api.must(201, "POST", "/v1/connectors?activate=true", clusterPlugin(t, "1.0.0"))
	c.nodes[1].api.must(201, "POST", "/v1/connections", map[string]any{"id": "c1", "connectors": []string{"anymanifest"}, "auth": map[string]any{"type": "none"}})

	// Writers: connections created on whichever node is up; each acknowledged id must survive.
	var acked sync.Map
	var writes, calls, callFailures atomic.Int64
	stopW := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopW:
					return
				default:
				}
				nd := c.nodes[rand.IntN(len(c.nodes))]
				id := fmt.Sprintf("w%d-%d", w, i)
				st, _, err := nd.api.do("POST", "/v1/connections", map[string]any{"id": id, "connectors": []string{"anymanifest"}, "auth": map[string]any{"type": "none"}})
				if err == nil && st == 201 {
					acked.Store(id, true)
					writes.Add(1)
				}
				st, _, err = nd.api.do("POST", "/v1/connectors/anymanifest/actions/echo", map[string]any{"connection": "c1", "input": map[string]any{}})
				calls.Add(1)
				if err == nil && st != 200 {
					callFailures.Add(1)
					t.Logf("call on %s: %d", nd.name, st)
				}
				time.Sleep(30 * time.Millisecond)
			}
		}()
	}

	kills := 0
	for round := range 6 {
		time.Sleep(3 * time.Second)
		var victim *clusterNode
		if round%2 == 0 {
			victim = leader(t, c, nil) // the poller's node, so failover is part of the chaos
		} else {
			victim = c.nodes[rand.IntN(len(c.nodes))]
		}
		c.kill(victim)
		kills++
		t.Logf("kill %d: %s (feed at item %d, %d writes acknowledged)", kills, victim.name, ct.feed.count(), writes.Load())
		time.Sleep(1500 * time.Millisecond)
		c.start(victim)
	}
	time.Sleep(3 * time.Second)
	close(stopW)
	wg.Wait()
	ct.stopFeed()
	final := ct.feed.count()
	ct.check(t, c, final)

	missing := 0
	acked.Range(func(k, _ any) bool {
		for _, nd := range c.nodes {
			if st, _, err := nd.api.do("GET", "/v1/connections/"+k.(string), nil); err != nil || st != 200 {
				missing++
				t.Errorf("acknowledged connection %s: %d on %s (%v)", k, st, nd.name, err)
				return missing < 10
			}
		}
		return true
	})
	t.Logf("%d kills; %d items produced; %d writes acknowledged, all readable on every node; %d calls, %d answered other than 200 (a node dying under a call)",
		kills, final, writes.Load(), calls.Load(), callFailures.Load())
}

// TestClusterTimers: timers set on any node fire once, on one node, also when the node that
// set them dies before they are due.
func TestClusterTimers(t *testing.T) {
	c := startCluster(t, 3)
	wasm, err := os.ReadFile(wasmPlugin(t, c.root, "plugins/testdata/spy", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fired := map[string]int{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/timer-fired" {
			mu.Lock()
			fired[r.URL.Query().Get("name")]++
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	t.Cleanup(upstream.Close)
	c.nodes[0].api.must(201, "POST", "/v1/connectors?activate=true", wasm)
	c.nodes[1].api.must(201, "POST", "/v1/connections", map[string]any{"id": "s", "connectors": []string{"spy"},
		"auth": map[string]any{"type": "api_key", "api_key": "k-123"}, "params": map[string]any{"base_url": upstream.URL}})
	const perNode = 10
	var names []string
	for i, nd := range c.nodes {
		for j := range perNode {
			name := fmt.Sprintf("t-%s-%d", nd.name, j)
			names = append(names, name)
			out := nd.api.mustJSON(200, "POST", "/v1/connectors/spy/actions/timer", map[string]any{"connection": "s",
				"input": map[string]any{"op": "set", "name": name, "delay_ms": 2500 + 100*(i*perNode+j)%1000, "payload": map[string]any{"ping": true}}})
			if o, _ := out["output"].(map[string]any); o == nil || o["error"] != nil {
				t.Fatalf("setting %s on %s: %v", name, nd.name, out)
			}
		}
	}
	// The node that set the first ten dies before any is due.
	c.kill(c.nodes[0])
	waitFor(t, 20*time.Second, "every timer fired", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fired) == len(names)
	})
	time.Sleep(3 * time.Second) // a second firing would come within the timer loop's period
	mu.Lock()
	defer mu.Unlock()
	for _, n := range names {
		if fired[n] != 1 {
			t.Errorf("timer %s fired %d times, want once", n, fired[n])
		}
	}
}
