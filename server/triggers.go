package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// TriggerOptions tune the trigger engine (API.md "Subscriptions"). Every zero value means the
// documented default.
type TriggerOptions struct {
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
}

func (o TriggerOptions) withDefaults() TriggerOptions {
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
		o.RetrySchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	}
	def(&o.MaxQueue, 10000)
	def(&o.MaxEventsPerSource, 10000)
	def(&o.MaxEventsPerPoll, 1000)
	defD(&o.LeaseFor, 30*time.Second)
	defD(&o.PushTimeout, 15*time.Second)
	def(&o.PollsPerConnection, 2)
	def(&o.MaxPagesPerPoll, 50)
	return o
}

// triggers is the trigger engine: the scheduler of poll sources, webhook renewals and plugin
// timers, the push workers, and the wake-ups of long-polling pullers.
type triggers struct {
	s   *Server
	o   TriggerOptions
	log *slog.Logger
	// client pushes deliveries: the egress path's address checks, no redirects followed.
	client *http.Client
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	running  map[string]bool               // sources with a poll or renewal in flight
	timers   map[string]timerRetry         // timers whose last firing failed
	pushers  map[string]context.CancelFunc // push worker per subscription
	wake     map[string]chan struct{}      // closed to wake a subscription's worker or pullers
	connSem  map[string]chan struct{}      // per-connection poll slots
	keyLocks map[string]*sync.Mutex        // one start/stop at a time per source key
}

type timerRetry struct {
	attempts int
	next     time.Time
}

func newTriggers(s *Server, o TriggerOptions) *triggers {
	ctx, cancel := context.WithCancel(context.Background())
	return &triggers{s: s, o: o.withDefaults(), log: s.log, client: s.host.HostHTTPClient(), ctx: ctx, stop: cancel,
		running: map[string]bool{}, timers: map[string]timerRetry{}, pushers: map[string]context.CancelFunc{},
		wake: map[string]chan struct{}{}, connSem: map[string]chan struct{}{}, keyLocks: map[string]*sync.Mutex{}}
}

// start resumes the durable state: stops sources left without subscribers (a crash between a
// subscription's delete and its source's stop), starts a push worker per push subscription,
// and runs the scheduler.
func (t *triggers) start(ctx context.Context) error {
	srcs, err := t.s.st.Sources(ctx)
	if err != nil {
		return err
	}
	subs, err := t.s.st.Subscriptions(ctx, "")
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, sub := range subs {
		used[sub.SourceID] = true
		if sub.Delivery.Type == deliveryWebhook && sub.Status != storage.SubDisabled {
			t.startPusher(sub.ID)
		}
	}
	for _, src := range srcs {
		if !used[src.ID] {
			t.log.Info("stopping a trigger source left without subscribers", "source", src.ID, "connector", src.Connector, "trigger", src.Trigger)
			t.stopSource(ctx, src)
		}
	}
	t.wg.Add(1)
	go t.schedule()
	return nil
}

// close stops the scheduler and the workers and waits for them.
func (t *triggers) close() {
	t.stop()
	t.wg.Wait()
}

// keyLock returns the lock of a source key.
func (t *triggers) keyLock(key string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.keyLocks[key]
	if l == nil {
		l = &sync.Mutex{}
		t.keyLocks[key] = l
	}
	return l
}

// wakeChan returns the channel closed at the next notify of a subscription.
func (t *triggers) wakeChan(sub string) chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := t.wake[sub]
	if ch == nil {
		ch = make(chan struct{})
		t.wake[sub] = ch
	}
	return ch
}

// notify wakes a subscription's push worker and long-polling pullers.
func (t *triggers) notify(subs ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range subs {
		if ch := t.wake[id]; ch != nil {
			close(ch)
			delete(t.wake, id)
		}
	}
}

