package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookUpstream is the trig plugin's webhook API (plugins/testdata/trig): POST /subscriptions
// {callback_url, secret, channel} answers {"id"}; renew and delete answer 200 and 204. It keeps
// the callback and secret of the one subscription so the test can deliver as the upstream would.
type hookUpstream struct {
	srv *httptest.Server

	mu               sync.Mutex
	callback, secret string
}

func newHookUpstream(t *testing.T) *hookUpstream {
	h := &hookUpstream{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/subscriptions" && r.Method == http.MethodPost:
			var in map[string]string
			json.NewDecoder(r.Body).Decode(&in)
			h.mu.Lock()
			h.callback, h.secret = in["callback_url"], in["secret"]
			h.mu.Unlock()
			w.WriteHeader(201)
			io.WriteString(w, `{"id":"up-1"}`)
		case strings.HasSuffix(r.URL.Path, "/renew"):
			io.WriteString(w, `{"id":"up-1"}`)
		case r.Method == http.MethodDelete:
			w.WriteHeader(204)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// deliver posts one event to the hook path on base, signed as the trig plugin checks.
func (h *hookUpstream) deliver(t *testing.T, base string, n int) {
	t.Helper()
	h.mu.Lock()
	callback, secret := h.callback, h.secret
	h.mu.Unlock()
	i := strings.Index(callback, "/hooks/")
	if i < 0 {
		t.Fatalf("callback_url %q has no /hooks/ path", callback)
	}
	body := fmt.Appendf(nil, `{"events":[{"id":"item-%d","type":"created","time":%q,"data":{"n":%d}}]}`, n, time.Now().UTC().Format(time.RFC3339Nano), n)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, base+callback[i:], bytes.NewReader(body))
	req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := crashClient.Do(req)
	if err != nil {
		t.Fatalf("delivering item %d to %s: %v", n, base, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("delivering item %d to %s: %d %s, want 202", n, base, resp.StatusCode, b)
	}
}

// pull leases up to max events of a queue subscription on one node.
func pull(t *testing.T, nd *clusterNode, sub string, max, waitS int) []map[string]any {
	t.Helper()
	var page struct {
		Events []map[string]any `json:"events"`
	}
	out := nd.api.must(200, "GET", fmt.Sprintf("/v1/subscriptions/%s/events?max=%d&wait_s=%d", sub, max, waitS), nil)
	if err := json.Unmarshal(out, &page); err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// pullN pulls on nd until n events came (or 20 s passed) and returns them.
func pullN(t *testing.T, nd *clusterNode, sub string, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		got = append(got, pull(t, nd, sub, n-len(got), 2)...)
	}
	if len(got) != n {
		t.Fatalf("pulled %d events of subscription %s on %s, want %d", len(got), sub, nd.name, n)
	}
	return got
}

func eventIDs(evs []map[string]any) []string {
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev["id"].(string))
	}
	slices.Sort(ids)
	return ids
}

func ack(t *testing.T, nd *clusterNode, sub string, ids []string) int {
	t.Helper()
	out := nd.api.mustJSON(200, "POST", "/v1/subscriptions/"+sub+"/events/ack", map[string]any{"ids": ids})
	return int(crashNum(out["acked"]))
}

// deliveries reads a node's plugboard_deliveries_total for the trig connector, by outcome (the
// receiver's status, or "error").
func deliveries(t *testing.T, nd *clusterNode) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	st, body, err := nd.api.do("GET", "/metrics", nil)
	if err != nil || st != 200 {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "plugboard_deliveries_total{") || !strings.Contains(line, `connector="trig"`) {
			continue
		}
		_, labels, _ := strings.Cut(line, `outcome="`)
		outcome, _, _ := strings.Cut(labels, `"`)
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		out[outcome] += v
	}
	return out
}

