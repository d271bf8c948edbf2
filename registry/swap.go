package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
)

// Hot swap is provision, then swap, then drain (DESIGN.md):
//
//  1. provision: the versions a rollout names are loaded (compiled from the cache when warm, a
//     first instance started, plugboard_describe run again and compared with the stored
//     manifest) or taken from memory when already loaded;
//  2. swap: the new route is stored in one atomic pointer write, after the active pointer was
//     committed to the store;
//  3. drain: versions the new route does not name are retired: calls holding a lease on them
//     finish there, and the last one to return releases the pools and the compiled code.
//
// A failure in step 1 or in the store write leaves the old route serving. A call takes its lease
// from the route it read, and a version is retired only after the route stopped naming it, so a
// lease that fails to take (the version retired between the two) is retried on the new route:
// no call fails because of a swap, and every call runs on a version that was routed while it ran.

// connector is the live routing of one connector.
type connector struct {
	name  string
	swap  sync.Mutex // one rollout change at a time
	route atomic.Pointer[route]
	last  atomic.Pointer[CanaryOutcome]
}

// route is one routing decision: the active version and an optional canary. It is never
// modified once published, except for its counters.
type route struct {
	active *Version
	canary *Version // nil without a canary
	spec   CanarySpec
	since  time.Time
	seq    atomic.Uint64 // calls that named no version, for the weighted split
	stats  [2]*sideStats // by side: active, canary
	ending atomic.Bool   // an automatic abort is under way
}

// Sides of a route.
const (
	sideActive = 0
	sideCanary = 1
)

// pick chooses the side of the next unpinned call: the canary for exactly Percent of every
// hundred calls, spread evenly.
func (rt *route) pick() int {
	p := uint64(rt.spec.Percent)
	if rt.canary == nil || p == 0 {
		return sideActive
	}
	n := rt.seq.Add(1)
	if n*p/100 != (n-1)*p/100 {
		return sideCanary
	}
	return sideActive
}

func (rt *route) version(side int) *Version {
	if side == sideCanary {
		return rt.canary
	}
	return rt.active
}

func (rt *route) names(v *Version) bool {
	return rt != nil && (rt.active == v || rt.canary == v)
}

// callLease is one call's hold on a version: from [Registry.acquire] to [callLease.Release] the
// version is not released, even when a swap retires it. A callLease is for one goroutine.
type callLease struct {
	// Version is the version the call runs on.
	Version *Version
	r       *Registry
	rt      *route // the route the version was chosen from; nil for pinned calls
	side    int
	done    bool
}

// Role says why the call runs on this version: "active", "canary" or "pinned" (the call named
// its version).
func (l *callLease) Role() string {
	switch {
	case l.rt == nil:
		return "pinned"
	case l.side == sideCanary:
		return "canary"
	}
	return "active"
}

// count records one call's outcome and latency for the route's side, which the canary
// statistics and the automatic abort read: failed when the host failed the call (trap, timeout,
// busy) or the plugin answered a guest error that maps to a 5xx status. Guest errors about the
// request (not_found, invalid_input, ...) are the caller's, not the version's. Pinned and
// canceled calls are not counted.
func (l *callLease) count(d time.Duration, err error, guest *abi.Error) {
	if l.rt == nil || errors.Is(err, host.ErrCanceled) {
		return
	}
	failed := err != nil || (guest != nil && abi.GuestErrorStatus(guest.Code) >= 500)
	l.r.record(l.rt, l.side, d, failed)
}

// Release ends the lease; the last lease of a retired version releases it. Release is
// idempotent.
func (l *callLease) Release() {
	if !l.done {
		l.done = true
		l.Version.release()
	}
}

// retiredBit marks a retired version in Version.state; the bits below count leases.
const retiredBit = int64(1) << 62