// schedule is the scheduler loop.
func (t *triggers) schedule() {
	defer t.wg.Done()
	tick := time.NewTicker(t.o.Tick)
	defer tick.Stop()
	for {
		t.scan()
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// scan starts every due poll, renewal and timer.
func (t *triggers) scan() {
	ctx := t.ctx
	now := time.Now()
	srcs, err := t.s.st.Sources(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Error("trigger scheduler: reading sources", "err", err)
		}
		return
	}
	for _, src := range srcs {
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
		if !due || !t.begin(src.ID) {
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer t.end(src.ID)
			switch {
			case src.Status == storage.SourceStopping:
				t.retryStop(ctx, src)
			case src.Kind == storage.SourcePoll:
				t.runPoll(ctx, src.ID)
			default:
				t.renew(ctx, src.ID)
			}
		}()
	}
	t.fireTimers(ctx, now)
}

func (t *triggers) begin(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running[id] {
		return false
	}
	t.running[id] = true
	return true
}

func (t *triggers) end(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.running, id)
}

// acquireConn takes one of a connection's poll slots.
func (t *triggers) acquireConn(ctx context.Context, conn string) (release func(), err error) {
	t.mu.Lock()
	sem := t.connSem[conn]
	if sem == nil {
		sem = make(chan struct{}, t.o.PollsPerConnection)
		t.connSem[conn] = sem
	}
	t.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// resolve prepares a trigger call of connector (registry.Prepare): the active version leased,
// the trigger of the wanted kind ("" for either) found and the connection bound. allowReauth
// prepares it also while the connection needs consent again ([registry.Prepared.NeedsReauth]).
// The caller releases the call.
func (t *triggers) resolve(ctx context.Context, connector, trigger, kind, connection, correlationID string, allowReauth bool) (*registry.Prepared, error) {
	return t.s.reg.Prepare(ctx, registry.CallSpec{Connector: connector, Connection: connection, CorrelationID: correlationID,
		Trigger: trigger, TriggerKind: kind, AllowNeedsReauth: allowReauth})
}

func triggerNames(m *abi.Manifest) string {
	if len(m.Triggers) == 0 {
		return "none"
	}
	names := make([]string, len(m.Triggers))
	for i, tr := range m.Triggers {
		names[i] = tr.Name + " (" + tr.Kind + ")"
	}
	return strings.Join(names, ", ")
}

// pollOnce runs plugboard_poll and converts its events; a guest error comes back as a plugin
// problem, every other failure as the host's error.
func (t *triggers) pollOnce(ctx context.Context, ref *registry.Prepared, params json.RawMessage, cursor *string) (*abi.PollResult, []storage.NewEvent, error) {
	res, _, err := ref.Poll(ctx, abi.PollRequest{Trigger: ref.Trigger().Name, Params: params, Cursor: cursor})
	if err != nil {
		return nil, nil, err
	}
	if res.Error != nil {
		return nil, nil, guestError(res.Error)
	}
	evs, err := t.convertEvents(res.Events, "plugboard_poll")
	return res, evs, err
}

// guestError is the problem of a guest error document, or plugin_failed when it lacks the code
// or message ABI.md requires.
func guestError(e *abi.Error) error {
	if e.Code == "" || e.Message == "" {
		return fmt.Errorf("%w: error document needs code and message", host.ErrPluginFailed)
	}
	return pluginProblem(e)
}

// convertEvents checks a plugin's events and converts them for the store.
func (t *triggers) convertEvents(in []abi.Event, export string) ([]storage.NewEvent, error) {
	if len(in) > t.o.MaxEventsPerPoll {
		return nil, fmt.Errorf("%w: %s returned %d events, over the limit of %d; return fewer with more: true", host.ErrPluginFailed, export, len(in), t.o.MaxEventsPerPoll)
	}
	out := make([]storage.NewEvent, 0, len(in))
	for i, e := range in {
		if e.ID == "" {
			return nil, fmt.Errorf("%w: %s event %d has no id; every event needs a stable id", host.ErrPluginFailed, export, i)
		}
		if len(e.ID) > 512 {
			return nil, fmt.Errorf("%w: %s event %d has an id of %d bytes, over 512", host.ErrPluginFailed, export, i, len(e.ID))
		}
		var at time.Time
		if e.Time != "" {
			var err error
			if at, err = time.Parse(time.RFC3339Nano, e.Time); err != nil {
				return nil, fmt.Errorf("%w: %s event %q has time %q, which is not RFC 3339", host.ErrPluginFailed, export, e.ID, e.Time)
			}
		}
		data := e.Data
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		out = append(out, storage.NewEvent{SourceEventID: e.ID, Type: e.Type, Time: at, Data: data})
	}
	return out, nil
}

// triggerError renders an error for a source's last_error.
func triggerError(err error, at time.Time) *storage.TriggerError {
	p := toProblem(err)
	return &storage.TriggerError{Code: p.Code, Message: p.Detail, At: at.UTC()}
}

// backoff is the wait after n consecutive failures of something that runs every interval.
func backoff(interval time.Duration, n int) time.Duration {
	d := interval << min(n, 6)
	return max(interval, min(d, 30*time.Minute))
}

// jitter spreads polls of sources with the same interval: ±10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d/10 + time.Duration(mrand.Int64N(int64(d/5)+1))
}

