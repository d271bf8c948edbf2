package trigger

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// Options tune the trigger engine (API.md "Subscriptions"). Every zero value means the
// documented default.
type Options struct {
	// Tick is how often the scheduler looks for due polls, renewals and timers; 0 means 250 ms.
	Tick time.Duration
	// RetrySchedule is the wait before each push retry; nil means API.md's schedule (5 s, 5 min,
	// 30 min, 2 h, 5 h, 10 h, 10 h). After the last one the event is counted as failed.
	RetrySchedule []time.Duration
	// MaxQueue bounds each subscription's pending events; 0 means 10,000.
	MaxQueue int
	// MaxEventsPerSource bounds each source's event log and deduplication ledger; 0 means 10,000.
	MaxEventsPerSource int
	// MaxEventsPerPoll bounds the events one poll (or one inbound webhook) may return; 0 means 1,000.
	MaxEventsPerPoll int
	// LeaseFor is how long pulled events stay leased before they come back; 0 means 30 s.
	LeaseFor time.Duration
	// PushTimeout bounds one push attempt; 0 means 15 s.
	PushTimeout time.Duration
	// PollsPerConnection caps concurrent polls of one connection; 0 means 2.
	PollsPerConnection int
	// MaxPagesPerPoll bounds how many times a poll answering more: true is repeated at once
	// before the scheduler moves on; 0 means 50.
	MaxPagesPerPoll int

	// NodeName is this engine's name as a lease holder ([storage.Cluster.TryLease]); nodes
	// sharing a store must have different names. "" means the host name and the process id.
	NodeName string
	// LeaseTTL is how long a lease on a source, a push subscription or the timers lasts
	// without renewal; a node renews its leases every third of it, and a dead node's work is
	// taken over by another within about LeaseTTL*4/3 plus a Tick. 0 means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Recheck is how often push workers and long-polling pullers read their queue again
	// without a wake-up, which is how they see events committed by another node (an inbound
	// webhook there) and how new push subscriptions of other nodes are found; 0 means 1 s.
	Recheck time.Duration
}

// DefaultLeaseTTL is the default [Options.LeaseTTL]: with renewals every 2 s, a node that
// dies loses its sources within 6 s, and another takes them within 10 s (API.md "Cluster").
const DefaultLeaseTTL = 6 * time.Second

// DefaultRetrySchedule is the push retry schedule of API.md.
var DefaultRetrySchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defD(&o.Tick, 250*time.Millisecond)
	if o.RetrySchedule == nil {
		o.RetrySchedule = DefaultRetrySchedule
	}
	def(&o.MaxQueue, 10000)
	def(&o.MaxEventsPerSource, 10000)
	def(&o.MaxEventsPerPoll, 1000)
	defD(&o.LeaseFor, 30*time.Second)
	defD(&o.PushTimeout, 15*time.Second)
	def(&o.PollsPerConnection, 2)
	def(&o.MaxPagesPerPoll, 50)
	defD(&o.LeaseTTL, DefaultLeaseTTL)
	defD(&o.Recheck, time.Second)
	if o.NodeName == "" {
		h, _ := os.Hostname()
		o.NodeName = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	return o
}

// Call is one prepared guest call of a trigger export; [*registry.Prepared] is the one
// implementation outside tests.
type Call interface {
	CorrelationID() string
	Trigger() abi.Trigger
	NeedsReauth() bool
	Release()
	Poll(ctx context.Context, req abi.PollRequest) (*abi.PollResult, *host.Report, error)
	Webhook(ctx context.Context, req abi.WebhookRequest) (*abi.WebhookResult, *host.Report, error)
	OnTimer(ctx context.Context, ev abi.TimerEvent) (*abi.TimerResult, *host.Report, error)
}

var _ Call = (*registry.Prepared)(nil)

// PrepareFunc prepares a guest call ([registry.Registry.Prepare]).
type PrepareFunc func(ctx context.Context, spec registry.CallSpec) (Call, error)