// lease takes a hold on v unless it is retired.
func (v *Version) lease() bool {
	for {
		s := v.state.Load()
		if s&retiredBit != 0 {
			return false
		}
		if v.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// release drops a hold; the last hold on a retired version closes its module. The close runs
// on its own goroutine so the call that happened to be last does not pay for it.
func (v *Version) release() {
	if v.state.Add(-1) == retiredBit {
		go v.mod.Close(context.Background())
	}
}

// retire stops new leases; the module is closed now when no lease is held, otherwise by the
// last [Version.release]. The close runs on its own goroutine: retire is called under r.mu.
func (v *Version) retire() {
	for {
		s := v.state.Load()
		if s&retiredBit != 0 {
			return
		}
		if v.state.CompareAndSwap(s, s|retiredBit) {
			if s == 0 {
				go v.mod.Close(context.Background())
			}
			return
		}
	}
}

func (v *Version) retired() bool { return v.state.Load()&retiredBit != 0 }

// maxLeaseAttempts bounds how often acquire retries a version retired under it; each retry reads
// a newer route, so more than a couple means something keeps unloading the version.
const maxLeaseAttempts = 100

// acquire picks the version a call runs on and leases it for the whole call: the version a call
// naming version pins, or, when version is empty, the active version or the canary by the
// route's weights. Whatever swap happens meanwhile, the call runs on the version it acquired
// (which was routed when it was acquired) until [callLease.Release]. Schema validation and the
// invocation should both use callLease.Version, so the side chosen holds for the whole call.
func (r *Registry) acquire(ctx context.Context, name, version string) (*callLease, error) {
	for attempt := 0; attempt < maxLeaseAttempts; attempt++ {
		rt := r.route(name)
		if version == "" {
			if rt == nil {
				var err error
				if rt, err = r.servedRoute(ctx, name); err != nil {
					return nil, err
				}
			}
			side := rt.pick()
			if v := rt.version(side); v.lease() {
				return &callLease{Version: v, r: r, rt: rt, side: side}, nil
			}
			continue // retired by a swap that already published a newer route
		}
		routed := false
		if rt != nil {
			for _, v := range []*Version{rt.active, rt.canary} {
				if v != nil && v.Info.Version == version {
					routed = true
					if v.lease() {
						v.pinnedAt.Store(r.now().UnixNano())
						return &callLease{Version: v, r: r}, nil
					}
				}
			}
		}
		if routed {
			continue
		}
		v, err := r.getOrLoad(ctx, name, version)
		if err != nil {
			return nil, err
		}
		v.pinnedAt.Store(r.now().UnixNano())
		if v.lease() {
			return &callLease{Version: v, r: r}, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("registry: %s %s kept being unloaded while a call tried to start on it", name, version)
}

// connector returns the routing entry of name, creating it when create is set.
func (r *Registry) connector(name string, create bool) *connector {
	if c, ok := r.conns.Load(name); ok {
		return c.(*connector)
	}
	if !create {
		return nil
	}
	c, _ := r.conns.LoadOrStore(name, &connector{name: name})
	return c.(*connector)
}

// route returns the current route of a connector; nil when no version of it is loaded.
func (r *Registry) route(name string) *route {
	if c := r.connector(name, false); c != nil {
		return c.route.Load()
	}
	return nil
}

// servedRoute returns the route this node serves for name. A node of a cluster that serves
// no route for it yet looks the connector up in the store first (and provisions it): its
// watch may lag another node's upload, or the upload's wait for every node may have timed
// out, and "uploaded on one node, used on another at once" must still hold. A connector the
// store does not have either is [ErrConnectorNotFound].
func (r *Registry) servedRoute(ctx context.Context, name string) (*route, error) {
	if rt := r.route(name); rt != nil {
		return rt, nil
	}
	if r.node.Load() != nil {
		if _, err := r.reconcile(ctx, name); err != nil {
			return nil, err
		}
		if rt := r.route(name); rt != nil {
			return rt, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrConnectorNotFound, name)
}

// routed reports whether version is the active or the canary version of name.
func (r *Registry) routed(name, version string) bool {
	rt := r.route(name)
	return rt != nil && (rt.active.Info.Version == version || (rt.canary != nil && rt.canary.Info.Version == version))
}

// loadCall is a load in progress that concurrent callers of the same version wait for.
type loadCall struct {
	done chan struct{}
	v    *Version
	err  error
}

// getOrLoad returns the loaded version name@version, loading it once however many callers ask
// at the same time. The load does not stop when one waiting caller gives up.
func (r *Registry) getOrLoad(ctx context.Context, name, version string) (*Version, error) {
	key := name + "@" + version
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: the registry is closed", host.ErrClosed)
	}
	if v := r.loaded[key]; v != nil {
		r.mu.Unlock()
		return v, nil
	}
	lc := r.loading[key]
	if lc == nil {
		lc = &loadCall{done: make(chan struct{})}
		r.loading[key] = lc
		go r.loadShared(context.WithoutCancel(ctx), key, name, version, lc)
	}
	r.mu.Unlock()
	select {
	case <-lc.done:
		return lc.v, lc.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Registry) loadShared(ctx context.Context, key, name, version string, lc *loadCall) {
	v, err := r.load(ctx, name, version)
	r.mu.Lock()
	delete(r.loading, key)
	if err == nil && r.closed {
		err = fmt.Errorf("%w: the registry is closed", host.ErrClosed)
	}
	if err == nil {
		r.loaded[key] = v
		r.evictPinnedLocked()
	}
	r.mu.Unlock()
	if err != nil && v != nil {
		v.retire()
		v = nil
	}
	lc.v, lc.err = v, err
	close(lc.done)
}

// publish stores rt as c's route unless one of its versions was unloaded meanwhile (then
// errRetired: load again). The check and the store happen under r.mu, where versions are
// unloaded, so a published route never names a retired version.
func (r *Registry) publish(c *connector, rt *route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("%w: the registry is closed", host.ErrClosed)
	}
	if rt.active.retired() || (rt.canary != nil && rt.canary.retired()) {
		return errRetired
	}
	c.route.Store(rt)
	return nil
}

var errRetired = errors.New("version unloaded during provisioning")

// unloadUnused unloads each of vs that no route names and no pinned call used within
// Retention.UnloadAfter. It is the drain step of a swap.
func (r *Registry) unloadUnused(vs ...*Version) {
	cutoff := r.now().Add(-r.ret.UnloadAfter).UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range vs {
		if v == nil || r.routedLocked(v) || v.pinnedAt.Load() > cutoff {
			continue
		}
		key := v.Info.Name + "@" + v.Info.Version
		if r.loaded[key] == v {
			delete(r.loaded, key)
		}
		v.retire()
	}
}

func (r *Registry) routedLocked(v *Version) bool {
	c := r.connector(v.Info.Name, false)
	return c != nil && c.route.Load().names(v)
}

// lastUse is when v was last loaded or used by a pinned call, in unix nanoseconds.
func (v *Version) lastUse() int64 { return max(v.loadedAt.Load(), v.pinnedAt.Load()) }

// evictPinnedLocked unloads versions no route names that are stale (Retention.UnloadAfter) or
// beyond Retention.MaxPinned, least recently used first. r.mu is held.
func (r *Registry) evictPinnedLocked() {
	cutoff := r.now().Add(-r.ret.UnloadAfter).UnixNano()
	var spare []string
	for key, v := range r.loaded {
		if r.routedLocked(v) {
			continue
		}
		if v.lastUse() <= cutoff {
			delete(r.loaded, key)
			v.retire()
			continue
		}
		spare = append(spare, key)
	}
	if len(spare) <= r.ret.MaxPinned {
		return
	}
	slices.SortFunc(spare, func(a, b string) int { return int(r.loaded[a].lastUse() - r.loaded[b].lastUse()) })
	for _, key := range spare[:len(spare)-r.ret.MaxPinned] {
		r.loaded[key].retire()
		delete(r.loaded, key)
	}
}

// janitor trims idle instances and unloads stale versions every Retention.Interval.
func (r *Registry) janitor() {
	defer close(r.janitorDone)
	t := time.NewTicker(r.ret.Interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.tidy()
		}
	}
}

// tidy is one janitor round.
func (r *Registry) tidy() {
	r.mu.Lock()
	r.evictPinnedLocked()
	vs := make([]*Version, 0, len(r.loaded))
	for _, v := range r.loaded {
		vs = append(vs, v)
	}
	r.mu.Unlock()
	for _, v := range vs {
		if n := v.mod.Trim(context.Background(), r.ret.PoolIdle); n > 0 {
			r.log.Debug("closed idle instances", "connector", v.Info.Name, "version", v.Info.Version, "instances", n)
		}
	}
}

// Rollout is what PUT /v1/connectors/{name}/active asks for: the version serving unpinned
// calls, optionally with a canary taking a share of them.
type Rollout struct {
	// Version becomes the active version.
	Version string
	// Canary, when not nil, receives Canary.Percent of the calls that name no version.
	Canary *CanarySpec
	// ApproveCapabilities accepts the origins, auth types and reveal capabilities that Version
	// or the canary ask for beyond the active version (see [ReviewCapabilities]). Without it
	// such a rollout fails with a *[CapabilitiesError].
	ApproveCapabilities bool
}

// RolloutResult is the routing a [Registry.SetActive] left in place.
type RolloutResult struct {
	// Active is the active version.
	Active storage.Version
	// Canary is the canary and its statistics; nil without a canary.
	Canary *CanaryStatus
	// Approved lists the capability changes the rollout approved; nil when there were none.
	Approved *Changes
}

// SetActive changes what serves a connector's unpinned calls: provision, then swap, then drain.
//
// The versions named are loaded (or taken from memory), their first instance started and
// their manifest confirmed; then the active version is committed to the store and the route
// replaced atomically; then the versions no longer routed drain (calls in flight finish on
// them) and are unloaded unless a pinned call used them recently. Any failure before the swap
// leaves the previous route serving and returns a *[CapabilitiesError] (review refused) or an
// *[ActivationError] (the version did not start); an unknown version is [ErrVersionNotFound].
//
// Promoting the canary (Version = the canary's, no canary) and aborting it (Version = the
// active one, no canary) reuse the loaded versions and take no provisioning time.
func (r *Registry) SetActive(ctx context.Context, name string, ro Rollout) (RolloutResult, error) {
	if err := ro.validate(); err != nil {
		return RolloutResult{}, err
	}
	next, err := r.storedVersion(ctx, name, ro.Version)
	if err != nil {
		return RolloutResult{}, err
	}
	var canaryInfo storage.Version
	if ro.Canary != nil {
		if canaryInfo, err = r.storedVersion(ctx, name, ro.Canary.Version); err != nil {
			return RolloutResult{}, err
		}
	}
	c := r.connector(name, true)
	c.swap.Lock()
	defer c.swap.Unlock()
	cur := c.route.Load()
	if cur != nil && cur.active.Info.Version == ro.Version && sameCanary(cur, ro.Canary) {
		return RolloutResult{Active: cur.active.Info, Canary: cur.status()}, nil
	}

	// Review what the new versions ask for against the active one.
	approved, err := r.review(ctx, name, cur, next, ro, canaryInfo)
	if err != nil {
		return RolloutResult{}, err
	}

	nrt, err := r.provision(ctx, c, cur, ro.Version, ro.Canary, true)
	if err != nil {
		return RolloutResult{}, err
	}
	r.drain(c, cur, nrt)
	r.log.Info("connector route changed", "connector", name, "active", ro.Version, "canary", nrt.canaryVersion(), "percent", nrt.spec.Percent)
	res := RolloutResult{Active: nrt.active.Info, Canary: nrt.status(), Approved: approved}
	// The answer waits for every live node to serve the new route (API.md "Cluster").
	c.swap.Unlock()
	err = r.waitServing(ctx, name, nrt.String())
	c.swap.Lock()
	return res, err
}

// provision loads the versions of the route (active, canary) and publishes it. With commit,
// the route is stored first (active pointer, then canary), so a crash after it restarts on
// the new route and every other node follows it; any failure restores the stored route and
// leaves the previous one serving.
func (r *Registry) provision(ctx context.Context, c *connector, cur *route, active string, canary *CanarySpec, commit bool) (*route, error) {
	name := c.name
	// A version unloaded by the janitor between its load and the swap is loaded again; that
	// needs a retention shorter than a provisioning, so twice is plenty.
	for attempt := 0; ; attempt++ {
		av, err := r.getOrLoad(ctx, name, active)
		if err != nil {
			return nil, &ActivationError{Connector: name, Version: active, Err: err}
		}
		var cv *Version
		if canary != nil {
			if cv, err = r.getOrLoad(ctx, name, canary.Version); err != nil {
				r.unloadUnused(av)
				return nil, &ActivationError{Connector: name, Version: canary.Version, Err: err}
			}
		}
		nrt := &route{active: av, canary: cv, since: r.now(), stats: [2]*sideStats{{}, {}}}
		if canary != nil {
			nrt.spec = *canary
			if cur != nil && cur.active == av && cur.canary == cv {
				nrt.stats, nrt.since = cur.stats, cur.since // a new percentage keeps the counts
			}
		}
		if commit {
			if err := r.commitRoute(ctx, name, cur, active, canary); err != nil {
				r.unloadUnused(av, cv)
				return nil, err
			}
		}
		err = r.publish(c, nrt)
		if err == nil {
			return nrt, nil
		}
		if !errors.Is(err, errRetired) || attempt == 2 {
			if commit && cur != nil {
				r.restoreRoute(ctx, name, cur)
			}
			r.unloadUnused(av, cv)
			return nil, &ActivationError{Connector: name, Version: active, Err: err}
		}
	}
}

// commitRoute stores the active pointer, then the canary, where they differ from cur.
func (r *Registry) commitRoute(ctx context.Context, name string, cur *route, active string, canary *CanarySpec) error {
	if cur == nil || cur.active.Info.Version != active {
		if err := r.st.SetActive(ctx, name, active); err != nil {
			return fmt.Errorf("storing the active version: %w", err)
		}
	}
	if cur == nil || !sameCanary(cur, canary) {
		if err := r.st.SetCanary(ctx, name, storedCanary(canary)); err != nil {
			if cur != nil {
				r.restoreRoute(ctx, name, cur)
			}
			return fmt.Errorf("storing the canary: %w", err)
		}
	}
	return nil
}

// restoreRoute stores cur again after a rollout failed half-way.
func (r *Registry) restoreRoute(ctx context.Context, name string, cur *route) {
	ctx = context.WithoutCancel(ctx)
	_ = r.st.SetActive(ctx, name, cur.active.Info.Version)
	var spec *CanarySpec
	if cur.canary != nil {
		spec = &cur.spec
	}
	_ = r.st.SetCanary(ctx, name, storedCanary(spec))
}

// drain retires what cur routed and nrt does not, and records how cur's canary ended.
func (r *Registry) drain(c *connector, cur, nrt *route) {
	if cur == nil {
		return
	}
	if cur.canary != nil && cur.canary != nrt.canary {
		c.last.Store(cur.outcome(nrt, r.now()))
	}
	r.unloadUnused(cur.active, cur.canary)
	r.beatSoon()
}

func (ro Rollout) validate() error {
	if ro.Version == "" {
		return fmt.Errorf("%w: version: required, e.g. {\"version\": \"1.2.0\"}", ErrInvalid)
	}
	if c := ro.Canary; c != nil {
		switch {
		case c.Version == "":
			return fmt.Errorf("%w: canary.version: required, e.g. {\"version\": \"1.4.0\", \"percent\": 10}", ErrInvalid)
		case c.Version == ro.Version:
			return fmt.Errorf("%w: canary.version: %s is also the active version; name another version or drop the canary", ErrInvalid, c.Version)
		case c.Percent < 0 || c.Percent > 100:
			return fmt.Errorf("%w: canary.percent: %d is not between 0 and 100", ErrInvalid, c.Percent)
		case c.MaxErrorRate < 0 || c.MaxErrorRate > 1:
			return fmt.Errorf("%w: canary.max_error_rate: %g is not between 0 and 1", ErrInvalid, c.MaxErrorRate)
		case c.MinCalls < 0:
			return fmt.Errorf("%w: canary.min_calls: %d is negative", ErrInvalid, c.MinCalls)
		}
	}
	return nil
}

func sameCanary(rt *route, spec *CanarySpec) bool {
	if spec == nil || rt.canary == nil {
		return spec == nil && rt.canary == nil
	}
	return rt.canary.Info.Version == spec.Version && rt.spec == *spec
}

// storedVersion reads a stored version; ErrVersionNotFound (or ErrConnectorNotFound when the
// connector has no version at all) when it is not stored.
func (r *Registry) storedVersion(ctx context.Context, name, version string) (storage.Version, error) {
	v, _, err := r.Version(ctx, name, version)
	return v, err
}

// review checks the capabilities of the versions a rollout brings in against the stored active
// version. The first version of a connector has nothing to be compared with; a version that
// is already the canary passed the review when it became one.
func (r *Registry) review(ctx context.Context, name string, cur *route, next storage.Version, ro Rollout, canary storage.Version) (*Changes, error) {
	activeVer, err := r.st.Active(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	base, err := r.st.Version(ctx, name, activeVer)
	if err != nil {
		return nil, err
	}
	var baseMan abi.Manifest
	if err := json.Unmarshal(base.Manifest, &baseMan); err != nil {
		return nil, fmt.Errorf("stored manifest of %s %s: %w", name, activeVer, err)
	}
	changes := Changes{Against: activeVer}
	reviewed := func(v storage.Version) error {
		if v.Version == activeVer || (cur != nil && cur.canary != nil && cur.canary.Info.Version == v.Version) {
			return nil
		}
		var m abi.Manifest
		if err := json.Unmarshal(v.Manifest, &m); err != nil {
			return fmt.Errorf("stored manifest of %s %s: %w", name, v.Version, err)
		}
		changes.add(v.Version, ReviewCapabilities(&baseMan, &m))
		return nil
	}
	if err := reviewed(next); err != nil {
		return nil, err
	}
	if ro.Canary != nil {
		if err := reviewed(canary); err != nil {
			return nil, err
		}
	}
	if changes.Empty() {
		return nil, nil
	}
	if !ro.ApproveCapabilities {
		return nil, &CapabilitiesError{Connector: name, Changes: changes}
	}
	return &changes, nil
}