// runPoll polls a source until it has no more pages (bounded), committing each page's cursor
// and events in one transaction.
func (t *triggers) runPoll(ctx context.Context, id string) {
	src, err := t.s.st.GetSource(ctx, id)
	if err != nil {
		return // deleted meanwhile
	}
	subs, err := t.s.st.Subscriptions(ctx, id)
	if err != nil || len(subs) == 0 {
		return
	}
	release, err := t.acquireConn(ctx, src.Connection)
	if err != nil {
		return
	}
	defer release()
	corr := newCorrelationID()
	ctx, span := t.s.startSpan(ctx, "poll "+src.Connector+"."+src.Trigger, trace.SpanKindInternal,
		attribute.String("plugboard.connector", src.Connector), attribute.String("plugboard.trigger", src.Trigger),
		attribute.String("plugboard.source", src.ID), attribute.String("plugboard.correlation_id", corr))
	defer span.End()
	origin := storage.Origin{CorrelationID: corr, Traceparent: traceparentOf(ctx)}
	ref, err := t.resolve(ctx, src.Connector, src.Trigger, abi.TriggerPoll, src.Connection, corr, true)
	interval := 60 * time.Second
	if ref != nil {
		defer ref.Release()
		interval = time.Duration(sourceInterval(ref.Trigger(), subs)) * time.Second
	}
	now := time.Now()
	if err == nil && ref.NeedsReauth() { // paused: no poll and no token request
		_, _ = t.s.st.UpdateSource(ctx, id, func(s *storage.Source) { s.NextPollAt = now.Add(interval) })
		return
	}
	cursor := src.Cursor
	for page := 0; err == nil && page < t.o.MaxPagesPerPoll; page++ {
		start := time.Now()
		var res *abi.PollResult
		var evs []storage.NewEvent
		res, evs, err = t.pollOnce(ctx, ref, src.Params, cursor)
		t.s.metrics.observe("plugboard_trigger_poll_duration_seconds", labels("connector", src.Connector, "trigger", src.Trigger), time.Since(start))
		if err != nil {
			break
		}
		more := res.More && page+1 < t.o.MaxPagesPerPoll
		next := time.Now().Add(jitter(interval))
		if more {
			next = time.Now()
		}
		c := res.Cursor
		var cr storage.CommitResult
		cr, err = t.s.st.CommitEvents(ctx, id, evs, origin, t.limits(), func(s *storage.Source) {
			s.Cursor = &c
			s.LastPolledAt = time.Now().UTC()
			s.LastError = nil
			s.Failures = 0
			s.NextPollAt = next
		})
		if err != nil {
			break
		}
		t.counted(src, "ok", cr)
		t.notify(cr.Notify...)
		if !res.More {
			return
		}
		cursor = &c
	}
	if err == nil || ctx.Err() != nil || errors.Is(err, storage.ErrNotFound) {
		return
	}
	code := toProblem(err).Code
	span.SetStatus(codes.Error, code)
	t.s.metrics.add("plugboard_trigger_polls_total", labels("connector", src.Connector, "trigger", src.Trigger, "outcome", code), 1)
	t.log.Warn("poll failed; keeping the cursor", "source", id, "connector", src.Connector, "trigger", src.Trigger, "code", code, "err", err, "correlation_id", corr)
	_, _ = t.s.st.UpdateSource(ctx, id, func(s *storage.Source) {
		s.LastPolledAt = now.UTC()
		s.LastError = triggerError(err, now)
		s.Failures++
		s.NextPollAt = now.Add(backoff(interval, s.Failures-1))
	})
}