// RegistryPreparer is the [PrepareFunc] of a registry: every guest call of the engine goes
// through [registry.Registry.Prepare].
func RegistryPreparer(reg *registry.Registry) PrepareFunc {
	return func(ctx context.Context, spec registry.CallSpec) (Call, error) {
		p, err := reg.Prepare(ctx, spec)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
}

// Metrics receives the engine's counters and latencies; labels come in name, value pairs.
type Metrics interface {
	Add(name string, v float64, labels ...string)
	Observe(name string, d time.Duration, labels ...string)
}

// Deps is what the engine uses. Store and Prepare are required; every other nil field has a
// harmless default, documented with it.
type Deps struct {
	// Store holds sources, subscriptions, queues, timers and leases.
	Store storage.Store
	// Prepare starts every guest call (polls, webhook steps, timers): [RegistryPreparer].
	Prepare PrepareFunc
	// Logger receives the engine's logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives counters and latencies; nil drops them.
	Metrics Metrics
	// Tracer makes the spans of polls and deliveries; nil makes none.
	Tracer trace.Tracer
	// HTTPClient pushes deliveries; it must check addresses against the egress policy and
	// follow no redirects (host.Host.HostHTTPClient). nil means a client that follows no
	// redirects and checks nothing, for tests.
	HTTPClient *http.Client
	// GuestError turns a guest's error document into the error the engine returns (the
	// server's problem with source "plugin"); nil means a [*GuestError].
	GuestError func(*abi.Error) error
	// Describe gives the problem code and message of an error, for a source's last_error,
	// logs and metric labels; nil means "internal" and the error's text.
	Describe func(error) (code, message string)
	// NewCorrelationID makes the correlation id of a poll, renewal, timer or unsubscribe; nil
	// means "c_" and random characters.
	NewCorrelationID func() string
}

// GuestError is a guest's error document answered by a trigger export, when [Deps.GuestError]
// is nil.
type GuestError struct{ Doc *abi.Error }

func (e *GuestError) Error() string { return e.Doc.Code + ": " + e.Doc.Message }

// BaselineError wraps the failure of the first plugin call of a new source (the baseline poll,
// or the upstream subscribe): the server answers it 502 (API.md "Subscriptions").
type BaselineError struct{ Err error }

func (e *BaselineError) Error() string { return "starting the trigger source failed: " + e.Err.Error() }

// Unwrap returns Err.
func (e *BaselineError) Unwrap() error { return e.Err }

// ErrStopped is returned by [Engine.Start] after [Engine.Stop].
var ErrStopped = errors.New("trigger: the engine is stopped; build a new one with New")

// Engine is the trigger engine of one node. Its methods are safe for concurrent use.
type Engine struct {
	st      storage.Store
	prepare PrepareFunc
	o       Options
	log     *slog.Logger
	metrics Metrics
	tracer  trace.Tracer
	client  *http.Client
	guest   func(*abi.Error) error
	desc    func(error) (string, string)
	newCorr func() string

	// loops (scheduler, push workers) end at Stop; work (polls, pushes, fires in flight) ends
	// when Wait's context does.
	loops, work           context.Context
	stopLoops, cancelWork context.CancelFunc
	wg                    sync.WaitGroup
	startOnce, stopOnce   sync.Once
	waitOnce              sync.Once
	started               bool
	crashed               bool // abandon: leases are left to expire
	lastPushScan          time.Time
	mu                    sync.Mutex
	running               map[string]bool               // sources and timers with work in flight
	timers                map[string]timerRetry         // timers whose last firing failed
	pushers               map[string]context.CancelFunc // push worker per subscription
	wake                  map[string]chan struct{}      // closed to wake a subscription's worker or pullers
	connSem               map[string]chan struct{}      // per-connection poll slots
	keyLocks              map[string]*sync.Mutex        // one start/stop at a time per source key
	held                  map[string]time.Time          // leases held: name -> time of the last renewal's start
	refused               map[string]time.Time          // leases another node held: name -> when to try again
}

type timerRetry struct {
	attempts int
	next     time.Time
}

// New builds an engine; it does nothing until [Engine.Start].
func New(d Deps, o Options) *Engine {
	o = o.withDefaults()
	e := &Engine{st: d.Store, prepare: d.Prepare, o: o, log: d.Logger, metrics: d.Metrics, tracer: d.Tracer, client: d.HTTPClient,
		guest: d.GuestError, desc: d.Describe, newCorr: d.NewCorrelationID,
		running: map[string]bool{}, timers: map[string]timerRetry{}, pushers: map[string]context.CancelFunc{},
		wake: map[string]chan struct{}{}, connSem: map[string]chan struct{}{}, keyLocks: map[string]*sync.Mutex{},
		held: map[string]time.Time{}, refused: map[string]time.Time{}}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.metrics == nil {
		e.metrics = noMetrics{}
	}
	if e.tracer == nil {
		e.tracer = noop.NewTracerProvider().Tracer("plugboard/trigger")
	}
	if e.client == nil {
		e.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if e.guest == nil {
		e.guest = func(doc *abi.Error) error { return &GuestError{Doc: doc} }
	}
	if e.desc == nil {
		e.desc = func(err error) (string, string) { return "internal", err.Error() }
	}
	if e.newCorr == nil {
		e.newCorr = func() string { return "c_" + randomToken(16) }
	}
	for _, kind := range []string{"source", "push", timersLease} {
		e.metrics.Add("plugboard_trigger_lease_losses_total", 0, "lease", kind) // the series exist from the start
	}
	e.loops, e.stopLoops = context.WithCancel(context.Background())
	e.work, e.cancelWork = context.WithCancel(context.Background())
	return e
}

type noMetrics struct{}

func (noMetrics) Add(string, float64, ...string)           {}
func (noMetrics) Observe(string, time.Duration, ...string) {}

// Options returns the engine's options with their defaults filled in.
func (e *Engine) Options() Options { return e.o }

// NodeName is the name the engine holds its leases under.
func (e *Engine) NodeName() string { return e.o.NodeName }

// Start resumes the durable state and runs the scheduler: it stops the sources left without
// subscribers (a crash between a subscription's delete and its source's stop) that no other
// node leads, starts the push workers this node can lease, and returns. A second Start does
// nothing; a Start after Stop is [ErrStopped].
func (e *Engine) Start(ctx context.Context) error {
	if e.loops.Err() != nil {
		return ErrStopped
	}
	var err error
	e.startOnce.Do(func() {
		var srcs []storage.Source
		var subs []storage.SubscriptionView
		if srcs, err = e.st.Sources(ctx); err != nil {
			return
		}
		if subs, err = e.st.Subscriptions(ctx, ""); err != nil {
			return
		}
		used := map[string]bool{}
		for _, sub := range subs {
			used[sub.SourceID] = true
			if sub.Delivery.Type == DeliveryWebhook && sub.Status != storage.SubDisabled {
				e.startPusher(sub.ID)
			}
		}
		for _, src := range srcs {
			if !used[src.ID] && e.hold(ctx, sourceLease(src.ID)) {
				e.log.Info("stopping a trigger source left without subscribers", "source", src.ID, "connector", src.Connector, "trigger", src.Trigger)
				e.stopSource(ctx, src)
			}
		}
		e.mu.Lock()
		e.started = true
		e.mu.Unlock()
		e.wg.Add(1)
		go e.schedule()
	})
	return err
}

// Stop makes the engine take no more work: the scheduler stops, push workers stop after the
// attempt they are making, and new subscriptions get no push worker here. Work in flight goes
// on; [Engine.Wait] waits for it.
func (e *Engine) Stop() {
	e.stopOnce.Do(e.stopLoops)
}

// Wait waits until the work in flight (polls, renewals, push attempts, timer firings) has
// finished, then releases the engine's leases so other nodes take its sources, push
// subscriptions and timers at once. When ctx ends first, the work in flight is canceled (a
// canceled poll commits nothing; a canceled push is retried), waited for, and Wait returns
// ctx's error. Call Stop first.
func (e *Engine) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		e.cancelWork()
		<-done
	}
	e.waitOnce.Do(func() {
		e.cancelWork()
		e.releaseAll()
	})
	return err
}

