package egress

import (
	"sync"
	"time"
)

// BreakerPolicy configures the circuit breakers of a [Client], one per (connection, origin).
// Zero values mean the documented defaults.
type BreakerPolicy struct {
	// Failures is how many failures in a row (network errors, timeouts, 502, 503, 504) open the
	// breaker; 0 means 5, negative turns breakers off.
	Failures int
	// OpenFor is how long an open breaker fails requests fast before it half-opens and lets one
	// probe through; 0 means 30 s.
	OpenFor time.Duration
}

func (p BreakerPolicy) withDefaults() BreakerPolicy {
	if p.Failures == 0 {
		p.Failures = 5
	}
	if p.OpenFor <= 0 {
		p.OpenFor = 30 * time.Second
	}
	return p
}

// Breaker states, as [BreakerStats] reports them.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half_open"
)

// outcome is what one request tells a breaker about its upstream.
type outcome int

const (
	// neutral says nothing about the upstream: the call's own deadline or cancellation, a
	// refusal before sending.
	neutral outcome = iota
	// healthy: the upstream answered (any status but 502, 503 and 504; 429 included).
	healthy
	// failed: a network error, a timeout, or 502, 503 or 504.
	failed
)

// breaker is a circuit breaker for one (connection, origin). Closed, it counts failures in a
// row; at the threshold it opens and refuses requests until OpenFor has passed; then it is
// half-open: one request (the probe) goes through, and its outcome closes the breaker or opens
// it again. Requests admitted before it opened report their outcomes too, but only a probe's
// outcome moves a breaker that is not closed.
type breaker struct {
	policy BreakerPolicy

	mu        sync.Mutex
	open      bool      // open or half-open
	openUntil time.Time // when an open breaker half-opens
	probing   bool      // a half-open breaker's probe is in flight
	failures  int       // failures in a row while closed
	opened    uint64    // times it opened
	rejected  uint64    // requests refused while open
}

// admit reports whether a request may go out at now, and whether it is the half-open probe.
// Refused, retryAt says when the breaker half-opens (now when a probe is already out).
func (b *breaker) admit(now time.Time) (ok, probe bool, retryAt time.Time) {
	if b == nil {
		return true, false, time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return true, false, time.Time{}
	case now.Before(b.openUntil):
		b.rejected++
		return false, false, b.openUntil
	case b.probing:
		b.rejected++
		return false, false, now.Add(time.Second)
	}
	b.probing = true
	return true, true, time.Time{}
}

// record takes the outcome of a request admitted at admit; probe is what admit answered. It
// reports whether the breaker opened.
func (b *breaker) record(o outcome, probe bool, now time.Time) (opened bool) {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
		switch o {
		case healthy:
			b.open, b.failures = false, 0
		case failed:
			b.openUntil = now.Add(b.policy.OpenFor)
			b.opened++
			return true
		}
		return false
	}
	if b.open {
		return false
	}
	switch o {
	case healthy:
		b.failures = 0
	case failed:
		b.failures++
		if b.failures >= b.policy.Failures {
			b.open, b.openUntil, b.failures = true, now.Add(b.policy.OpenFor), 0
			b.opened++
			return true
		}
	}
	return false
}

// stats describes the breaker at now.
func (b *breaker) stats(origin string, now time.Time) BreakerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := BreakerStats{Origin: origin, State: BreakerClosed, Failures: b.failures, Opened: b.opened, Rejected: b.rejected}
	if b.open {
		s.State = BreakerOpen
		s.RetryAt = b.openUntil
		if !now.Before(b.openUntil) {
			s.State = BreakerHalfOpen
		}
	}
	return s
}

// breakerFor returns the breaker of origin on the connection, nil when breakers are off.
func (p *policies) breakerFor(cp *connPolicies, origin string) *breaker {
	if p.breaker.Failures < 0 {
		return nil
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	b := cp.breakers[origin]
	if b == nil {
		b = &breaker{policy: p.breaker}
		cp.breakers[origin] = b
	}
	return b
}

// wouldAdmit reports whether a request at the given time would find the breaker closed or
// ready for a probe, without changing it.
func (b *breaker) wouldAdmit(at time.Time) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.open || !at.Before(b.openUntil) && !b.probing
}
