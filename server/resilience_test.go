package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

// flaky is an upstream whose routes fail in scripted ways, counting requests per route.
type flaky struct {
	*recorder
	mu     sync.Mutex
	counts map[string]int
	times  map[string][]time.Time
	down   bool
}

func newFlaky(t *testing.T) *flaky {
	f := &flaky{counts: map[string]int{}, times: map[string][]time.Time{}}
	hangUp := func(w http.ResponseWriter) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}
	f.recorder = newRecorder(t, func(mux *http.ServeMux) {
		handle := func(path string, h func(n int, w http.ResponseWriter)) {
			mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
				f.mu.Lock()
				f.counts[r.Method+" "+path]++
				n := f.counts[r.Method+" "+path]
				f.times[path] = append(f.times[path], time.Now())
				f.mu.Unlock()
				// No keep-alive: a dropped connection is then always a fresh one, which
				// net/http never retries itself, so the host's policy is what is tested.
				w.Header().Set("Connection", "close")
				h(n, w)
			})
		}
		// 503 once, then 200.
		handle("/unavailable-once", func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"ok":true}`))
		})
		// 429 with Retry-After: 1 once, then 200.
		handle("/throttled-once", func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.Write([]byte(`{"ok":true}`))
		})
		// Drops the connection once (after reading the request), then 200.
		handle("/drop-once", func(n int, w http.ResponseWriter) {
			if n == 1 {
				hangUp(w)
				return
			}
			w.Write([]byte(`{"ok":true}`))
		})
		// Always 503 while down.
		handle("/down", func(n int, w http.ResponseWriter) {
			f.mu.Lock()
			down := f.down
			f.mu.Unlock()
			if down {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"ok":true}`))
		})
	})
	return f
}

func (f *flaky) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[key]
}

func (f *flaky) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// fetchOut is the spy's fetch output.
type fetchOut struct {
	Status  int
	Headers map[string]string
	Error   string // host error code
}

func spyFetch(t *testing.T, ts *testServer, conn, method, url string) fetchOut {
	t.Helper()
	r := ts.must(200, ts.invoke("spy", "fetch", map[string]any{"connection": conn, "input": map[string]any{"url": url, "method": method, "body": "x"}}))
	out := r.json(t)["output"].(map[string]any)
	var f fetchOut
	if s, ok := out["status"].(float64); ok {
		f.Status = int(s)
	}
	if h, ok := out["headers"].(map[string]any); ok {
		f.Headers = map[string]string{}
		for k, v := range h {
			f.Headers[k] = v.(string)
		}
	}
	if e, ok := out["error"].(map[string]any); ok {
		f.Error = e["code"].(string)
	}
	return f
}

// resilienceServer is a server with fast retries and a breaker that opens after 3 failures
// for 2 s, and a spy connection to a flaky upstream.
func resilienceServer(t *testing.T) (*testServer, *flaky) {
	f := newFlaky(t)
	ts := startServer(t, func(o *Options) {
		o.Host.Egress.Retry = host.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}
		o.Host.Egress.Breaker = host.BreakerPolicy{Failures: 3, OpenFor: 2 * time.Second}
	})
	ts.must(201, ts.upload("spy"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "flaky", "connectors": []string{"spy"}, "params": map[string]any{"base_url": f.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "k"},
	}))
	return ts, f
}