// abandon stops everything at once and keeps the leases, as a crash does: other nodes take
// the work only when the leases expire. For tests.
func (e *Engine) abandon() {
	e.mu.Lock()
	e.crashed = true
	e.mu.Unlock()
	e.stopLoops()
	e.cancelWork()
	e.wg.Wait()
}

// releaseAll ends every lease the engine holds.
func (e *Engine) releaseAll() {
	e.mu.Lock()
	if e.crashed {
		e.mu.Unlock()
		return
	}
	names := make([]string, 0, len(e.held))
	for n := range e.held {
		names = append(names, n)
	}
	e.held = map[string]time.Time{}
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range names {
		if err := e.st.ReleaseLease(ctx, n, e.o.NodeName); err != nil {
			e.log.Warn("releasing a trigger lease; another node takes the work when it expires", "lease", n, "err", err)
		}
	}
}

// Sources is how many trigger sources this node leads now (polls, or renews and
// unsubscribes): the node heartbeat's "sources" and the gauge plugboard_trigger_sources_led.
func (e *Engine) Sources() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for name := range e.held {
		if strings.HasPrefix(name, "source:") {
			n++
		}
	}
	return n
}

func sourceLease(id string) string { return "source:" + id }
func pushLease(sub string) string  { return "push:" + sub }

