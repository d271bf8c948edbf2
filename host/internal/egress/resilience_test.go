package egress

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// fastRetry retries quickly so tests do not wait for the default backoff.
var fastRetry = RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// script is an upstream handler that answers the statuses in turn (the last one repeats);
// 0 hangs up without answering, after reading the request.
func script(statuses ...int) (http.HandlerFunc, *atomic.Int32) {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		st := statuses[min(i, len(statuses)-1)]
		if st == 0 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(st)
	}, &n
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		idempotent   bool // the action's annotation
		statuses     []int
		wantStatus   int
		wantCode     string // an error document instead of a status
		wantRequests int32
	}{
		{name: "GET answered 503 then 200 is retried", method: "GET", statuses: []int{503, 200}, wantStatus: 200, wantRequests: 2},
		{name: "GET answered 429 with Retry-After then 200 is retried", method: "GET", statuses: []int{429, 200}, wantStatus: 200, wantRequests: 2},
		{name: "PUT answered 502, 504 then 200 is retried twice", method: "PUT", statuses: []int{502, 504, 200}, wantStatus: 200, wantRequests: 3},
		{name: "GET gives up after three retries", method: "GET", statuses: []int{503}, wantStatus: 503, wantRequests: 4},
		{name: "GET whose server hangs up is retried", method: "GET", statuses: []int{0, 200}, wantStatus: 200, wantRequests: 2},
		{name: "GET answered 500 is not retried", method: "GET", statuses: []int{500, 200}, wantStatus: 500, wantRequests: 1},
		{name: "GET answered 404 is not retried", method: "GET", statuses: []int{404, 200}, wantStatus: 404, wantRequests: 1},
		{name: "POST answered 503 is not retried", method: "POST", statuses: []int{503, 200}, wantStatus: 503, wantRequests: 1},
		{name: "POST answered 429 is not retried", method: "POST", statuses: []int{429, 200}, wantStatus: 429, wantRequests: 1},
		{name: "POST whose server hangs up after reading it is not retried", method: "POST", statuses: []int{0, 200}, wantCode: "network", wantRequests: 1},
		{name: "PATCH answered 503 is not retried", method: "PATCH", statuses: []int{503, 200}, wantStatus: 503, wantRequests: 1},
		{name: "POST of an idempotent action answered 503 is retried", method: "POST", idempotent: true, statuses: []int{503, 200}, wantStatus: 200, wantRequests: 2},
		{name: "POST of an idempotent action whose server hangs up is retried", method: "POST", idempotent: true, statuses: []int{0, 200}, wantStatus: 200, wantRequests: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n := script(tt.statuses...)
			up := newUpstream(t, h)
			c, _ := newClient(t, Config{AllowNetworks: loopback, Retry: fastRetry})
			o := up.origin("127.0.0.1")
			var rec records
			req := &abi.HTTPRequest{Method: tt.method, URL: o + "/x", Body: ptr("payload")}
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}, Connection: "c1", Idempotent: tt.idempotent}, NewBudget(10), req, rec.add)
			if tt.wantCode != "" {
				wantErr(t, got, tt.wantCode)
			} else {
				wantOK(t, got, tt.wantStatus)
			}
			if n.Load() != tt.wantRequests {
				t.Errorf("upstream got %d requests, want %d", n.Load(), tt.wantRequests)
			}
			out := rec.list()
			if len(out) != 1 || out[0].Retries != int(tt.wantRequests-1) {
				t.Errorf("records = %+v, want one with %d retries", out, tt.wantRequests-1)
			}
			if want := int64(len("payload")) * int64(tt.wantRequests); out[0].BytesOut != want {
				t.Errorf("BytesOut = %d, want %d", out[0].BytesOut, want)
			}
			if s := c.ConnectionStats("c1"); s.Retries != uint64(tt.wantRequests-1) {
				t.Errorf("stats count %d retries", s.Retries)
			}
		})
	}
}

// TestRetryUnsentPOST: a connection that fails before the request is written (refused dial)
// is retried whatever the method, since the upstream never saw the request.
func TestRetryUnsentPOST(t *testing.T) {
	up := newUpstream(t, nil)
	c, _ := newClient(t, Config{AllowNetworks: loopback, Retry: fastRetry})
	var dials atomic.Int32
	inner := c.dial
	c.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return inner(ctx, network, address)
	}
	o := up.origin("127.0.0.1")
	got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, NewBudget(10),
		&abi.HTTPRequest{Method: "POST", URL: o + "/x", Body: ptr("once")}, nil)
	if s := echoed(t, got); s.Method != "POST" || s.Body != "once" {
		t.Errorf("upstream saw %+v", s)
	}
	if dials.Load() != 2 || len(up.requests()) != 1 {
		t.Errorf("%d dials, %d requests; want the refused dial retried once", dials.Load(), len(up.requests()))
	}
}