// TestClusterDelivery checks the delivery rows of API.md "Cluster" across three real nodes:
// a queue lease taken on one node holds on the others and its events come back, with their
// ids, on any node once it runs out; acks count once cluster-wide; a push retry survives the
// death of the node that pushed; /hooks/{token} is accepted by every node.
func TestClusterDelivery(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	wasm, err := os.ReadFile(wasmPlugin(t, c.root, "plugins/testdata/trig", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	feed := newCrashFeed(t)
	n1.api.must(201, "POST", "/v1/connectors?activate=true", wasm)
	n2.api.must(201, "POST", "/v1/connections", map[string]any{"id": "feed", "connectors": []string{"trig"},
		"auth": map[string]any{"type": "none"}, "params": map[string]any{"base_url": feed.srv.URL}})

	// Queue leases. Six items polled into Q; n1 leases all six.
	q := n3.api.mustJSON(201, "POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
		"params": map[string]any{}, "interval_s": 1, "delivery": map[string]any{"type": "queue"}})["id"].(string)
	for range 6 {
		feed.add()
	}
	leased := pullN(t, n1, q, 6)
	leasedAt := time.Now()
	for _, nd := range []*clusterNode{n2, n3} {
		if evs := pull(t, nd, q, 100, 1); len(evs) != 0 {
			t.Errorf("%s pulled %v while n1 holds their lease", nd.name, eventIDs(evs))
		}
	}
	ids := eventIDs(leased)
	if got := ack(t, n2, q, ids[:3]); got != 3 {
		t.Errorf("acking 3 of n1's leased events on n2: acked %d, want 3", got)
	}
	if got := ack(t, n3, q, ids[:3]); got != 0 {
		t.Errorf("acking the same 3 again on n3: acked %d, want 0", got)
	}

	// Push retries. The receiver fails every item's first attempt; the node that made it is
	// killed before the retry (5 s later) is due: another node must make it, with the same id.
	recv := newCrashReceiver(t, "P", func(int64) (int, string) { return 503, "" })
	recv.failing.Store(true)
	doc := n1.api.mustJSON(201, "POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
		"params": map[string]any{}, "interval_s": 1, "delivery": map[string]any{"type": "webhook", "url": recv.srv.URL + "/hook"}})
	p := doc["id"].(string)
	recv.setSubscription(p, doc["signing_secret"].(string))
	feed.add()
	item := feed.count()
	waitFor(t, 20*time.Second, "the first, failing push attempt", func() bool { return recv.stats().failed > 0 })
	var pusher *clusterNode
	waitFor(t, 5*time.Second, "a node counting the failed push", func() bool {
		for _, nd := range c.nodes {
			if deliveries(t, nd)["503"] > 0 {
				pusher = nd
				return true
			}
		}
		return false
	})
	killedAt := time.Now()
	c.kill(pusher)
	waitFor(t, 30*time.Second, "the retried push, from another node", func() bool {
		for _, d := range recv.deliveries() {
			if d.N == item {
				return true
			}
		}
		return false
	})
	st := recv.stats()
	t.Logf("%s made the first attempt of item %d; after its kill -9 the retry arrived %v later (%d requests)",
		pusher.name, item, time.Since(killedAt).Round(time.Millisecond), st.requests)
	var attemptIDs []string
	for _, d := range st.log {
		if d.N == item {
			attemptIDs = append(attemptIDs, d.ID)
		}
	}
	if len(attemptIDs) != 2 || attemptIDs[0] != attemptIDs[1] {
		t.Errorf("item %d attempts had ids %v, want two attempts with one id", item, attemptIDs)
	}
	others := 0.0
	for _, nd := range c.nodes {
		if nd != pusher {
			others += deliveries(t, nd)["204"]
		}
	}
	if others == 0 {
		t.Errorf("no live node counts an ok delivery, yet the receiver accepted item %d", item)
	}
	c.start(pusher)

	// Inbound webhooks: one webhook source; each node accepts a delivery to its hook URL.
	up := newHookUpstream(t)
	n3.api.must(201, "POST", "/v1/connections", map[string]any{"id": "hooks", "connectors": []string{"trig"},
		"auth": map[string]any{"type": "none"}, "params": map[string]any{"base_url": up.srv.URL}})
	h := n2.api.mustJSON(201, "POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "hook", "connection": "hooks",
		"params": map[string]any{"channel": "c"}, "delivery": map[string]any{"type": "queue"}})["id"].(string)
	for i, nd := range c.nodes {
		up.deliver(t, nd.proc.url, 1000+i)
	}
	var hooked []int64
	for _, ev := range pullN(t, n1, h, 3) {
		n, _ := strconv.ParseInt(strings.TrimPrefix(crashStr(ev["source_event_id"]), "item-"), 10, 64)
		if ev["type"] != "trig.hook" || ev["subscription"] != h || !strings.HasPrefix(crashStr(ev["id"]), "evt_") {
			t.Errorf("hook event %v: want type trig.hook, subscription %s, an evt_ id", ev, h)
		}
		hooked = append(hooked, n)
	}
	slices.Sort(hooked)
	if !slices.Equal(hooked, []int64{1000, 1001, 1002}) {
		t.Errorf("hook events %v, want the three delivered to n1, n2 and n3", hooked)
	}

	// The lease n1 took runs out (30 s): the three unacked events come back, with their ids,
	// on another node, with the one item polled since; the acked ones never do.
	time.Sleep(time.Until(leasedAt.Add(31 * time.Second)))
	var back []string
	for _, ev := range pullN(t, n3, q, 4) {
		if n, err := crashCheckEvent(ev, q); err != nil {
			t.Errorf("redelivered event: %v", err)
		} else if n != item {
			back = append(back, ev["id"].(string))
		}
	}
	slices.Sort(back)
	if !slices.Equal(back, ids[3:]) {
		t.Errorf("after n1's lease ran out n3 pulled %v (besides item %d), want the unacked %v", back, item, ids[3:])
	}
	if evs := pull(t, n2, q, 100, 1); len(evs) != 0 {
		t.Errorf("n2 pulled %v after the redelivery: acked or leased events came back", eventIDs(evs))
	}
	if got := ack(t, n1, q, back); got != 3 {
		t.Errorf("acking the redelivered events on n1: acked %d, want 3", got)
	}
}
