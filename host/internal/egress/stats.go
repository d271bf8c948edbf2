package egress

import (
	"maps"
	"slices"
	"time"
)

// Policies that make the host answer in the upstream's place, as [Outbound.Policy] and the
// X-Plugboard-Policy header of the answer name them.
const (
	// PolicyRateLimited: the connection's token bucket was empty (429).
	PolicyRateLimited = "rate_limited"
	// PolicyCircuitOpen: the (connection, origin) circuit breaker was open (503).
	PolicyCircuitOpen = "circuit_open"
)

// Events counted by [Client.Metrics].
const (
	// EventRetry: a request was sent again (Reason says why: "429", "502", "503", "504",
	// "network").
	EventRetry = "retry"
	// EventRateLimited: a request was refused by its connection's token bucket.
	EventRateLimited = "rate_limited"
	// EventBreakerRejected: a request was refused by an open circuit breaker.
	EventBreakerRejected = "breaker_rejected"
	// EventBreakerOpened: a circuit breaker opened (or opened again after a failed probe).
	EventBreakerOpened = "breaker_opened"
)

// CounterKey identifies one counter of [Metrics]: an event and its labels. Fields that do not
// apply to the event are empty. It never holds a connection id.
type CounterKey struct {
	// Event is one of the Event* constants.
	Event string
	// Connector names the connector whose call it was.
	Connector string
	// Origin is the request's origin (retries and breaker events).
	Origin string
	// Reason says why a request was retried (EventRetry).
	Reason string
}

// Metrics are a Client's resilience counters (since it started) and the states of its circuit
// breakers, aggregated so that no connection id appears.
type Metrics struct {
	// Counters by event and labels.
	Counters map[CounterKey]uint64
	// Breakers counts circuit breakers by state (BreakerClosed, BreakerOpen, BreakerHalfOpen).
	Breakers map[string]int
	// RateLimitedConnections counts the connections with a rate limit.
	RateLimitedConnections int
}

// ConnectionStats is the resilience state of one connection.
type ConnectionStats struct {
	// RateLimit is the connection's token bucket; nil when it has no limit.
	RateLimit *RateLimitStats
	// Breakers are the connection's circuit breakers, one per origin it reached, by origin.
	Breakers []BreakerStats
	// Retries counts the requests sent again.
	Retries uint64
	// Limited counts the requests the token bucket refused.
	Limited uint64
}

// RateLimitStats is a token bucket's configuration and fill.
type RateLimitStats struct {
	// PerSecond and Burst are the bucket's configuration.
	PerSecond float64
	Burst     int
	// Tokens is how many requests could go out right now.
	Tokens float64
}

// BreakerStats is one circuit breaker's state.
type BreakerStats struct {
	// Origin is the origin the breaker guards.
	Origin string
	// State is BreakerClosed, BreakerOpen or BreakerHalfOpen.
	State string
	// Failures counts failures in a row while closed.
	Failures int
	// Opened counts the times it opened; Rejected the requests it refused.
	Opened, Rejected uint64
	// RetryAt is when an open breaker half-opens; zero when closed.
	RetryAt time.Time
}

// ConnectionStats returns the resilience state of a connection; the zero value when the Client
// has not served it.
func (c *Client) ConnectionStats(id string) ConnectionStats {
	cp := c.pol.lookup(id)
	if cp == nil {
		return ConnectionStats{}
	}
	now := c.now()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := ConnectionStats{Retries: cp.retries.Load(), Limited: cp.limited.Load()}
	if cp.limiter != nil {
		s.RateLimit = &RateLimitStats{PerSecond: cp.limit.PerSecond, Burst: cp.limit.Burst, Tokens: max(0, cp.limiter.TokensAt(now))}
	}
	for _, origin := range slices.Sorted(maps.Keys(cp.breakers)) {
		s.Breakers = append(s.Breakers, cp.breakers[origin].stats(origin, now))
	}
	return s
}

// Metrics returns the Client's resilience counters and breaker states.
func (c *Client) Metrics() Metrics {
	now := c.now()
	p := c.pol
	p.mu.Lock()
	m := Metrics{Counters: maps.Clone(p.counters), Breakers: map[string]int{BreakerClosed: 0, BreakerOpen: 0, BreakerHalfOpen: 0}}
	conns := slices.Collect(maps.Values(p.conns))
	p.mu.Unlock()
	for _, cp := range conns {
		cp.mu.Lock()
		if cp.limiter != nil {
			m.RateLimitedConnections++
		}
		for origin, b := range cp.breakers {
			m.Breakers[b.stats(origin, now).State]++
		}
		cp.mu.Unlock()
	}
	return m
}

// ForgetConnection drops the resilience state of a deleted connection.
func (c *Client) ForgetConnection(id string) {
	c.pol.mu.Lock()
	delete(c.pol.conns, id)
	c.pol.mu.Unlock()
}
