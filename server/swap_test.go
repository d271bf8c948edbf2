package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// callRecord is one action call a hammer made.
type callRecord struct {
	start, end time.Time
	status     int
	version    string // the response's "version"
	ran        string // the version the plugin itself reported in its output
	body       string
}

// hammer calls an action from several goroutines until stopped, recording every call.
type hammer struct {
	t      testing.TB
	url    string
	client *http.Client
	stop   chan struct{}
	wg     sync.WaitGroup
	done   atomic.Int64

	mu      sync.Mutex
	records []callRecord
}

// startHammer starts n goroutines calling anymanifest's echo action (no version pinned) as fast
// as they can.
func startHammer(t testing.TB, ts *testServer, n int, input func(i int) any) *hammer {
	t.Helper()
	h := &hammer{t: t, url: ts.http.URL + "/v1/connectors/anymanifest/actions/echo", stop: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: time.Minute}}
	if input == nil {
		input = func(i int) any { return map[string]any{"n": i} }
	}
	for g := 0; g < n; g++ {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-h.stop:
					return
				default:
				}
				h.call(input(i))
			}
		}()
	}
	return h
}

func (h *hammer) call(input any) {
	body, _ := json.Marshal(map[string]any{"input": input})
	req, _ := http.NewRequest("POST", h.url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	rec := callRecord{start: time.Now()}
	resp, err := h.client.Do(req)
	if err != nil {
		rec.status, rec.body = -1, err.Error()
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rec.status, rec.body = resp.StatusCode, string(b)
		var out struct {
			Version string `json:"version"`
			Output  struct {
				Version string `json:"version"`
			} `json:"output"`
		}
		if json.Unmarshal(b, &out) == nil {
			rec.version, rec.ran = out.Version, out.Output.Version
		}
	}
	rec.end = time.Now()
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	h.done.Add(1)
}

// waitCalls waits until n more calls have finished.
func (h *hammer) waitCalls(n int64) {
	h.t.Helper()
	target := h.done.Load() + n
	deadline := time.Now().Add(2 * time.Minute)
	for h.done.Load() < target {
		if time.Now().After(deadline) {
			h.t.Fatalf("the hammer finished %d calls in 2 minutes, want %d", h.done.Load(), target)
		}
		time.Sleep(time.Millisecond)
	}
}

// finish stops the goroutines and returns every call made.
func (h *hammer) finish() []callRecord {
	close(h.stop)
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.records
}

// failures returns the calls that did not answer 200 with the same version in the response
// and in the plugin's output.
func failures(records []callRecord) []callRecord {
	var bad []callRecord
	for _, r := range records {
		if r.status != 200 || r.version == "" || r.version != r.ran {
			bad = append(bad, r)
		}
	}
	return bad
}

// timeline records which versions were routed when: routes[k] is the set of versions routed
// after the k-th change, which happened at some instant within [from[k], to[k]] (the request
// of the change and its response). routes[0] holds from the start.
type timeline struct {
	mu       sync.Mutex
	routes   [][]string
	from, to []time.Time
}

func newTimeline(initial ...string) *timeline {
	return &timeline{routes: [][]string{initial}, from: []time.Time{{}}, to: []time.Time{{}}}
}

func (tl *timeline) change(from, to time.Time, versions ...string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.routes = append(tl.routes, versions)
	tl.from = append(tl.from, from)
	tl.to = append(tl.to, to)
}

// routedDuring reports whether version may have been routed at some instant of [start, end]:
// routes[k] may be routed from from[k] until to[k+1] (the end of the change that replaced it).
func (tl *timeline) routedDuring(version string, start, end time.Time) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for k, vs := range tl.routes {
		if !slices.Contains(vs, version) {
			continue
		}
		begin := tl.from[k]
		var until time.Time
		if k+1 < len(tl.routes) {
			until = tl.to[k+1]
		}
		if !begin.After(end) && (until.IsZero() || !until.Before(start)) {
			return true
		}
	}
	return false
}

// rollout is one PUT /v1/connectors/anymanifest/active body and the versions it routes.
type rollout struct {
	body   map[string]any
	routes []string
}

func plain(v string) rollout {
	return rollout{body: map[string]any{"version": v}, routes: []string{v}}
}

func withCanary(active, canary string, percent int) rollout {
	return rollout{body: map[string]any{"version": active, "canary": map[string]any{"version": canary, "percent": percent}}, routes: []string{active, canary}}
}

