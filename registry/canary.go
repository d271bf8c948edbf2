package registry

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// A canary release sends a share of a connector's unpinned calls to a second version while the
// active version serves the rest (PUT /v1/connectors/{name}/active with a "canary" object).
//
//   - Split: of every hundred calls that name no version, exactly Percent go to the canary,
//     spread evenly. The side is chosen once per call, when the call takes its lease
//     ([Registry.acquire]): schema validation and the invocation run on the same side, so a
//     connection sticks to one side for a whole call. Pinned calls ("version") bypass the split.
//   - Statistics: each side counts calls, errors and a latency histogram from the moment the
//     canary started (a new percentage for the same pair keeps them). An error is a call the
//     host failed (trap, timeout, busy) or a guest error mapping to a 5xx status; guest errors
//     about the request, such as not_found or invalid_input, are successes for the version.
//   - Promote: set the canary's version active with no canary. Abort: set the active version
//     again with no canary. Both reuse the loaded versions, so they take no provisioning time.
//   - Automatic abort: with MaxErrorRate above zero, once the canary has served MinCalls calls
//     (default 20) and its error rate is above MaxErrorRate, the registry aborts the canary
//     itself, as an operator would, and records why in [Connector.LastCanary].
//   - Canaries live in memory: after a restart the active version takes every call.

// DefaultMinCalls is the number of canary calls below which the automatic abort does not judge
// the error rate.
const DefaultMinCalls = 20

// CanarySpec is the canary part of a [Rollout].
type CanarySpec struct {
	// Version is the canary version; it must differ from the active one.
	Version string
	// Percent of the unpinned calls go to the canary, 0 to 100.
	Percent int
	// MaxErrorRate, between 0 and 1, aborts the canary automatically when its error rate goes
	// above it; 0 disables the automatic abort.
	MaxErrorRate float64
	// MinCalls is how many canary calls the automatic abort waits for before judging; 0 means
	// DefaultMinCalls.
	MinCalls int
}

func (s CanarySpec) minCalls() uint64 {
	if s.MinCalls <= 0 {
		return DefaultMinCalls
	}
	return uint64(s.MinCalls)
}

// CanaryStatus is a running canary with the statistics of both sides.
type CanaryStatus struct {
	CanarySpec
	// Since is when the canary started.
	Since time.Time
	// Active and Canary are the statistics of each side since then.
	Active, Canary TrafficStats
}

// CanaryOutcome says how the last canary of a connector ended.
type CanaryOutcome struct {
	CanarySpec
	// Outcome is "promoted" (the canary became active), "aborted" (the active version was set
	// again without it), "auto_aborted" (its error rate passed MaxErrorRate) or "replaced" (a
	// rollout named another active version or another canary).
	Outcome string
	// Reason explains an automatic abort.
	Reason string
	// Since and Ended bound the canary's life.
	Since, Ended time.Time
	// Active and Canary are the final statistics of each side.
	Active, Canary TrafficStats
}

// TrafficStats are the calls a version served on one side of a route.
type TrafficStats struct {
	// Version is the version of that side.
	Version string
	// Calls and Errors count finished calls; see the package documentation for what an error is.
	Calls, Errors uint64
	// ErrorRate is Errors/Calls, 0 without calls.
	ErrorRate float64
	// P50 and P99 are latency quantiles of the plugin call, estimated from a histogram whose
	// buckets grow by a factor of √2 (so within 41% of the true value); 0 without calls.
	P50, P99 time.Duration
}

// latency histogram: bucket i holds calls up to bucketBase·√2^i.
const (
	bucketBase = 50 * time.Microsecond
	nBuckets   = 44 // up to about 200 s
)

var bucketBounds = func() (b [nBuckets]time.Duration) {
	for i := range b {
		b[i] = time.Duration(float64(bucketBase) * math.Pow(math.Sqrt2, float64(i)))
	}
	return b
}()

// sideStats are the lock-free counters of one side of a route.
type sideStats struct {
	calls, errors atomic.Uint64
	buckets       [nBuckets + 1]atomic.Uint64 // the last one is the overflow
}

func (s *sideStats) observe(d time.Duration, failed bool) {
	i := 0
	for i < nBuckets && d > bucketBounds[i] {
		i++
	}
	s.buckets[i].Add(1)
	if failed {
		s.errors.Add(1)
	}
	s.calls.Add(1)
}