// counted records a successful poll or receive in the metrics.
func (t *triggers) counted(src storage.Source, outcome string, cr storage.CommitResult) {
	l := labels("connector", src.Connector, "trigger", src.Trigger)
	if src.Kind == storage.SourcePoll {
		t.s.metrics.add("plugboard_trigger_polls_total", labels("connector", src.Connector, "trigger", src.Trigger, "outcome", outcome), 1)
	}
	if cr.New > 0 {
		t.s.metrics.add("plugboard_trigger_events_total", l, float64(cr.New))
	}
}

func (t *triggers) limits() storage.TriggerLimits {
	return storage.TriggerLimits{MaxQueue: t.o.MaxQueue, MaxEvents: t.o.MaxEventsPerSource}
}

// sourceInterval is the shortest interval among a source's subscribers, bounded by the
// trigger's minimum.
func sourceInterval(tr abi.Trigger, subs []storage.SubscriptionView) int {
	def, lo := tr.Interval()
	best := 0
	for _, s := range subs {
		iv := s.IntervalS
		if iv <= 0 {
			iv = def
		}
		if best == 0 || iv < best {
			best = iv
		}
	}
	if best == 0 {
		best = def
	}
	return max(best, lo)
}

// sourceKey identifies a source: subscriptions with the same key share it.
func sourceKey(connector, trigger, connection string, params json.RawMessage) string {
	h := sha256.New()
	for _, p := range []string{connector, trigger, connection, string(params)} {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// randomToken returns n random bytes, base32 without padding, lower case.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(b32.EncodeToString(b))
}

// webhookCall runs one step of plugboard_webhook.
func (t *triggers) webhookCall(ctx context.Context, ref *registry.Prepared, req abi.WebhookRequest) (*abi.WebhookResult, error) {
	res, _, err := ref.Webhook(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, guestError(res.Error)
	}
	return res, nil
}

// parseRenewAt reads a plugin's renew_at.
func parseRenewAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: renew_at %q is not RFC 3339", host.ErrPluginFailed, s)
	}
	return at.UTC(), nil
}