const timersLease = "timers"

// hold reports whether this node holds the lease name: it renews a held lease once a third of
// LeaseTTL has passed since the last renewal, and tries to take a lease it does not hold, but
// not again within a third of LeaseTTL after another node refused it.
func (e *Engine) hold(ctx context.Context, name string) bool {
	now := time.Now()
	e.mu.Lock()
	at, had := e.held[name]
	if had && now.Sub(at) < e.o.LeaseTTL/3 {
		e.mu.Unlock()
		return true
	}
	if !had && now.Before(e.refused[name]) {
		e.mu.Unlock()
		return false
	}
	e.mu.Unlock()
	return e.try(ctx, name)
}

// confirm renews the lease name now and reports whether this node still holds it: the check
// right before an effect that another node must not repeat (a poll's commit, a timer firing).
func (e *Engine) confirm(ctx context.Context, name string) bool { return e.try(ctx, name) }

// try calls TryLease and records the outcome. A store error keeps a held lease for as long
// as its last renewal lasts, and refuses a lease not held.
func (e *Engine) try(ctx context.Context, name string) bool {
	start := time.Now()
	ok, err := e.st.TryLease(ctx, name, e.o.NodeName, e.o.LeaseTTL)
	e.mu.Lock()
	defer e.mu.Unlock()
	at, had := e.held[name]
	switch {
	case err != nil:
		if ctx.Err() == nil {
			e.log.Warn("trigger lease: the store did not answer", "lease", name, "err", err)
		}
		if had && start.Sub(at) < e.o.LeaseTTL {
			return true
		}
		if had {
			e.lostLocked(name)
		}
		return false
	case ok:
		if e.loops.Err() != nil && !had {
			// Stopped meanwhile: keep nothing new (Wait may have released already).
			go func() { _ = e.st.ReleaseLease(context.WithoutCancel(ctx), name, e.o.NodeName) }()
			return false
		}
		e.held[name] = start
		delete(e.refused, name)
		return true
	}
	if had {
		e.lostLocked(name)
	}
	e.refused[name] = start.Add(e.o.LeaseTTL / 3)
	return false
}

// lostLocked forgets a lease another node took (this node renewed it too late) and stops
// the work that needed it.
func (e *Engine) lostLocked(name string) {
	delete(e.held, name)
	kind, id, _ := strings.Cut(name, ":")
	e.metrics.Add("plugboard_trigger_lease_losses_total", 1, "lease", kind)
	e.log.Warn("trigger lease lost to another node; it takes over this work", "lease", name, "node", e.o.NodeName)
	if kind == "push" {
		if cancel := e.pushers[id]; cancel != nil {
			cancel()
		}
	}
}

// release ends this node's lease name, when it holds it.
func (e *Engine) release(ctx context.Context, name string) {
	e.mu.Lock()
	_, had := e.held[name]
	delete(e.held, name)
	e.mu.Unlock()
	if had {
		if err := e.st.ReleaseLease(context.WithoutCancel(ctx), name, e.o.NodeName); err != nil {
			e.log.Warn("releasing a trigger lease", "lease", name, "err", err)
		}
	}
}

// keyLock returns the lock of a source key.
func (e *Engine) keyLock(key string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.keyLocks[key]
	if l == nil {
		l = &sync.Mutex{}
		e.keyLocks[key] = l
	}
	return l
}

// wakeChan returns the channel closed at the next notify of a subscription.
func (e *Engine) wakeChan(sub string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.wake[sub]
	if ch == nil {
		ch = make(chan struct{})
		e.wake[sub] = ch
	}
	return ch
}

// notify wakes a subscription's push worker and long-polling pullers on this node.
func (e *Engine) notify(subs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range subs {
		if ch := e.wake[id]; ch != nil {
			close(ch)
			delete(e.wake, id)
		}
	}
}

// schedule is the scheduler loop.
func (e *Engine) schedule() {
	defer e.wg.Done()
	tick := time.NewTicker(e.o.Tick)
	defer tick.Stop()
	for {
		e.scan()
		select {
		case <-e.loops.Done():
			return
		case <-tick.C:
		}
	}
}

// spawn runs fn in a goroutine that Wait waits for.
func (e *Engine) spawn(fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
}

