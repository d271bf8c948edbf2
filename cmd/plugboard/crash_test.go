package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashDuringFailingDeliveries is issue 6's "must hold" against the real binary: SIGKILL the
// server while a poll source is producing, one push subscriber (B) is failing and waiting for
// its retry, another (A) is working through its backlog with a push most likely in flight, and
// the queue subscriber (Q) holds leases it has not acknowledged; restart it on the same data
// directory while the feed keeps producing. Afterwards every item the feed produced after a
// subscription's 201 reached that subscription at least once (duplicates are allowed, counted
// and logged), with the same delivered id on every redelivery and a valid Standard Webhooks
// signature on every push, nothing is pending, and the push subscription deleted before the
// crash (C, deleted while it was draining its own retried backlog) got nothing produced after
// its deletion and no push after the DELETE answered, before or after the restart.
//
// The binary's push retry schedule is API.md's (5 s, then 5 min): the receivers fail only the
// first attempt of an event, so every retry happens 5 s later and succeeds. Q's unacknowledged
// leases come back after 30 s, so the test takes about a minute.
func TestCrashDuringFailingDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and a plugin and kills the server; run without -short")
	}
	root, bin := plugboardBinary(t)
	tmp := t.TempDir()
	wasm, err := os.ReadFile(wasmPlugin(t, root, "plugins/testdata/trig", tmp))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "var")
	testStart := time.Now()

	// The upstream feed keeps producing for the whole test, across the kill and the restart.
	feed := newCrashFeed(t)
	stopFeed := feed.produce(50 * time.Millisecond)
	defer stopFeed()

	api := &crashAPI{t: t}
	srv1 := startCrashServe(t, bin, data)
	api.base.Store(srv1.url)
	logs := []*crashServe{srv1}
	defer func() {
		if t.Failed() {
			for i, s := range logs {
				t.Logf("server log (run %d):\n%s", i+1, crashTail(s.stderr.String(), 200))
			}
		}
	}()

	api.must(201, "POST", "/v1/connectors", wasm)
	api.must(201, "POST", "/v1/connections", map[string]any{"id": "feed", "connectors": []string{"trig"},
		"auth": map[string]any{"type": "none"}, "params": map[string]any{"base_url": feed.srv.URL}})

	// Receivers, scripted to fail until the crash. B fails (503, Retry-After: 1) the first
	// attempt of every item. A fails (500) the first attempt of every fifth item until C is
	// deleted, then works through its backlog slowly (100 ms an answer), so the kill most likely
	// lands in the middle of a push to A. C fails its first push (503, Retry-After: 1), then
	// drains slowly (100 ms an answer); it is deleted in the middle of that, with a push in
	// flight most likely.
	recvA := newCrashReceiver(t, "A", func(n int64) (int, string) {
		if n%5 == 0 {
			return http.StatusInternalServerError, ""
		}
		return 0, ""
	})
	recvB := newCrashReceiver(t, "B", func(int64) (int, string) { return http.StatusServiceUnavailable, "1" })
	var cFailed atomic.Bool
	recvC := newCrashReceiver(t, "C", func(int64) (int, string) {
		if !cFailed.Swap(true) {
			return http.StatusServiceUnavailable, "1"
		}
		return 0, ""
	})
	recvC.slow.Store(int64(100 * time.Millisecond))
	for _, rc := range []*crashReceiver{recvA, recvB, recvC} {
		rc.failing.Store(true)
	}

	// Subscriptions; base is the feed's last item when the 201 arrived: every later item is
	// owed to the subscription.
	base := map[string]int64{}
	subscribe := func(name string, delivery map[string]any, rc *crashReceiver) string {
		doc := api.mustJSON(201, "POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
			"params": map[string]any{}, "interval_s": 1, "delivery": delivery})
		base[name] = feed.count()
		id, _ := doc["id"].(string)
		if !strings.HasPrefix(id, "sub_") {
			t.Fatalf("subscription %s: id %q", name, id)
		}
		if rc != nil {
			secret, _ := doc["signing_secret"].(string)
			if !strings.HasPrefix(secret, "whsec_") {
				t.Fatalf("subscription %s: signing_secret %q, want whsec_...", name, secret)
			}
			rc.setSubscription(id, secret)
		}
		return id
	}
	subA := subscribe("A", map[string]any{"type": "webhook", "url": recvA.srv.URL + "/hook"}, recvA)
	subB := subscribe("B", map[string]any{"type": "webhook", "url": recvB.srv.URL + "/hook"}, recvB)
	subQ := subscribe("Q", map[string]any{"type": "queue"}, nil)
	subC := subscribe("C", map[string]any{"type": "webhook", "url": recvC.srv.URL + "/hook"}, recvC)
	t.Logf("subscriptions: A %s (base item %d), B %s (base %d), Q %s (base %d), C %s (base %d)",
		subA, base["A"], subB, base["B"], subQ, base["Q"], subC, base["C"])

	// The queue consumer pulls and acks; before the crash it leaves every other batch
	// unacknowledged (its leases expire after 30 s), and every batch of the last moments.
	puller := &crashPuller{t: t, api: api, sub: subQ}
	puller.flaky.Store(true)
	pullDone := make(chan struct{})
	stopPull := make(chan struct{})
	go func() { defer close(pullDone); puller.run(stopPull) }()
	defer func() {
		select {
		case <-stopPull:
		default:
			close(stopPull)
		}
		<-pullDone
	}()

	// Let deliveries fail and retry; delete C once its retry went through and it is draining
	// its backlog.
	for deadline := time.Now().Add(20 * time.Second); len(recvC.deliveries()) < 5; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("C got %d deliveries in 20 s", len(recvC.deliveries()))
		}
	}
	delStart := feed.count()
	api.must(204, "DELETE", "/v1/subscriptions/"+subC, nil)
	deletedAt := time.Now()
	delCount := feed.count()
	recvA.failing.Store(false)
	recvA.slow.Store(int64(100 * time.Millisecond))
	t.Logf("deleted C at +%s, feed at item %d (%d when the DELETE was sent); C had %d verified deliveries, %d requests, %d in flight",
		deletedAt.Sub(testStart).Round(time.Millisecond), delCount, delStart, len(recvC.deliveries()), recvC.requests(), recvC.inflight.Load())

	// Keep failing a few seconds more; kill once B waits for a retry and the consumer holds
	// leases it has not acknowledged.
	time.Sleep(3 * time.Second)
	puller.holdAcks.Store(true)
	time.Sleep(1500 * time.Millisecond)
	deadline := time.Now().Add(8 * time.Second)
	for {
		doc := api.mustJSON(200, "GET", "/v1/subscriptions/"+subB, nil)
		next, _ := time.Parse(time.RFC3339Nano, crashStr(crashPath(doc, "push", "next_attempt_at")))
		// B failed a couple of seconds ago and waits ~1-3 s more: A, whose retries fall at
		// about the same times, has been pushing a window of its backlog since.
		if wait := time.Until(next); wait > 800*time.Millisecond && wait < 3*time.Second && crashNum(crashPath(doc, "counts", "pending")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B never waited for a retry before the crash: %v", doc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	docsAt := time.Now()
	docA := api.mustJSON(200, "GET", "/v1/subscriptions/"+subA, nil)
	docB := api.mustJSON(200, "GET", "/v1/subscriptions/"+subB, nil)
	docQ := api.mustJSON(200, "GET", "/v1/subscriptions/"+subQ, nil)
	killCount := feed.count()
	inflightA := recvA.inflight.Load()
	killedAt := time.Now()
	srv1.kill(t)
	t.Logf("documents read from kill%+.3fs; the process was gone kill%+.3fs", docsAt.Sub(killedAt).Seconds(), time.Since(killedAt).Seconds())
	api.base.Store("")
	recvA.slow.Store(0)
	t.Logf("SIGKILL at +%s, feed at item %d; pending: A %v (push %v), B %v (push %v), Q %v; queue batches left unacked: %d",
		killedAt.Sub(testStart).Round(time.Millisecond), killCount,
		crashPath(docA, "counts", "pending"), docA["push"], crashPath(docB, "counts", "pending"), docB["push"],
		crashPath(docQ, "counts", "pending"), puller.unacked.Load())
	crashCheckRetrying(t, "B", docB)
	t.Logf("A had %d push(es) in flight at the kill (it was draining its backlog, last push state %v)", inflightA, docA["push"])

	// After the crash every receiver succeeds and the consumer acks everything.
	for _, rc := range []*crashReceiver{recvA, recvB, recvC} {
		rc.failing.Store(false)
	}
	puller.flaky.Store(false)
	puller.holdAcks.Store(false)
	time.Sleep(500 * time.Millisecond) // the feed produces while the server is down
	srv2 := startCrashServe(t, bin, data)
	logs = append(logs, srv2)
	restartedAt := time.Now()
	api.base.Store(srv2.url)
	t.Logf("restarted at +%s (down %s), feed at item %d", restartedAt.Sub(testStart).Round(time.Millisecond),
		restartedAt.Sub(killedAt).Round(time.Millisecond), feed.count())

	// Produce a while longer, then stop and wait for the last items.
	time.Sleep(6 * time.Second)
	stopFeed()
	stoppedAt := time.Now()
	final := feed.count()
	t.Logf("feed stopped at +%s after %d items", stoppedAt.Sub(testStart).Round(time.Millisecond), final)

	got := func(name string) map[int64][]crashDelivery {
		switch name {
		case "A":
			return crashByN(recvA.deliveries())
		case "B":
			return crashByN(recvB.deliveries())
		}
		return crashByN(puller.deliveries())
	}
	missing := func(name string) []int64 {
		have := got(name)
		var out []int64
		for n := base[name] + 1; n <= final; n++ {
			if len(have[n]) == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	// Wait until A, B and Q have every owed item and nothing is pending: the last pushes are
	// recorded and the consumer has acked everything, including the batches whose leases were
	// left to expire (30 s) before the crash.
	var endDocs map[string]map[string]any
	var drainedAt time.Time
	caughtUp := time.Now().Add(70 * time.Second)
	for {
		done := len(missing("A")) == 0 && len(missing("B")) == 0 && len(missing("Q")) == 0
		if done && drainedAt.IsZero() {
			drainedAt = time.Now()
		}
		endDocs = map[string]map[string]any{}
		for name, id := range map[string]string{"A": subA, "B": subB, "Q": subQ} {
			endDocs[name] = api.mustJSON(200, "GET", "/v1/subscriptions/"+id, nil)
			done = done && crashNum(crashPath(endDocs[name], "counts", "pending")) == 0
		}
		if done || time.Now().After(caughtUp) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	settledAt := time.Now()
	api.must(404, "GET", "/v1/subscriptions/"+subC, nil)
	time.Sleep(time.Second) // a late push to C would show now
	close(stopPull)
	<-pullDone

	// --- Assertions ---
	produced := feed.snapshot()
	if int64(len(produced)) != final {
		t.Fatalf("feed holds %d items, counted %d", len(produced), final)
	}
	t.Logf("events produced: %d in all; owed to A %d, B %d, Q %d (items after each subscription's 201); %d produced while the server was down",
		final, final-base["A"], final-base["B"], final-base["Q"], feed.countAt(restartedAt)-killCount)
	for _, name := range []string{"A", "B", "Q"} {
		have := got(name)
		miss := missing(name)
		if len(miss) > 0 {
			t.Errorf("subscription %s LOST %d of %d items, e.g. %v (first owed item %d, last %d)", name, len(miss), final-base[name], crashFirst(miss, 20), base[name]+1, final)
		}
		var total, dups, dupItems int
		var early int
		for n, ds := range have {
			total += len(ds)
			if len(ds) > 1 {
				dups += len(ds) - 1
				dupItems++
			}
			if n <= base[name] {
				early++
			}
			for _, d := range ds[1:] {
				if d.ID != ds[0].ID {
					t.Errorf("subscription %s item %d delivered with id %s, then %s: the delivered id must stay the same", name, n, ds[0].ID, d.ID)
				}
			}
		}
		ids := map[string]int64{}
		for n, ds := range have {
			if prev, ok := ids[ds[0].ID]; ok && prev != n {
				t.Errorf("subscription %s: delivered id %s names items %d and %d", name, ds[0].ID, prev, n)
			}
			ids[ds[0].ID] = n
		}
		// Catch-up: when the last item produced before the kill first arrived, after the restart.
		var lastBeforeKill time.Time
		for n := base[name] + 1; n <= killCount; n++ {
			if ds := have[n]; len(ds) > 0 && ds[0].At.After(lastBeforeKill) {
				lastBeforeKill = ds[0].At
			}
		}
		catchUp := "already delivered before the kill"
		if lastBeforeKill.After(restartedAt) {
			catchUp = lastBeforeKill.Sub(restartedAt).Round(time.Millisecond).String() + " after the restart"
		}
		var lastAll time.Time
		for _, ds := range have {
			lastAll = crashMaxTime(lastAll, ds[0].At)
		}
		var dupLog []string
		for n := base[name] - 10; n <= final; n++ {
			if ds := have[n]; len(ds) > 1 {
				var at []string
				for _, d := range ds {
					at = append(at, crashRel(d.At, killedAt, restartedAt))
				}
				dupLog = append(dupLog, fmt.Sprintf("item %d (%s)", n, strings.Join(at, ", ")))
			}
		}
		if len(dupLog) > 0 {
			t.Logf("subscription %s duplicates (first arrival, later ones), %d items, first 10: %s", name, len(dupLog), strings.Join(crashFirst(dupLog, 10), "; "))
		}
		t.Logf("subscription %s: %d deliveries of %d distinct items (%d owed, %d missing, %d before its base), %d duplicates over %d items; items produced before the kill all in: %s; last item in %s after the feed stopped; counts %v",
			name, total, len(have), final-base[name], len(miss), early, dups, dupItems, catchUp,
			lastAll.Sub(stoppedAt).Round(time.Millisecond), endDocs[name]["counts"])
		if p := crashNum(crashPath(endDocs[name], "counts", "pending")); p != 0 {
			t.Errorf("subscription %s: counts.pending = %v at the end, want 0 (%v)", name, p, endDocs[name]["counts"])
		}
	}
	t.Logf("push order (first arrivals out of item order): A %d, B %d", crashOutOfOrder(recvA.deliveries()), crashOutOfOrder(recvB.deliveries()))
	t.Logf("queue consumer: %d pulls, %d events pulled, %d acked, %d batches left unacked on purpose", puller.pulls.Load(),
		len(puller.deliveries()), puller.acked.Load(), puller.unacked.Load())
	for _, rc := range []*crashReceiver{recvA, recvB, recvC} {
		st := rc.stats()
		t.Logf("receiver %s: %d requests, %d failed on purpose, %d verified deliveries", rc.name, st.requests, st.failed, st.accepted)
		for _, p := range st.problems {
			t.Errorf("receiver %s: %s", rc.name, p)
		}
	}
	if errs := puller.problems(); len(errs) > 0 {
		for _, p := range errs {
			t.Errorf("queue consumer: %s", p)
		}
	}

	// C: nothing produced after its deletion, no push after the DELETE answered, none after the
	// restart.
	cst := recvC.stats()
	for _, r := range cst.log {
		switch {
		case r.N > delCount:
			t.Errorf("C (deleted at item %d) got item %d at +%s: delivered to a deleted subscription", delCount, r.N, r.At.Sub(testStart).Round(time.Millisecond))
		case r.At.After(restartedAt):
			t.Errorf("C got item %d at +%s, after the restart: its deletion did not survive the crash", r.N, r.At.Sub(testStart).Round(time.Millisecond))
		case r.At.After(deletedAt.Add(250 * time.Millisecond)):
			t.Errorf("C got item %d at +%s, %s after its DELETE answered", r.N, r.At.Sub(testStart).Round(time.Millisecond), r.At.Sub(deletedAt).Round(time.Millisecond))
		}
	}
	var clog []string
	for _, r := range cst.log {
		clog = append(clog, fmt.Sprintf("item %d at +%s", r.N, r.At.Sub(testStart).Round(time.Millisecond)))
	}
	t.Logf("C: %d requests (%d failed on purpose, %d accepted): %s; deleted at +%s (item %d)", len(cst.log), cst.failed, cst.accepted,
		strings.Join(clog, ", "), deletedAt.Sub(testStart).Round(time.Millisecond), delCount)
	t.Logf("runtime %s (server down %s; every owed item in %s and nothing pending %s after the feed stopped)", time.Since(testStart).Round(time.Millisecond),
		restartedAt.Sub(killedAt).Round(time.Millisecond), drainedAt.Sub(stoppedAt).Round(time.Millisecond), settledAt.Sub(stoppedAt).Round(time.Millisecond))

	srv2.stop(t)
}

// crashCheckRetrying logs whether a push subscription was waiting for a retry when the server
// was killed.
func crashCheckRetrying(t *testing.T, name string, doc map[string]any) {
	next, err := time.Parse(time.RFC3339Nano, crashStr(crashPath(doc, "push", "next_attempt_at")))
	if err == nil && next.After(time.Now()) {
		t.Logf("%s was waiting for a retry at the kill (next attempt in %s, last status %v)", name, time.Until(next).Round(time.Millisecond), crashPath(doc, "push", "last_status"))
	} else {
		t.Logf("%s was not waiting for a retry at the kill", name)
	}
}

const crashToken = "pba_crash_test"

// crashServe is one `plugboard serve` process.
type crashServe struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	done   chan struct{}
}

func startCrashServe(t *testing.T, bin, data string) *crashServe {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data", data, "--egress-allow", "127.0.0.0/8")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PLUGBOARD_ADMIN_TOKEN="+crashToken)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &crashServe{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
	})
	s.url = waitForURL(t, stdout)
	return s
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *crashServe) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not die within 10 s of SIGKILL")
	}
}