// renew calls the webhook source's renew step and stores the new state and renew_at.
func (t *triggers) renew(ctx context.Context, id string) {
	src, err := t.s.st.GetSource(ctx, id)
	if err != nil {
		return
	}
	corr := newCorrelationID()
	now := time.Now()
	err = func() error {
		ref, err := t.resolve(ctx, src.Connector, src.Trigger, abi.TriggerWebhook, src.Connection, corr, true)
		if err != nil {
			return err
		}
		defer ref.Release()
		secret, err := t.s.st.TriggerSecret(ctx, "src", id)
		if err != nil {
			return err
		}
		res, err := t.webhookCall(ctx, ref, abi.WebhookRequest{Op: abi.WebhookRenew, Trigger: src.Trigger, Params: src.Params,
			CallbackURL: src.CallbackURL, Secret: string(secret), State: src.State})
		if err != nil {
			return err
		}
		at, err := parseRenewAt(res.RenewAt)
		if err != nil {
			return err
		}
		_, err = t.s.st.UpdateSource(ctx, id, func(s *storage.Source) {
			if len(res.State) > 0 {
				s.State = res.State
			}
			s.RenewAt, s.LastError, s.Failures, s.NextPollAt = at, nil, 0, time.Time{}
		})
		t.s.metrics.add("plugboard_trigger_renewals_total", labels("connector", src.Connector, "trigger", src.Trigger, "outcome", "ok"), 1)
		return err
	}()
	if err == nil || ctx.Err() != nil {
		return
	}
	code := toProblem(err).Code
	t.s.metrics.add("plugboard_trigger_renewals_total", labels("connector", src.Connector, "trigger", src.Trigger, "outcome", code), 1)
	t.log.Warn("webhook renewal failed; retrying", "source", id, "connector", src.Connector, "trigger", src.Trigger, "err", err, "correlation_id", corr)
	_, _ = t.s.st.UpdateSource(ctx, id, func(s *storage.Source) {
		s.LastError = triggerError(err, now)
		s.Failures++
		s.NextPollAt = now.Add(backoff(30*time.Second, s.Failures-1))
	})
}

// maxUnsubscribeAttempts bounds the retries of a failing upstream unsubscribe (with backoff
// from 5 s, capped at 30 min: about 3 hours in all); then the source is deleted anyway and the
// upstream registration may remain.
const maxUnsubscribeAttempts = 12

// stopSource stops a source without subscribers: a webhook source unsubscribes upstream, then
// the source is deleted. A failing unsubscribe leaves the source stopping, retried by the
// scheduler with backoff; its hook URL answers 410 meanwhile.
func (t *triggers) stopSource(ctx context.Context, src storage.Source) {
	if src.Kind == storage.SourceWebhook && (src.Status == storage.SourceActive || src.Status == storage.SourceStopping) {
		corr := newCorrelationID()
		err := func() error {
			ref, err := t.resolve(ctx, src.Connector, src.Trigger, abi.TriggerWebhook, src.Connection, corr, true)
			if err != nil {
				return err
			}
			defer ref.Release()
			_, err = t.webhookCall(ctx, ref, abi.WebhookRequest{Op: abi.WebhookUnsubscribe, Trigger: src.Trigger, Params: src.Params, State: src.State})
			return err
		}()
		attempt := 1
		if src.Status == storage.SourceStopping {
			attempt = src.Failures + 1
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case attempt < maxUnsubscribeAttempts:
			now := time.Now()
			t.log.Warn("upstream unsubscribe failed; retrying", "source", src.ID, "connector", src.Connector, "trigger", src.Trigger, "attempt", attempt, "err", err, "correlation_id", corr)
			_, _ = t.s.st.UpdateSource(ctx, src.ID, func(s *storage.Source) {
				s.Status, s.Failures, s.LastError = storage.SourceStopping, attempt, triggerError(err, now)
				s.NextPollAt = now.Add(backoff(5*time.Second, attempt-1))
			})
			return
		default:
			t.log.Error("upstream unsubscribe failed; giving up, the upstream registration may remain", "source", src.ID, "connector", src.Connector, "trigger", src.Trigger, "attempts", attempt, "err", err, "correlation_id", corr)
		}
	}
	if err := t.s.st.DeleteSource(ctx, src.ID); err != nil && !errors.Is(err, storage.ErrExists) {
		t.log.Error("deleting trigger source", "source", src.ID, "err", err)
	}
}