// scan renews the leases of the sources this node leads, starts every due poll, renewal and
// stop of a source it leads or can take, fires the due timers when it holds the timers
// lease, and keeps the push workers' leases.
func (e *Engine) scan() {
	ctx := e.loops
	start := time.Now()
	srcs, err := e.st.Sources(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("trigger scheduler: reading sources", "err", err)
		}
		return
	}
	now := time.Now()
	present := make(map[string]bool, len(srcs))
	for _, src := range srcs {
		present[sourceLease(src.ID)] = true
		due := false
		switch {
		case src.Status == storage.SourceStopping:
			due = !src.NextPollAt.After(now)
		case src.Status != storage.SourceActive:
		case src.Kind == storage.SourcePoll:
			due = !src.NextPollAt.After(now)
		case src.Kind == storage.SourceWebhook:
			due = !src.RenewAt.IsZero() && !src.RenewAt.After(now) && !src.NextPollAt.After(now)
		}
		if !due && !e.leads(src.ID) {
			continue // nobody needs it now: no lease traffic for it
		}
		if !e.hold(ctx, sourceLease(src.ID)) || !due || !e.begin(src.ID) {
			continue
		}
		e.spawn(func() {
			defer e.end(src.ID)
			wctx := e.work
			switch {
			case src.Status == storage.SourceStopping:
				e.retryStop(wctx, src)
			case src.Kind == storage.SourcePoll:
				e.runPoll(wctx, src.ID)
			default:
				e.renew(wctx, src.ID)
			}
		})
	}
	e.dropGone(ctx, present, start)
	if e.hold(ctx, timersLease) {
		e.fireTimers(ctx, now)
	}
	e.keepPushers(ctx, now)
}

// leads reports whether this node holds the lease of a source.
func (e *Engine) leads(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.held[sourceLease(id)]
	return ok
}

// dropGone releases the leases of sources deleted (by any node) since, held since before the
// scan read the list.
func (e *Engine) dropGone(ctx context.Context, present map[string]bool, listed time.Time) {
	var gone []string
	e.mu.Lock()
	for name, at := range e.held {
		if strings.HasPrefix(name, "source:") && !present[name] && at.Before(listed) {
			gone = append(gone, name)
		}
	}
	e.mu.Unlock()
	for _, name := range gone {
		e.release(ctx, name)
	}
}

func (e *Engine) begin(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[id] {
		return false
	}
	e.running[id] = true
	return true
}

func (e *Engine) end(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.running, id)
}

// acquireConn takes one of a connection's poll slots.
func (e *Engine) acquireConn(ctx context.Context, conn string) (release func(), err error) {
	e.mu.Lock()
	sem := e.connSem[conn]
	if sem == nil {
		sem = make(chan struct{}, e.o.PollsPerConnection)
		e.connSem[conn] = sem
	}
	e.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Prepare prepares a trigger call of connector through [Deps.Prepare]: the active version
// leased, the trigger of the wanted kind ("" for either) found and the connection bound.
// allowReauth prepares it also while the connection needs consent again. The caller releases
// the call.
func (e *Engine) Prepare(ctx context.Context, connector, trigger, kind, connection, correlationID string, allowReauth bool) (Call, error) {
	return e.prepare(ctx, registry.CallSpec{Connector: connector, Connection: connection, CorrelationID: correlationID,
		Trigger: trigger, TriggerKind: kind, AllowNeedsReauth: allowReauth})
}

// guestError is the error of a guest error document, or plugin_failed when it lacks the code
// or message ABI.md requires.
func (e *Engine) guestError(doc *abi.Error) error {
	if doc.Code == "" || doc.Message == "" {
		return fmt.Errorf("%w: error document needs code and message", host.ErrPluginFailed)
	}
	return e.guest(doc)
}

// code is the problem code of err.
func (e *Engine) code(err error) string {
	c, _ := e.desc(err)
	return c
}

// triggerError renders an error for a source's last_error.
func (e *Engine) triggerError(err error, at time.Time) *storage.TriggerError {
	c, msg := e.desc(err)
	return &storage.TriggerError{Code: c, Message: msg, At: at.UTC()}
}

func (e *Engine) limits() storage.TriggerLimits {
	return storage.TriggerLimits{MaxQueue: e.o.MaxQueue, MaxEvents: e.o.MaxEventsPerSource}
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomToken returns n random bytes, base32 without padding, lower case.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(b32.EncodeToString(b))
}

// NewSubscriptionID returns a new subscription id, "sub_" and random characters.
func NewSubscriptionID() string { return "sub_" + randomToken(16) }

func sleepCtx(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}