// TestRetryAfterHonoured: the retry waits the upstream's Retry-After when it ends before the
// deadline, and does not retry when it would not.
func TestRetryAfterHonoured(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		first := len(times) == 1
		mu.Unlock()
		if first || r.URL.Path == "/always" {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	c, _ := newClient(t, Config{AllowNetworks: loopback, Retry: fastRetry})
	o := up.origin("127.0.0.1")
	g := &Grant{ManifestOrigins: []string{o}}

	got := c.Do(context.Background(), g, NewBudget(10), get(o+"/x"), nil)
	wantOK(t, got, 200)
	mu.Lock()
	if len(times) != 2 || times[1].Sub(times[0]) < 900*time.Millisecond {
		t.Errorf("retry came %v after the 429 with Retry-After: 1", times[1].Sub(times[0]))
	}
	mu.Unlock()

	// A deadline 300 ms away cannot wait 1 s: the 429 goes to the guest at once.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got = c.Do(ctx, g, NewBudget(10), get(o+"/always"), nil)
	wantOK(t, got, http.StatusTooManyRequests) // waiting would have ended in a timeout error
	if got.Headers["Retry-After"] != "1" {
		t.Errorf("got %+v; want the upstream's 429", got.Headers)
	}
	mu.Lock()
	if len(times) != 3 {
		t.Errorf("upstream got %d requests, want 3", len(times))
	}
	mu.Unlock()
}

func TestRetryStopsWhenBudgetIsSpent(t *testing.T) {
	h, n := script(503)
	up := newUpstream(t, h)
	c, _ := newClient(t, Config{AllowNetworks: loopback, Retry: fastRetry})
	o := up.origin("127.0.0.1")
	b := NewBudget(2)
	got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, b, get(o+"/x"), nil)
	wantOK(t, got, 503)
	if n.Load() != 2 || b.Remaining() != 0 {
		t.Errorf("%d requests, %d budget left; want the budget of 2 spent and the last 503 returned", n.Load(), b.Remaining())
	}
}

func TestRateLimit(t *testing.T) {
	up := newUpstream(t, nil)
	c, _ := newClient(t, Config{AllowNetworks: loopback, Retry: fastRetry})
	now := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time { return now }
	o := up.origin("127.0.0.1")
	g := &Grant{ManifestOrigins: []string{o}, Connection: "c1", Connector: "spy", RateLimit: &RateLimit{PerSecond: 0.5, Burst: 2}}
	var rec records
	for range 2 {
		echoed(t, c.Do(context.Background(), g, NewBudget(10), get(o+"/x"), rec.add))
	}
	got := c.Do(context.Background(), g, NewBudget(10), get(o+"/x"), rec.add)
	wantOK(t, got, http.StatusTooManyRequests)
	if got.Headers["Retry-After"] != "2" || got.Headers["X-Plugboard-Policy"] != PolicyRateLimited {
		t.Errorf("headers = %v; want Retry-After 2 (one token every 2 s) and the policy", got.Headers)
	}
	if len(up.requests()) != 2 {
		t.Errorf("upstream got %d requests, want 2", len(up.requests()))
	}
	if r := rec.list(); r[2].Policy != PolicyRateLimited || r[2].Status != 429 {
		t.Errorf("record = %+v", r[2])
	}
	// Another call of the same connection shares the bucket; another connection has its own.
	wantOK(t, c.Do(context.Background(), g, NewBudget(10), get(o+"/x"), nil), 429)
	other := *g
	other.Connection = "c2"
	echoed(t, c.Do(context.Background(), &other, NewBudget(10), get(o+"/x"), nil))
	// Two seconds later one token is back.
	now = now.Add(2 * time.Second)
	echoed(t, c.Do(context.Background(), g, NewBudget(10), get(o+"/x"), nil))
	s := c.ConnectionStats("c1")
	if s.RateLimit == nil || s.RateLimit.PerSecond != 0.5 || s.RateLimit.Burst != 2 || s.Limited != 2 || s.RateLimit.Tokens != 0 {
		t.Errorf("stats = %+v %+v", s, s.RateLimit)
	}
	if m := c.Metrics(); m.Counters[CounterKey{Event: EventRateLimited, Connector: "spy"}] != 2 || m.RateLimitedConnections != 2 {
		t.Errorf("metrics = %+v", m)
	}
	// A changed limit applies at once, keeping the bucket's fill.
	g.RateLimit = &RateLimit{PerSecond: 1000}
	now = now.Add(2 * time.Second)
	echoed(t, c.Do(context.Background(), g, NewBudget(10), get(o+"/x"), nil))
	// Removing it removes the bucket.
	g.RateLimit = nil
	echoed(t, c.Do(context.Background(), g, NewBudget(10), get(o+"/x"), nil))
	if c.ConnectionStats("c1").RateLimit != nil {
		t.Error("the bucket survived removing the limit")
	}
}