// hammerSwaps runs the hammer while applying each rollout in turn, then checks that no call
// failed and that each call names a version routed at some point during the call.
func hammerSwaps(t *testing.T, ts *testServer, goroutines int, initial string, rollouts []rollout) []callRecord {
	t.Helper()
	tl := newTimeline(initial)
	h := startHammer(t, ts, goroutines, nil)
	h.waitCalls(50)
	for i, ro := range rollouts {
		from := time.Now()
		r := ts.do("PUT", "/v1/connectors/anymanifest/active", ro.body)
		to := time.Now()
		if r.Status != 200 {
			h.finish()
			t.Fatalf("rollout %d %v: %d %s", i+1, ro.body, r.Status, r.Body)
		}
		tl.change(from, to, ro.routes...)
		h.waitCalls(40) // let every side of the new route serve a few calls
	}
	records := h.finish()
	if bad := failures(records); len(bad) > 0 {
		for _, b := range bad[:min(len(bad), 5)] {
			t.Errorf("failed call: status %d version %q ran %q: %s", b.status, b.version, b.ran, b.body)
		}
		t.Fatalf("%d of %d calls failed during %d rollouts", len(bad), len(records), len(rollouts))
	}
	wrong := 0
	for _, r := range records {
		if !tl.routedDuring(r.version, r.start, r.end) {
			if wrong++; wrong <= 5 {
				t.Errorf("a call from %s to %s ran on %s, which was neither active nor canary meanwhile",
					r.start.Format("15:04:05.000000"), r.end.Format("15:04:05.000000"), r.version)
			}
		}
	}
	if wrong > 0 {
		t.Fatalf("%d calls ran on a version that was not routed during the call", wrong)
	}
	return records
}

// countVersions counts the calls per version.
func countVersions(records []callRecord) map[string]int {
	out := map[string]int{}
	for _, r := range records {
		out[r.version]++
	}
	return out
}

// waitLoaded waits until exactly the given versions of anymanifest are loaded in memory.
func waitLoaded(t *testing.T, ts *testServer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []string
		for _, v := range ts.srv.reg.Loaded() {
			got = append(got, v.Info.Version)
		}
		slices.Sort(got)
		slices.Sort(want)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("loaded versions = %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// uploadVersions uploads anymanifest versions (the first becomes active).
func uploadVersions(t *testing.T, ts *testServer, versions ...string) {
	t.Helper()
	for _, v := range versions {
		ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON(v))))
	}
}

// TestSwapHammer swaps the active version 20 times back and forth while 8 goroutines call the
// connector without pause: no call fails, and every call runs on a version that was active at
// some point during the call. Old versions drain and are unloaded.
func TestSwapHammer(t *testing.T) {
	ts := startServer(t, nil)
	uploadVersions(t, ts, "1.0.0", "2.0.0")
	var rollouts []rollout
	for i := 0; i < 20; i++ {
		rollouts = append(rollouts, plain([]string{"2.0.0", "1.0.0"}[i%2]))
	}
	records := hammerSwaps(t, ts, 8, "1.0.0", rollouts)
	counts := countVersions(records)
	t.Logf("%d calls during 20 swaps: %v", len(records), counts)
	if counts["1.0.0"] == 0 || counts["2.0.0"] == 0 {
		t.Errorf("calls per version = %v; both versions should have served", counts)
	}
	waitLoaded(t, ts, "1.0.0") // the last swap went back to 1.0.0; 2.0.0 drained and unloaded
}

// TestSwapHammerCanary is the hammer with canaries: set, re-weighted, promoted and aborted 20
// times while 8 goroutines call. Each call runs on the active version or the canary of a route
// that held during the call.
func TestSwapHammerCanary(t *testing.T) {
	ts := startServer(t, nil)
	uploadVersions(t, ts, "1.0.0", "2.0.0")
	var rollouts []rollout
	for i := 0; i < 5; i++ {
		rollouts = append(rollouts,
			withCanary("1.0.0", "2.0.0", 30), // canary 2.0.0
			withCanary("1.0.0", "2.0.0", 70), // re-weight
			plain("2.0.0"),                   // promote
			withCanary("2.0.0", "1.0.0", 50), // canary of the old one
		)
		if i%2 == 0 {
			rollouts[len(rollouts)-1] = plain("1.0.0") // a plain roll back instead
		}
	}
	records := hammerSwaps(t, ts, 8, "1.0.0", rollouts)
	t.Logf("%d calls during %d rollouts: %v", len(records), len(rollouts), countVersions(records))
}
