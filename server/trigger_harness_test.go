package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/server/trigger"
)

// feed is the fake upstream of the trig test plugin (plugins/testdata/trig): a paged feed of
// items for the poll trigger and a webhook subscription API for the webhook trigger, with
// failures to inject.
type feed struct {
	*httptest.Server
	t testing.TB

	mu        sync.Mutex
	items     []feedItem
	polls     int  // GET ?after= requests
	failNext  int  // the next polls answer 503
	failAll   bool // every poll answers 503
	hooks     map[string]*feedHook
	renewals  int
	deleted   []string // upstream subscription ids deleted
	handshake bool     // subscribe validates the callback with ?validationToken= first
	failDel   int      // the next upstream unsubscribes (DELETE) answer 503
}

type feedItem struct {
	N    int64           `json:"n"`
	ID   string          `json:"id"`
	Type string          `json:"type,omitempty"`
	Time string          `json:"time,omitempty"`
	Data json.RawMessage `json:"data"`
}

type feedHook struct {
	ID, Callback, Secret, Channel string
}

func newFeed(t testing.TB) *feed {
	f := &feed{t: t, hooks: map[string]*feedHook{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// add appends n items and returns them.
func (f *feed) add(n int) []feedItem {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []feedItem
	for range n {
		next := int64(len(f.items) + 1)
		it := feedItem{N: next, ID: fmt.Sprintf("item-%d", next), Type: "created",
			Time: time.Date(2026, 11, 28, 9, 0, int(next%60), 0, time.UTC).Format(time.RFC3339),
			Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"title":"item %d"}`, next, next))}
		f.items = append(f.items, it)
		out = append(out, it)
	}
	return out
}

func (f *feed) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

func (f *feed) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/items" && q.Get("latest") != "":
		if f.failAll {
			http.Error(w, `{"message":"down"}`, http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, 200, map[string]int64{"latest": int64(len(f.items))})
	case r.URL.Path == "/items":
		f.polls++
		if f.failAll || f.failNext > 0 {
			if f.failNext > 0 {
				f.failNext--
			}
			http.Error(w, `{"message":"upstream is down"}`, http.StatusServiceUnavailable)
			return
		}
		after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		var page []feedItem
		more := false
		for _, it := range f.items {
			if it.N > after {
				if len(page) == limit {
					more = true
					break
				}
				page = append(page, it)
			}
		}
		writeJSON(w, 200, map[string]any{"items": page, "more": more})
	case r.URL.Path == "/subscriptions" && r.Method == http.MethodPost:
		var in struct{ Callback_URL, Secret, Channel string }
		b, _ := io.ReadAll(r.Body)
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		in.Callback_URL, in.Secret, in.Channel = m["callback_url"], m["secret"], m["channel"]
		if f.handshake {
			// Microsoft Graph style: the callback must echo a token before the subscription
			// exists. Called without the lock, as the server answers through the plugin.
			f.mu.Unlock()
			resp, err := http.Get(in.Callback_URL + "?validationToken=tok-123")
			f.mu.Lock()
			if err != nil {
				http.Error(w, "validation failed: "+err.Error(), 400)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "tok-123" {
				http.Error(w, fmt.Sprintf("validation failed: %d %q", resp.StatusCode, body), 400)
				return
			}
		}
		id := fmt.Sprintf("up-%d", len(f.hooks)+len(f.deleted)+1)
		f.hooks[id] = &feedHook{ID: id, Callback: in.Callback_URL, Secret: in.Secret, Channel: in.Channel}
		writeJSON(w, 201, map[string]string{"id": id})
	case strings.HasSuffix(r.URL.Path, "/renew") && r.Method == http.MethodPost:
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/subscriptions/"), "/renew")
		if f.hooks[id] == nil {
			http.Error(w, `{"message":"no such subscription"}`, 404)
			return
		}
		f.renewals++
		writeJSON(w, 200, map[string]string{"id": id})
	case strings.HasPrefix(r.URL.Path, "/subscriptions/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(r.URL.Path, "/subscriptions/")
		if f.failDel > 0 {
			f.failDel--
			http.Error(w, `{"message":"try again later"}`, http.StatusServiceUnavailable)
			return
		}
		delete(f.hooks, id)
		f.deleted = append(f.deleted, id)
		w.WriteHeader(204)
	default:
		http.NotFound(w, r)
	}
}

// hook returns the one upstream webhook registration.
func (f *feed) hook() *feedHook {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.hooks) != 1 {
		f.t.Fatalf("upstream has %d webhook registrations, want 1", len(f.hooks))
	}
	for _, h := range f.hooks {
		return h
	}
	return nil
}

// send delivers events to a registration's callback as the upstream would, signed with its
// secret (or with a wrong one when forge is set); it returns the answer's status and body.
func (f *feed) send(h *feedHook, forge bool, items ...feedItem) (int, string) {
	f.t.Helper()
	return f.sendBody(h, forge, map[string]any{"events": items})
}

// sendBody delivers doc, signed as send signs it.
func (f *feed) sendBody(h *feedHook, forge bool, doc map[string]any) (int, string) {
	f.t.Helper()
	body, _ := json.Marshal(doc)
	key := h.Secret
	if forge {
		key = "not-the-secret"
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, h.Callback, bytes.NewReader(body))
	req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("delivering to %s: %v", h.Callback, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// receiver is a push subscriber: it verifies Standard Webhooks signatures with the secret it is
// given, records verified deliveries, and answers what the test scripts.
type receiver struct {
	*httptest.Server
	t testing.TB

	mu       sync.Mutex
	secret   string
	got      []map[string]any // verified deliveries, in arrival order
	headers  []http.Header
	bad      int // deliveries whose signature did not verify
	script   []int
	retryAft string
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{t: t}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

// answer makes the next deliveries get these statuses (then 204).
func (rc *receiver) answer(statuses ...int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.script = append(rc.script, statuses...)
}

func (rc *receiver) setSecret(s string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secret = s
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	status := http.StatusNoContent
	if len(rc.script) > 0 {
		status, rc.script = rc.script[0], rc.script[1:]
	}
	if status/100 != 2 {
		if rc.retryAft != "" {
			w.Header().Set("Retry-After", rc.retryAft)
		}
		w.WriteHeader(status)
		return
	}
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	want, _ := trigger.SignWebhook(rc.secret, id, mustAtoi(ts), body)
	if rc.secret == "" || !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m["id"] != id {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.got = append(rc.got, m)
	rc.headers = append(rc.headers, r.Header.Clone())
	w.WriteHeader(status)
}

func mustAtoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// events returns the verified deliveries so far.
func (rc *receiver) events() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.got...)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// triggerServer starts a server with a fast scheduler, the trig plugin and a connection to f.
func triggerServer(t testing.TB, f *feed, edit func(*Options)) *testServer {
	t.Helper()
	ts := startServer(t, func(o *Options) {
		o.Triggers.Tick = 20 * time.Millisecond
		if edit != nil {
			edit(o)
		}
	})
	ts.must(201, ts.upload("trig"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{"id": "feed", "connectors": []string{"trig"},
		"auth": map[string]any{"type": "none"}, "params": map[string]any{"base_url": f.URL}}))
	return ts
}

// subscribe creates a subscription and returns its document.
func (ts *testServer) subscribe(trigger string, params map[string]any, delivery map[string]any) map[string]any {
	ts.t.Helper()
	body := map[string]any{"connector": "trig", "trigger": trigger, "connection": "feed", "params": params, "delivery": delivery}
	if trigger == "items" {
		body["interval_s"] = 1
	}
	return ts.must(201, ts.do("POST", "/v1/subscriptions", body)).json(ts.t)
}

// pushTo subscribes rc by push and gives it the signing secret.
func (ts *testServer) pushTo(rc *receiver, trigger string, params map[string]any) map[string]any {
	ts.t.Helper()
	doc := ts.subscribe(trigger, params, map[string]any{"type": "webhook", "url": rc.URL + "/hook"})
	secret, _ := doc["signing_secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		ts.t.Fatalf("signing_secret = %q, want whsec_...", secret)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_")); err != nil {
		ts.t.Fatalf("signing secret is not base64: %v", err)
	}
	rc.setSecret(secret)
	return doc
}

// pull leases events of a queue subscription.
func (ts *testServer) pull(sub string, query string) []map[string]any {
	ts.t.Helper()
	var out struct {
		Events []map[string]any `json:"events"`
	}
	r := ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub+"/events?"+query, nil))
	if err := json.Unmarshal(r.Body, &out); err != nil {
		ts.t.Fatal(err)
	}
	return out.Events
}

func (ts *testServer) ack(sub string, ids ...string) int {
	ts.t.Helper()
	r := ts.must(200, ts.do("POST", "/v1/subscriptions/"+sub+"/events/ack", map[string]any{"ids": ids}))
	return int(r.json(ts.t)["acked"].(float64))
}

// drain pulls and acks until want events arrived, returning them in order.
func (ts *testServer) drain(sub string, want int, d time.Duration) []map[string]any {
	ts.t.Helper()
	var got []map[string]any
	deadline := time.Now().Add(d)
	for len(got) < want {
		if time.Now().After(deadline) {
			ts.t.Fatalf("queue %s: %d events after %s, want %d", sub, len(got), d, want)
		}
		evs := ts.pull(sub, "max=100&wait_s=1")
		var ids []string
		for _, e := range evs {
			ids = append(ids, e["id"].(string))
		}
		if len(ids) > 0 {
			ts.ack(sub, ids...)
		}
		got = append(got, evs...)
	}
	return got
}

// checkEvents asserts that delivered events are exactly the items, in order, wrapped as ABI.md
// "Delivered events" says.
func checkEvents(t testing.TB, sub string, got []map[string]any, items []feedItem) {
	t.Helper()
	if len(got) != len(items) {
		t.Fatalf("subscription %s got %d events, want %d", sub, len(got), len(items))
	}
	seen := map[string]bool{}
	for i, e := range got {
		it := items[i]
		data, _ := json.Marshal(e["data"])
		if e["source_event_id"] != it.ID || e["type"] != "trig.items" && e["type"] != "trig.hook" || e["event_type"] != it.Type ||
			e["subscription"] != sub || e["timestamp"] != it.Time || string(data) != string(it.Data) {
			t.Fatalf("subscription %s event %d = %v, want item %+v", sub, i, e, it)
		}
		id, _ := e["id"].(string)
		if !strings.HasPrefix(id, "evt_") || seen[id] {
			t.Fatalf("subscription %s event %d has id %q (duplicate or malformed)", sub, i, id)
		}
		seen[id] = true
	}
}
