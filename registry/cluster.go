package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// Several nodes over one store (API.md "Cluster"). Every node heartbeats a [storage.Node]
// that names the route it serves for each connector, and watches the active pointers and
// canaries: a change made on another node is provisioned and swapped here exactly as
// [Registry.SetActive] does it locally. A rollout answers once every live node's heartbeat
// names the new route, so a call that starts anywhere after the answer runs it.
//
// With bbolt there is one node: its heartbeat is the only one, and the wait ends at once.

const (
	// HeartbeatTTL is how long a node stays in the cluster after its last heartbeat.
	HeartbeatTTL = 10 * time.Second
	// heartbeatEvery is the heartbeat period: a third of the TTL would do; a second keeps
	// last_seen_at fresh and a route change is beaten at once anyway.
	heartbeatEvery = time.Second
	// SwapWait is how long a rollout waits for every live node to serve it.
	SwapWait = 10 * time.Second
)

// NodeInfo describes this node to the cluster.
type NodeInfo struct {
	// Name is unique in the namespace (serve --node-name).
	Name string
	// Address is where the node serves (its public base URL).
	Address string
	// Version is the Plugboard build it runs.
	Version string
	// Sources reports how many trigger sources the node polls now; nil means 0.
	Sources func() int
}

// node is the registry's cluster membership; the zero value is "not joined".
type node struct {
	info    NodeInfo
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	beatNow chan struct{}

	mu      sync.Mutex
	pending map[string]bool // connectors whose stored route changed, to reconcile
	wake    chan struct{}

	lastChange atomic.Int64 // unix nanoseconds of the last change the watch reported
	watchLag   atomic.Int64 // nanoseconds between a change and its reconcile, last one
}

// SwapTimeoutError is a rollout that every live node did not serve within [SwapWait]: the new
// route is stored and serves on the other nodes, which take it as soon as they catch up.
type SwapTimeoutError struct {
	Connector string
	Route     string
	// Nodes are the live nodes still serving another route.
	Nodes []string
}

func (e *SwapTimeoutError) Error() string {
	return fmt.Sprintf("connector %s: nodes %s did not serve %s within %v; they keep their previous version until they do",
		e.Connector, strings.Join(e.Nodes, ", "), e.Route, SwapWait)
}

// Join makes the registry a node of the store's cluster: it heartbeats info every second and
// follows the rollouts other nodes commit. It returns once the first heartbeat is stored and
// the watch is established. [Registry.Close] leaves the cluster.
func (r *Registry) Join(ctx context.Context, info NodeInfo) error {
	if info.Name == "" {
		return fmt.Errorf("%w: a node name is required", ErrInvalid)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n := &node{info: info, started: r.now().UTC(), cancel: cancel, done: make(chan struct{}),
		beatNow: make(chan struct{}, 1), pending: map[string]bool{}, wake: make(chan struct{}, 1)}
	r.node.Store(n)
	if err := r.st.Watch(wctx, r.onChange); err != nil {
		cancel()
		r.node.Store(nil)
		return fmt.Errorf("watching the store: %w", err)
	}
	if err := r.beat(ctx, n); err != nil {
		cancel()
		r.node.Store(nil)
		return fmt.Errorf("joining the cluster: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.heartbeats(wctx, n) }()
	go func() { defer wg.Done(); r.reconciler(wctx, n) }()
	go func() { wg.Wait(); close(n.done) }()
	// A rollout committed while this node was starting is caught up now.
	r.queueAll(ctx, n)
	return nil
}

// leave stops the heartbeats and removes this node from the cluster list.
func (r *Registry) leave(ctx context.Context) {
	n := r.node.Load()
	if n == nil {
		return
	}
	n.cancel()
	<-n.done
	if err := r.st.Leave(ctx, n.info.Name); err != nil {
		r.log.Warn("leaving the cluster", "node", n.info.Name, "err", err)
	}
}

// NodeName is this node's name, "" before [Registry.Join].
func (r *Registry) NodeName() string {
	if n := r.node.Load(); n != nil {
		return n.info.Name
	}
	return ""
}

// Nodes returns the live nodes of the cluster.
func (r *Registry) Nodes(ctx context.Context) ([]storage.Node, error) { return r.st.Nodes(ctx) }

// WatchLag is how long the last rollout another node committed took to be served here, from
// the watch's report to the swap; 0 before one.
func (r *Registry) WatchLag() time.Duration {
	if n := r.node.Load(); n != nil {
		return time.Duration(n.watchLag.Load())
	}
	return 0
}

func (r *Registry) heartbeats(ctx context.Context, n *node) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.beatNow:
		}
		if err := r.beat(ctx, n); err != nil && ctx.Err() == nil {
			r.log.Warn("cluster heartbeat failed; other nodes drop this one after 10 s without one", "node", n.info.Name, "err", err)
		}
	}
}

