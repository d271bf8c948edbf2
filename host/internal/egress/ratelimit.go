package egress

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a connection's token bucket: PerSecond tokens flow in every second, up to Burst
// held at once, and every request handed to the transport (each retry and redirect hop
// included) takes one. It is shared by every call that runs with the connection: actions,
// triggers and MCP tools alike.
type RateLimit struct {
	// PerSecond is the sustained rate; it must be positive.
	PerSecond float64
	// Burst is the bucket's size; 0 (or less) means PerSecond rounded up, at least 1.
	Burst int
}

// burst returns the bucket size with the default applied.
func (r RateLimit) burst() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return max(1, int(math.Ceil(r.PerSecond)))
}

// connPolicies is the shared resilience state of one connection ("" for calls without one):
// its token bucket, its circuit breakers by origin, and its counters.
type connPolicies struct {
	mu       sync.Mutex
	limiter  *rate.Limiter // nil: no limit
	limit    RateLimit
	breakers map[string]*breaker

	retries atomic.Uint64 // requests sent again
	limited atomic.Uint64 // requests refused by the token bucket
}

// policies holds the resilience state of every connection a Client has served. Entries live
// until [Client.ForgetConnection]; a connection costs a few hundred bytes.
type policies struct {
	retry   RetryPolicy
	breaker BreakerPolicy

	mu       sync.Mutex
	conns    map[string]*connPolicies
	counters map[CounterKey]uint64
}

func newPolicies(retry RetryPolicy, breaker BreakerPolicy) *policies {
	return &policies{retry: retry.withDefaults(), breaker: breaker.withDefaults(),
		conns: map[string]*connPolicies{}, counters: map[CounterKey]uint64{}}
}

// conn returns the state of a connection, creating it, and brings its token bucket in line
// with limit (nil: no limit). A changed limit keeps the tokens the bucket holds.
func (p *policies) conn(id string, limit *RateLimit, now time.Time) *connPolicies {
	p.mu.Lock()
	cp := p.conns[id]
	if cp == nil {
		cp = &connPolicies{breakers: map[string]*breaker{}}
		p.conns[id] = cp
	}
	p.mu.Unlock()

	cp.mu.Lock()
	defer cp.mu.Unlock()
	switch {
	case limit == nil || limit.PerSecond <= 0 || id == "":
		cp.limiter, cp.limit = nil, RateLimit{}
	case cp.limiter == nil:
		cp.limit = RateLimit{PerSecond: limit.PerSecond, Burst: limit.burst()}
		cp.limiter = rate.NewLimiter(rate.Limit(limit.PerSecond), cp.limit.Burst)
	case cp.limit.PerSecond != limit.PerSecond || cp.limit.Burst != limit.burst():
		cp.limit = RateLimit{PerSecond: limit.PerSecond, Burst: limit.burst()}
		cp.limiter.SetLimitAt(now, rate.Limit(limit.PerSecond))
		cp.limiter.SetBurstAt(now, cp.limit.Burst)
	}
	return cp
}

// lookup returns the state of a connection, or nil when the Client has not served it.
func (p *policies) lookup(id string) *connPolicies {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[id]
}

// rateLimiter returns the connection's bucket, nil when it has no limit.
func (cp *connPolicies) rateLimiter() *rate.Limiter {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.limiter
}

// reserve takes a token for a request at now. It reports how long the request would have to
// wait for one; a positive wait gives the token back unless keep says the caller will wait.
func reserve(lim *rate.Limiter, now time.Time, keep func(wait time.Duration) bool) (time.Duration, *rate.Reservation) {
	if lim == nil {
		return 0, nil
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() { // burst below 1: never
		return time.Duration(math.MaxInt64), nil
	}
	wait := r.DelayFrom(now)
	if wait > 0 && (keep == nil || !keep(wait)) {
		r.CancelAt(now)
		return wait, nil
	}
	return wait, r
}

// count adds one to a counter.
func (p *policies) count(k CounterKey) {
	p.mu.Lock()
	p.counters[k]++
	p.mu.Unlock()
}

// reservation is a token taken for a retry that waits before it goes out.
type reservation struct {
	r  *rate.Reservation
	at time.Time
}

// cancel gives the token back (the retry was not sent). A nil reservation does nothing.
func (r *reservation) cancel(now time.Time) {
	if r != nil && r.r != nil {
		r.r.CancelAt(now)
	}
}