func TestCircuitBreaker(t *testing.T) {
	var healthy atomic.Bool
	var n atomic.Int32
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	c, _ := newClient(t, Config{AllowNetworks: loopback, Retry: RetryPolicy{MaxRetries: -1}, Breaker: BreakerPolicy{Failures: 3, OpenFor: 10 * time.Second}})
	now := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time { return now }
	o := up.origin("127.0.0.1")
	g := &Grant{ManifestOrigins: []string{o}, Connection: "c1", Connector: "spy"}
	do := func() *abi.HTTPResponse { return c.Do(context.Background(), g, NewBudget(10), get(o+"/x"), nil) }

	for range 3 {
		wantOK(t, do(), 503)
	}
	if n.Load() != 3 {
		t.Fatalf("upstream got %d requests", n.Load())
	}
	// Open: requests fail fast with the host's answer, for this connection only.
	got := do()
	wantOK(t, got, 503)
	if got.Headers["X-Plugboard-Policy"] != PolicyCircuitOpen || got.Headers["Retry-After"] != "10" || n.Load() != 3 {
		t.Errorf("open breaker: %v, upstream requests %d", got.Headers, n.Load())
	}
	other := *g
	other.Connection = "c2"
	wantOK(t, c.Do(context.Background(), &other, NewBudget(10), get(o+"/x"), nil), 503)
	if n.Load() != 4 {
		t.Errorf("another connection's request did not reach the upstream")
	}
	if s := c.ConnectionStats("c1").Breakers; len(s) != 1 || s[0].State != BreakerOpen || s[0].Opened != 1 || s[0].Rejected != 1 {
		t.Errorf("stats = %+v", s)
	}

	// Half-open after OpenFor: one probe goes out; it fails and the breaker opens again.
	now = now.Add(10 * time.Second)
	if s := c.ConnectionStats("c1").Breakers; s[0].State != BreakerHalfOpen {
		t.Errorf("state after OpenFor = %s", s[0].State)
	}
	wantOK(t, do(), 503)
	if n.Load() != 5 {
		t.Errorf("the probe did not go out")
	}
	if got := do(); got.Headers["X-Plugboard-Policy"] != PolicyCircuitOpen || n.Load() != 5 {
		t.Errorf("after a failed probe the breaker should be open again: %v", got.Headers)
	}
	// The next probe succeeds and closes it.
	now = now.Add(10 * time.Second)
	healthy.Store(true)
	wantOK(t, do(), 200)
	wantOK(t, do(), 200)
	if s := c.ConnectionStats("c1").Breakers; s[0].State != BreakerClosed || s[0].Opened != 2 {
		t.Errorf("stats = %+v", s)
	}
	m := c.Metrics()
	if m.Counters[CounterKey{Event: EventBreakerOpened, Connector: "spy", Origin: o}] != 2 ||
		m.Counters[CounterKey{Event: EventBreakerRejected, Connector: "spy", Origin: o}] != 2 || m.Breakers[BreakerClosed] != 2 {
		t.Errorf("metrics = %+v", m)
	}
}

// TestBreakerStopsRetries: a breaker that opens during a request's retries ends them.
func TestBreakerStopsRetries(t *testing.T) {
	h, n := script(503)
	up := newUpstream(t, h)
	c, _ := newClient(t, Config{AllowNetworks: loopback, Retry: fastRetry, Breaker: BreakerPolicy{Failures: 2}})
	o := up.origin("127.0.0.1")
	got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}, Connection: "c1"}, NewBudget(10), get(o+"/x"), nil)
	wantOK(t, got, 503)
	if n.Load() != 2 {
		t.Errorf("upstream got %d requests; the breaker opened after 2", n.Load())
	}
}

func TestBackoffJitter(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		if n >= 4 {
			want = time.Second
		}
		for range 50 {
			if d := p.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{"0", 0, true},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		if got, ok := retryAfter(tt.in, now); got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