// beat stores this node's heartbeat with the routes it serves now.
func (r *Registry) beat(ctx context.Context, n *node) error {
	routes := map[string]string{}
	r.conns.Range(func(name, c any) bool {
		if rt := c.(*connector).route.Load(); rt != nil {
			routes[name.(string)] = rt.String()
		}
		return true
	})
	sources := 0
	if n.info.Sources != nil {
		sources = n.info.Sources()
	}
	return r.st.Heartbeat(ctx, storage.Node{Name: n.info.Name, Address: n.info.Address, StartedAt: n.started,
		Version: n.info.Version, Sources: sources, Routes: routes}, HeartbeatTTL)
}

// beatSoon asks for a heartbeat now (after a route change).
func (r *Registry) beatSoon() {
	if n := r.node.Load(); n != nil {
		select {
		case n.beatNow <- struct{}{}:
		default:
		}
	}
}

// String is the route as heartbeats report it: "1.2.0", or "1.2.0 canary 1.3.0 10%".
func (rt *route) String() string {
	if rt == nil {
		return ""
	}
	if rt.canary == nil {
		return rt.active.Info.Version
	}
	return fmt.Sprintf("%s canary %s %d%%", rt.active.Info.Version, rt.canary.Info.Version, rt.spec.Percent)
}

func routeString(active string, c *CanarySpec) string {
	if c == nil {
		return active
	}
	return fmt.Sprintf("%s canary %s %d%%", active, c.Version, c.Percent)
}

// waitServing waits until every live node serves want for name, or SwapWait passes.
func (r *Registry) waitServing(ctx context.Context, name, want string) error {
	if r.node.Load() == nil {
		return nil
	}
	r.beatSoon()
	deadline := time.Now().Add(SwapWait)
	for {
		nodes, err := r.st.Nodes(ctx)
		if err != nil {
			return fmt.Errorf("reading the cluster's nodes: %w", err)
		}
		var behind []string
		for _, n := range nodes {
			if n.Routes[name] != want {
				behind = append(behind, n.Name)
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return &SwapTimeoutError{Connector: name, Route: want, Nodes: behind}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// onChange is the store's watch callback: it queues the connector for a reconcile.
func (r *Registry) onChange(c storage.Change) {
	if c.Kind != storage.ChangeActive && c.Kind != storage.ChangeCanary {
		return
	}
	n := r.node.Load()
	if n == nil {
		return
	}
	n.lastChange.Store(time.Now().UnixNano())
	n.mu.Lock()
	n.pending[c.Key] = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (r *Registry) queueAll(ctx context.Context, n *node) {
	act, err := r.st.ActiveAll(ctx)
	if err != nil {
		r.log.Warn("reading the active versions to catch up", "err", err)
		return
	}
	n.mu.Lock()
	for name := range act {
		n.pending[name] = true
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (r *Registry) reconciler(ctx context.Context, n *node) {
	resync := time.NewTicker(30 * time.Second) // a missed watch report is caught up here
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-resync.C:
			r.queueAll(ctx, n)
			continue
		}
		n.mu.Lock()
		names := make([]string, 0, len(n.pending))
		for name := range n.pending {
			names = append(names, name)
		}
		clear(n.pending)
		n.mu.Unlock()
		slices.Sort(names)
		changed := false
		for _, name := range names {
			did, err := r.reconcile(ctx, name)
			if err != nil && ctx.Err() == nil {
				r.log.Error("serving a rollout another node committed", "connector", name, "err", err)
			}
			changed = changed || did
		}
		if changed {
			if t := n.lastChange.Load(); t > 0 {
				n.watchLag.Store(time.Now().UnixNano() - t)
			}
			if err := r.beat(ctx, n); err != nil && ctx.Err() == nil {
				r.log.Warn("cluster heartbeat failed", "err", err)
			}
		}
	}
}

// reconcile makes this node serve the connector's stored route: provision, swap, drain, as
// SetActive does, without the capability review (the node that committed it did that).
func (r *Registry) reconcile(ctx context.Context, name string) (bool, error) {
	act, err := r.st.Active(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sc, err := r.st.Canary(ctx, name)
	if err != nil {
		return false, err
	}
	var spec *CanarySpec
	if sc != nil && sc.Version != act {
		spec = &CanarySpec{Version: sc.Version, Percent: sc.Percent, MaxErrorRate: sc.MaxErrorRate, MinCalls: sc.MinCalls}
	}
	c := r.connector(name, true)
	c.swap.Lock()
	defer c.swap.Unlock()
	cur := c.route.Load()
	if cur != nil && cur.active.Info.Version == act && sameCanary(cur, spec) {
		return false, nil
	}
	nrt, err := r.provision(ctx, c, cur, act, spec, false)
	if err != nil {
		return false, err
	}
	r.drain(c, cur, nrt)
	r.log.Info("connector route changed by another node", "connector", name, "route", nrt.String())
	return true, nil
}

// storedCanary is spec as the store keeps it.
func storedCanary(spec *CanarySpec) *storage.Canary {
	if spec == nil {
		return nil
	}
	return &storage.Canary{Version: spec.Version, Percent: spec.Percent, MaxErrorRate: spec.MaxErrorRate, MinCalls: spec.MinCalls}
}