// retryStop retries the unsubscribe of a stopping source, unless a subscription revived it.
func (t *triggers) retryStop(ctx context.Context, due storage.Source) {
	lock := t.keyLock(due.Key)
	lock.Lock()
	defer lock.Unlock()
	src, err := t.s.st.GetSource(ctx, due.ID)
	if err != nil || src.Status != storage.SourceStopping {
		return
	}
	if subs, err := t.s.st.Subscriptions(ctx, src.ID); err != nil || len(subs) > 0 {
		return
	}
	t.stopSource(ctx, src)
}

// fireTimers fires the due plugin timers (plugboard_timer set), each at most once at a time.
func (t *triggers) fireTimers(ctx context.Context, now time.Time) {
	due, err := t.s.st.DueTimers(ctx, now, 100)
	if err != nil {
		return
	}
	for _, tm := range due {
		t.mu.Lock()
		r := t.timers[tm.ID]
		t.mu.Unlock()
		if r.next.After(now) || !t.begin("timer:"+tm.ID) {
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer t.end("timer:" + tm.ID)
			t.fire(ctx, tm)
		}()
	}
}

// maxTimerAttempts is how often a timer whose firing fails in the host (trap, timeout, version
// not loaded) is tried before it is dropped. A guest error answer counts as fired.
const maxTimerAttempts = 5

// timerReauthRecheck is how often a due timer whose connection needs consent again is looked
// at again.
const timerReauthRecheck = 30 * time.Second

// fire sends one timer to plugboard_on_timer and deletes it once the plugin answered.
func (t *triggers) fire(ctx context.Context, tm storage.Timer) {
	corr := newCorrelationID()
	err := func() error {
		call, err := t.s.reg.Prepare(ctx, registry.CallSpec{Connector: tm.Connector, Connection: tm.Connection, CorrelationID: corr})
		if err != nil {
			return err
		}
		defer call.Release()
		payload := tm.Payload
		if len(payload) == 0 {
			payload = json.RawMessage("null")
		}
		res, _, err := call.OnTimer(ctx, abi.TimerEvent{Name: tm.Name, Payload: payload})
		if err != nil {
			return err
		}
		if res.Error != nil {
			t.log.Warn("plugin timer handler answered an error", "connector", tm.Connector, "timer", tm.Name, "code", res.Error.Code, "message", res.Error.Message, "correlation_id", corr)
		}
		return nil
	}()
	if errors.Is(err, registry.ErrNeedsReauth) {
		// Paused like polls while the connection waits for consent: kept, not counted as an
		// attempt, and looked at again later.
		t.mu.Lock()
		r := t.timers[tm.ID]
		r.next = time.Now().Add(timerReauthRecheck)
		t.timers[tm.ID] = r
		t.mu.Unlock()
		t.s.metrics.add("plugboard_timers_fired_total", labels("connector", tm.Connector, "outcome", codeNeedsReauth), 1)
		return
	}
	outcome := "ok"
	drop := err == nil
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		outcome = toProblem(err).Code
		t.mu.Lock()
		r := t.timers[tm.ID]
		r.attempts++
		r.next = time.Now().Add(time.Second << min(r.attempts, 8))
		t.timers[tm.ID] = r
		t.mu.Unlock()
		drop = r.attempts >= maxTimerAttempts || errors.Is(err, registry.ErrConnectorNotFound) || errors.Is(err, registry.ErrConnectionNotFound) ||
			errors.Is(err, registry.ErrConnectionNotAllowed) || errors.Is(err, registry.ErrConnectionRequired)
		t.log.Warn("firing a plugin timer failed", "connector", tm.Connector, "timer", tm.Name, "attempt", r.attempts, "dropped", drop, "err", err, "correlation_id", corr)
	}
	t.s.metrics.add("plugboard_timers_fired_total", labels("connector", tm.Connector, "outcome", outcome), 1)
	if drop {
		t.mu.Lock()
		delete(t.timers, tm.ID)
		t.mu.Unlock()
		if err := t.s.st.DeleteTimer(ctx, tm.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.log.Error("deleting a fired timer", "timer", tm.ID, "err", err)
		}
	}
}