// stop asks for a graceful shutdown (SIGINT).
func (s *crashServe) stop(t *testing.T) {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Error("the server did not stop within 30 s of SIGINT")
		s.cmd.Process.Kill()
		<-s.done
	}
}

// crashAPI calls the server's API with the admin token; base is "" while the server is down.
type crashAPI struct {
	t    *testing.T
	base atomic.Value // string
}

// crashClient bounds every request of the crash and cluster tests. An upload with
// ?activate=true may take its compilation plus the 10 s a cluster swap may wait, on a loaded
// machine; a request to a killed node fails at once whatever the bound.
var crashClient = &http.Client{Timeout: 60 * time.Second}

func (a *crashAPI) do(method, path string, body any) (int, []byte, error) {
	base, _ := a.base.Load().(string)
	if base == "" {
		return 0, nil, fmt.Errorf("the server is down")
	}
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/wasm"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "Bearer "+crashToken)
	resp, err := crashClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

func (a *crashAPI) must(status int, method, path string, body any) []byte {
	a.t.Helper()
	code, out, err := a.do(method, path, body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != status {
		a.t.Fatalf("%s %s: %d, want %d: %s", method, path, code, status, out)
	}
	return out
}

func (a *crashAPI) mustJSON(status int, method, path string, body any) map[string]any {
	a.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.must(status, method, path, body), &m); err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return m
}

// crashFeed is the trig plugin's upstream feed (plugins/testdata/trig): GET /items?latest=1
// answers {"latest": N}; GET /items?after=N&limit=K answers {"items": [...], "more": bool}.
type crashFeed struct {
	srv *httptest.Server

	mu    sync.Mutex
	items []crashItem
	times []time.Time // production time of each item
}

type crashItem struct {
	N    int64           `json:"n"`
	ID   string          `json:"id"`
	Type string          `json:"type,omitempty"`
	Time string          `json:"time,omitempty"`
	Data json.RawMessage `json:"data"`
}

func newCrashFeed(t *testing.T) *crashFeed {
	f := &crashFeed{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// produce appends an item every interval until the returned stop is called (idempotent).
func (f *crashFeed) produce(every time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tk.C:
				f.add()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}

func (f *crashFeed) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(len(f.items) + 1)
	now := time.Now().UTC()
	f.items = append(f.items, crashItem{N: n, ID: fmt.Sprintf("item-%d", n), Type: "created", Time: now.Format(time.RFC3339Nano),
		Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"title":"item %d"}`, n, n))})
	f.times = append(f.times, now)
}

func (f *crashFeed) count() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.items))
}

// countAt is how many items existed at a time.
func (f *crashFeed) countAt(at time.Time) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := slices.BinarySearchFunc(f.times, at, func(a, b time.Time) int { return a.Compare(b) })
	return int64(n)
}

func (f *crashFeed) snapshot() []crashItem {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.items)
}

func (f *crashFeed) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/items" && q.Get("latest") != "":
		json.NewEncoder(w).Encode(map[string]int64{"latest": int64(len(f.items))})
	case r.URL.Path == "/items":
		after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		page := []crashItem{}
		more := false
		for _, it := range f.items[min(int(max(after, 0)), len(f.items)):] {
			if len(page) == limit {
				more = true
				break
			}
			page = append(page, it)
		}
		json.NewEncoder(w).Encode(map[string]any{"items": page, "more": more})
	default:
		http.NotFound(w, r)
	}
}

// crashDelivery is one delivery of an item to a subscriber.
type crashDelivery struct {
	N  int64
	ID string // the delivered event id
	At time.Time
}

// crashCheckEvent checks a delivered event (ABI.md "Delivered events") and returns its item
// number.
func crashCheckEvent(ev map[string]any, sub string) (int64, error) {
	seid, _ := ev["source_event_id"].(string)
	n, err := strconv.ParseInt(strings.TrimPrefix(seid, "item-"), 10, 64)
	if err != nil || !strings.HasPrefix(seid, "item-") {
		return 0, fmt.Errorf("source_event_id %q", seid)
	}
	id, _ := ev["id"].(string)
	d, _ := ev["data"].(map[string]any)
	switch {
	case !strings.HasPrefix(id, "evt_"):
		return n, fmt.Errorf("item %d: id %q", n, id)
	case ev["type"] != "trig.items" || ev["event_type"] != "created":
		return n, fmt.Errorf("item %d: type %v, event_type %v", n, ev["type"], ev["event_type"])
	case ev["subscription"] != sub:
		return n, fmt.Errorf("item %d: subscription %v, want %s", n, ev["subscription"], sub)
	case d == nil || crashNum(d["n"]) != float64(n):
		return n, fmt.Errorf("item %d: data %v", n, ev["data"])
	}
	if _, err := time.Parse(time.RFC3339Nano, crashStr(ev["timestamp"])); err != nil {
		return n, fmt.Errorf("item %d: timestamp %v", n, ev["timestamp"])
	}
	return n, nil
}

// crashReceiver is a push subscriber: it verifies every request's Standard Webhooks signature,
// fails the first attempt of an item as its policy says while failing is set, and records the
// deliveries it accepts.
type crashReceiver struct {
	name     string
	srv      *httptest.Server
	policy   func(n int64) (status int, retryAfter string)
	failing  atomic.Bool
	slow     atomic.Int64 // wait before answering an accepted push (a time.Duration)
	inflight atomic.Int64 // accepted pushes not answered yet

	ready  chan struct{} // closed once the subscription and secret are known
	mu     sync.Mutex
	sub    string
	key    []byte
	seen   map[string]bool // delivered ids attempted at least once
	got    []crashDelivery
	log    []crashDelivery // every request, accepted or not
	failed int
	probs  []string
}

func newCrashReceiver(t *testing.T, name string, policy func(int64) (int, string)) *crashReceiver {
	rc := &crashReceiver{name: name, policy: policy, ready: make(chan struct{}), seen: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *crashReceiver) setSubscription(sub, secret string) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	rc.mu.Lock()
	rc.sub, rc.key = sub, key
	if err != nil {
		rc.probs = append(rc.probs, fmt.Sprintf("signing secret is not base64: %v", err))
	}
	rc.mu.Unlock()
	close(rc.ready)
}

func (rc *crashReceiver) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// A push can come before the test read the 201 that holds the secret.
	select {
	case <-rc.ready:
	case <-time.After(10 * time.Second):
	}
	rc.mu.Lock()
	problem := func(format string, args ...any) {
		rc.probs = append(rc.probs, fmt.Sprintf(format, args...))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent) // never wedge the queue: the problem fails the test
	}
	id, ts, sigs := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		problem("webhook-timestamp %q", ts)
		return
	}
	if d := at.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		problem("webhook-timestamp %s is %s off", ts, d)
		return
	}
	mac := hmac.New(sha256.New, rc.key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if rc.key == nil || !slices.Contains(strings.Fields(sigs), want) {
		problem("signature %q does not verify for webhook-id %s", sigs, id)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		problem("body is not JSON: %v", err)
		return
	}
	if ev["id"] != id {
		problem("body id %v, webhook-id %s", ev["id"], id)
		return
	}
	n, err := crashCheckEvent(ev, rc.sub)
	if err != nil {
		problem("%v", err)
		return
	}
	d := crashDelivery{N: n, ID: id, At: at}
	rc.log = append(rc.log, d)
	first := !rc.seen[id]
	rc.seen[id] = true
	failing := rc.failing.Load()
	if failing && first {
		if status, retryAfter := rc.policy(n); status != 0 {
			rc.failed++
			rc.mu.Unlock()
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(status)
			return
		}
	}
	rc.got = append(rc.got, d)
	rc.mu.Unlock()
	if slow := time.Duration(rc.slow.Load()); slow > 0 {
		rc.inflight.Add(1)
		time.Sleep(slow)
		rc.inflight.Add(-1)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *crashReceiver) deliveries() []crashDelivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *crashReceiver) requests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.log)
}

type crashReceiverStats struct {
	requests, failed, accepted int
	problems                   []string
	log                        []crashDelivery
}

func (rc *crashReceiver) stats() crashReceiverStats {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return crashReceiverStats{len(rc.log), rc.failed, len(rc.got), slices.Clone(rc.probs), slices.Clone(rc.log)}
}

// crashPuller is the queue subscriber: it pulls and acks, leaving batches unacknowledged while
// flaky (every other batch) or holdAcks (every batch) is set.
type crashPuller struct {
	t        *testing.T
	api      *crashAPI
	sub      string
	flaky    atomic.Bool
	holdAcks atomic.Bool
	pulls    atomic.Int64
	acked    atomic.Int64
	unacked  atomic.Int64

	mu    sync.Mutex
	got   []crashDelivery
	probs []string
}

func (p *crashPuller) run(stop chan struct{}) {
	batches := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		code, out, err := p.api.do("GET", "/v1/subscriptions/"+p.sub+"/events?max=100&wait_s=2", nil)
		if err != nil || code != 200 {
			if err == nil {
				p.problem("pull: %d %s", code, out)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		p.pulls.Add(1)
		var page struct {
			Events []map[string]any `json:"events"`
		}
		if err := json.Unmarshal(out, &page); err != nil {
			p.problem("pull: %v: %s", err, out)
			continue
		}
		if len(page.Events) == 0 {
			continue
		}
		at := time.Now()
		var ids []string
		p.mu.Lock()
		for _, ev := range page.Events {
			n, err := crashCheckEvent(ev, p.sub)
			if err != nil {
				p.probs = append(p.probs, err.Error())
				continue
			}
			id := ev["id"].(string)
			p.got = append(p.got, crashDelivery{N: n, ID: id, At: at})
			ids = append(ids, id)
		}
		p.mu.Unlock()
		batches++
		if p.holdAcks.Load() || p.flaky.Load() && batches%2 == 1 {
			p.unacked.Add(1)
			continue
		}
		code, out, err = p.api.do("POST", "/v1/subscriptions/"+p.sub+"/events/ack", map[string]any{"ids": ids})
		if err == nil && code == 200 {
			var res struct{ Acked int64 }
			json.Unmarshal(out, &res)
			p.acked.Add(res.Acked)
		} else if err == nil {
			p.problem("ack: %d %s", code, out)
		}
	}
}

func (p *crashPuller) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probs = append(p.probs, fmt.Sprintf(format, args...))
}

func (p *crashPuller) deliveries() []crashDelivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func (p *crashPuller) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.probs)
}

// crashByN groups deliveries by item, in arrival order.
func crashByN(ds []crashDelivery) map[int64][]crashDelivery {
	out := map[int64][]crashDelivery{}
	for _, d := range ds {
		out[d.N] = append(out[d.N], d)
	}
	return out
}

// crashOutOfOrder counts first arrivals of an item that came after a later item's.
func crashOutOfOrder(ds []crashDelivery) int {
	seen := map[int64]bool{}
	var hi int64
	n := 0
	for _, d := range ds {
		if seen[d.N] {
			continue
		}
		seen[d.N] = true
		if d.N < hi {
			n++
		}
		hi = max(hi, d.N)
	}
	return n
}

func crashPath(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, _ := v.(map[string]any)
		v = mm[k]
	}
	return v
}

func crashStr(v any) string { s, _ := v.(string); return s }

func crashNum(v any) float64 { f, _ := v.(float64); return f }

func crashFirst[T any](ns []T, k int) []T { return ns[:min(len(ns), k)] }

// crashRel says when something happened relative to the kill and the restart.
func crashRel(at, killed, restarted time.Time) string {
	if at.Before(restarted) {
		return fmt.Sprintf("kill%+.3fs", at.Sub(killed).Seconds())
	}
	return fmt.Sprintf("restart%+.3fs", at.Sub(restarted).Seconds())
}

func crashTail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

func crashMaxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