func (s *sideStats) snapshot(version string) TrafficStats {
	t := TrafficStats{Version: version, Calls: s.calls.Load(), Errors: s.errors.Load()}
	if t.Calls == 0 {
		return t
	}
	t.ErrorRate = float64(t.Errors) / float64(t.Calls)
	var counts [nBuckets + 1]uint64
	var total uint64
	for i := range counts {
		counts[i] = s.buckets[i].Load()
		total += counts[i]
	}
	quantile := func(q float64) time.Duration {
		rank := uint64(math.Ceil(q * float64(total)))
		var seen uint64
		for i, n := range counts {
			seen += n
			if seen >= rank && n > 0 {
				if i == nBuckets {
					return bucketBounds[nBuckets-1]
				}
				return bucketBounds[i]
			}
		}
		return 0
	}
	t.P50, t.P99 = quantile(0.5), quantile(0.99)
	return t
}

func (rt *route) canaryVersion() string {
	if rt.canary == nil {
		return ""
	}
	return rt.canary.Info.Version
}

// status is the canary of rt with its statistics; nil without a canary.
func (rt *route) status() *CanaryStatus {
	if rt == nil || rt.canary == nil {
		return nil
	}
	return &CanaryStatus{CanarySpec: rt.spec, Since: rt.since,
		Active: rt.stats[sideActive].snapshot(rt.active.Info.Version),
		Canary: rt.stats[sideCanary].snapshot(rt.canary.Info.Version)}
}

// outcome records how the canary of rt ended when next replaced it.
func (rt *route) outcome(next *route, now time.Time) *CanaryOutcome {
	st := rt.status()
	o := &CanaryOutcome{CanarySpec: st.CanarySpec, Since: st.Since, Ended: now, Active: st.Active, Canary: st.Canary, Outcome: "replaced"}
	switch {
	case next.canary == nil && next.active == rt.canary:
		o.Outcome = "promoted"
	case next.canary == nil && next.active == rt.active:
		o.Outcome = "aborted"
	}
	return o
}

// record counts a finished call for its side and starts the automatic abort when the canary's
// error rate passes its threshold.
func (r *Registry) record(rt *route, side int, d time.Duration, failed bool) {
	s := rt.stats[side]
	s.observe(d, failed)
	if side != sideCanary || !failed || rt.spec.MaxErrorRate <= 0 {
		return
	}
	calls, errs := s.calls.Load(), s.errors.Load()
	if calls < rt.spec.minCalls() || float64(errs)/float64(calls) <= rt.spec.MaxErrorRate {
		return
	}
	if rt.ending.CompareAndSwap(false, true) {
		reason := fmt.Sprintf("error rate %.3f over %d calls passed max_error_rate %g", float64(errs)/float64(calls), calls, rt.spec.MaxErrorRate)
		go r.autoAbort(rt, reason)
	}
}

// autoAbort removes the canary of rt, if rt still routes its connector.
func (r *Registry) autoAbort(rt *route, reason string) {
	name := rt.active.Info.Name
	c := r.connector(name, false)
	if c == nil {
		return
	}
	c.swap.Lock()
	defer c.swap.Unlock()
	if c.route.Load() != rt {
		return // an operator changed the route meanwhile
	}
	next := &route{active: rt.active, since: r.now(), stats: [2]*sideStats{rt.stats[sideActive], {}}}
	// Every node drops the canary: the stored route is the cluster's (API.md "Cluster").
	ctx := context.Background()
	if sc, err := r.st.Canary(ctx, name); err == nil && sc != nil && sc.Version == rt.canary.Info.Version {
		if err := r.st.SetCanary(ctx, name, nil); err != nil {
			r.log.Error("storing the end of an aborted canary", "connector", name, "err", err)
		}
	}
	if err := r.publish(c, next); err != nil {
		r.log.Error("aborting a canary", "connector", name, "canary", rt.canary.Info.Version, "err", err)
		return
	}
	o := rt.outcome(next, r.now())
	o.Outcome, o.Reason = "auto_aborted", reason
	c.last.Store(o)
	r.unloadUnused(rt.canary)
	r.beatSoon()
	r.log.Warn("canary aborted automatically", "connector", name, "canary", rt.canary.Info.Version, "active", rt.active.Info.Version, "reason", reason)
}

// Canary returns the running canary of a connector with its statistics, and how the last one
// ended; either is nil when there is none.
func (r *Registry) Canary(_ context.Context, name string) (*CanaryStatus, *CanaryOutcome) {
	c := r.connector(name, false)
	if c == nil {
		return nil, nil
	}
	return c.route.Load().status(), c.last.Load()
}

// Canaries returns the running canaries by connector name.
func (r *Registry) Canaries(_ context.Context) map[string]*CanaryStatus {
	out := map[string]*CanaryStatus{}
	r.conns.Range(func(name, c any) bool {
		if st := c.(*connector).route.Load().status(); st != nil {
			out[name.(string)] = st
		}
		return true
	})
	return out
}