// TestRetryPolicy: idempotent requests are retried on 503, on 429 after its Retry-After, and
// when the connection drops; a non-idempotent POST is not retried once it was sent.
func TestRetryPolicy(t *testing.T) {
	ts, f := resilienceServer(t)
	if got := spyFetch(t, ts, "flaky", "GET", f.URL+"/unavailable-once"); got.Status != 200 || f.count("GET /unavailable-once") != 2 {
		t.Errorf("GET after a 503: %+v, %d requests", got, f.count("GET /unavailable-once"))
	}
	start := time.Now()
	if got := spyFetch(t, ts, "flaky", "GET", f.URL+"/throttled-once"); got.Status != 200 || f.count("GET /throttled-once") != 2 {
		t.Errorf("GET after a 429: %+v, %d requests", got, f.count("GET /throttled-once"))
	}
	f.mu.Lock()
	gap := f.times["/throttled-once"][1].Sub(f.times["/throttled-once"][0])
	f.mu.Unlock()
	if gap < 900*time.Millisecond || time.Since(start) > 10*time.Second {
		t.Errorf("the retry came %v after a 429 with Retry-After: 1", gap)
	}
	if got := spyFetch(t, ts, "flaky", "GET", f.URL+"/drop-once"); got.Status != 200 || f.count("GET /drop-once") != 2 {
		t.Errorf("GET after a dropped connection: %+v, %d requests", got, f.count("GET /drop-once"))
	}
	// POST: sent, so never sent twice.
	if got := spyFetch(t, ts, "flaky", "POST", f.URL+"/drop-once"); got.Error != "network" || f.count("POST /drop-once") != 1 {
		t.Errorf("POST whose connection dropped: %+v, %d requests; want the network error and 1 request", got, f.count("POST /drop-once"))
	}
	if got := spyFetch(t, ts, "flaky", "POST", f.URL+"/unavailable-once"); got.Status != 503 || f.count("POST /unavailable-once") != 1 {
		t.Errorf("POST answered 503: %+v, %d requests", got, f.count("POST /unavailable-once"))
	}
	if got := spyFetch(t, ts, "flaky", "POST", f.URL+"/throttled-once"); got.Status != 429 || f.count("POST /throttled-once") != 1 {
		t.Errorf("POST answered 429: %+v, %d requests", got, f.count("POST /throttled-once"))
	}
	doc := ts.must(200, ts.do("GET", "/v1/connections/flaky", nil)).json(t)
	if r := doc["resilience"].(map[string]any); r["retries"] != 3.0 {
		t.Errorf("resilience = %v, want 3 retries", r)
	}
	metrics := string(ts.must(200, ts.do("GET", "/metrics", nil)).Body)
	for _, want := range []string{
		`plugboard_egress_retries_total{connector="spy",origin="` + f.URL + `",reason="503"} 1`,
		`plugboard_egress_retries_total{connector="spy",origin="` + f.URL + `",reason="429"} 1`,
		`plugboard_egress_retries_total{connector="spy",origin="` + f.URL + `",reason="network"} 1`,
		"# TYPE plugboard_egress_retries_total counter",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestCircuitBreakerPolicy: an upstream that keeps failing opens the connection's breaker for
// its origin; requests then fail fast without reaching it, until a probe finds it healthy.
func TestCircuitBreakerPolicy(t *testing.T) {
	ts, f := resilienceServer(t)
	f.setDown(true)
	if got := spyFetch(t, ts, "flaky", "GET", f.URL+"/down"); got.Status != 503 {
		t.Fatalf("GET of a down upstream: %+v", got)
	}
	if n := f.count("GET /down"); n != 3 {
		t.Errorf("upstream got %d requests; the breaker should open after 3 failures and end the retries", n)
	}
	got := spyFetch(t, ts, "flaky", "GET", f.URL+"/down")
	if got.Status != 503 || got.Headers["X-Plugboard-Policy"] != "circuit_open" || got.Headers["Retry-After"] == "" || f.count("GET /down") != 3 {
		t.Errorf("with the breaker open: %+v, %d requests", got, f.count("GET /down"))
	}
	breaker := func() map[string]any {
		doc := ts.must(200, ts.do("GET", "/v1/connections/flaky", nil)).json(t)
		b := doc["resilience"].(map[string]any)["breakers"].([]any)
		if len(b) != 1 {
			t.Fatalf("breakers = %v", b)
		}
		return b[0].(map[string]any)
	}
	if b := breaker(); b["state"] != "open" || b["origin"] != f.URL || b["opened"] != 1.0 || b["rejected"] != 1.0 || b["retry_at"] == nil {
		t.Errorf("breaker = %v", b)
	}
	metrics := string(ts.must(200, ts.do("GET", "/metrics", nil)).Body)
	for _, want := range []string{`plugboard_egress_breakers{state="open"} 1`, `plugboard_egress_breaker_rejected_total{connector="spy",origin="` + f.URL + `"} 1`,
		`plugboard_egress_breaker_opened_total{connector="spy",origin="` + f.URL + `"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Half-open after 2 s: the next request is the probe.
	deadline := time.Now().Add(15 * time.Second)
	for breaker()["state"] != "half_open" {
		if time.Now().After(deadline) {
			t.Fatal("the breaker did not half-open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.setDown(false)
	if got := spyFetch(t, ts, "flaky", "GET", f.URL+"/down"); got.Status != 200 {
		t.Errorf("probe: %+v", got)
	}
	if b := breaker(); b["state"] != "closed" {
		t.Errorf("after a good probe: %v", b)
	}
}

// TestRateLimitPolicy: a connection's rate limit is shared by its calls; excess requests are
// not sent and get 429 with Retry-After; through a pdk connector that becomes the API's 429
// rate_limited with Retry-After.
func TestRateLimitPolicy(t *testing.T) {
	ts, f := resilienceServer(t)
	// One token every 100 s: none comes back during the test, however slow the machine.
	doc := ts.must(200, ts.do("PATCH", "/v1/connections/flaky", map[string]any{"rate_limit": map[string]any{"per_second": 0.01, "burst": 2}})).json(t)
	if rl := doc["rate_limit"].(map[string]any); rl["per_second"] != 0.01 || rl["burst"] != 2.0 {
		t.Errorf("rate_limit = %v", rl)
	}
	for range 2 {
		if got := spyFetch(t, ts, "flaky", "GET", f.URL+"/ok"); got.Status != 200 {
			t.Fatalf("within the burst: %+v", got)
		}
	}
	sent := len(f.seen())
	got := spyFetch(t, ts, "flaky", "GET", f.URL+"/ok")
	if got.Status != 429 || got.Headers["X-Plugboard-Policy"] != "rate_limited" || got.Headers["Retry-After"] == "" || len(f.seen()) != sent {
		t.Errorf("over the limit: %+v (upstream requests %d -> %d)", got, sent, len(f.seen()))
	}
	doc = ts.must(200, ts.do("GET", "/v1/connections/flaky", nil)).json(t)
	r := doc["resilience"].(map[string]any)
	if b := r["rate_limit"].(map[string]any); r["rate_limited"] != 1.0 || b["burst"] != 2.0 || b["tokens"].(float64) >= 1 {
		t.Errorf("resilience = %v", r)
	}
	if m := string(ts.must(200, ts.do("GET", "/metrics", nil)).Body); !strings.Contains(m, `plugboard_egress_rate_limited_total{connector="spy"} 1`) ||
		!strings.Contains(m, "plugboard_egress_rate_limited_connections 1") {
		t.Errorf("/metrics lacks the rate limit:\n%s", m)
	}
	// null removes the limit.
	if doc := ts.must(200, ts.do("PATCH", "/v1/connections/flaky", map[string]any{"rate_limit": nil})).json(t); doc["rate_limit"] != nil {
		t.Errorf("after removing: %v", doc["rate_limit"])
	}
	if got := spyFetch(t, ts, "flaky", "GET", f.URL+"/ok"); got.Status != 200 {
		t.Errorf("without a limit: %+v", got)
	}
	for _, bad := range []any{map[string]any{"per_second": -1}, map[string]any{"per_second": 0}, map[string]any{"per_second": 1, "burst": -2}, map[string]any{"per_second": 1, "extra": 1}} {
		if r := ts.do("PATCH", "/v1/connections/flaky", map[string]any{"rate_limit": bad}); r.Status != 400 {
			t.Errorf("rate_limit %v: %d %s", bad, r.Status, r.Body)
		}
	}

	// A connector built with the pdk maps the host's 429 to its rate_limited error.
	gh := githubfake.New(t)
	ts.must(201, ts.upload("github"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "gh", "connectors": []string{"github"}, "params": map[string]any{"base_url": gh.URL},
		"auth": map[string]any{"type": "api_key", "api_key": gh.Token}, "rate_limit": map[string]any{"per_second": 0.01, "burst": 1},
	}))
	repo := map[string]any{"connection": "gh", "input": map[string]any{"owner": "octocat", "repo": "Hello-World"}}
	ts.must(200, ts.invoke("github", "get_repo", repo))
	before := gh.Requests()
	res := ts.invoke("github", "get_repo", repo)
	ra, _ := strconv.Atoi(res.Header.Get("Retry-After"))
	if res.Status != http.StatusTooManyRequests || res.code(t) != "rate_limited" || ra < 90 || ra > 100 || gh.Requests() != before {
		t.Errorf("over the limit through the github connector: %d Retry-After=%q %s", res.Status, res.Header.Get("Retry-After"), res.Body)
	}
}
