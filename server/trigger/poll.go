package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
)

var propagator = propagation.TraceContext{}

// traceparentOf returns the W3C traceparent of the span in ctx, "" without a valid one.
func traceparentOf(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}

func (e *Engine) startSpan(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return e.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// pollOnce runs plugboard_poll and converts its events; a guest error comes back as the
// guest's error, every other failure as the host's error.
func (e *Engine) pollOnce(ctx context.Context, ref Call, params json.RawMessage, cursor *string) (*abi.PollResult, []storage.NewEvent, error) {
	res, _, err := ref.Poll(ctx, abi.PollRequest{Trigger: ref.Trigger().Name, Params: params, Cursor: cursor})
	if err != nil {
		return nil, nil, err
	}
	if res.Error != nil {
		return nil, nil, e.guestError(res.Error)
	}
	evs, err := e.convertEvents(res.Events, "plugboard_poll")
	return res, evs, err
}

// convertEvents checks a plugin's events and converts them for the store.
func (e *Engine) convertEvents(in []abi.Event, export string) ([]storage.NewEvent, error) {
	if len(in) > e.o.MaxEventsPerPoll {
		return nil, fmt.Errorf("%w: %s returned %d events, over the limit of %d; return fewer with more: true", host.ErrPluginFailed, export, len(in), e.o.MaxEventsPerPoll)
	}
	out := make([]storage.NewEvent, 0, len(in))
	for i, ev := range in {
		if ev.ID == "" {
			return nil, fmt.Errorf("%w: %s event %d has no id; every event needs a stable id", host.ErrPluginFailed, export, i)
		}
		if len(ev.ID) > 512 {
			return nil, fmt.Errorf("%w: %s event %d has an id of %d bytes, over 512", host.ErrPluginFailed, export, i, len(ev.ID))
		}
		var at time.Time
		if ev.Time != "" {
			var err error
			if at, err = time.Parse(time.RFC3339Nano, ev.Time); err != nil {
				return nil, fmt.Errorf("%w: %s event %q has time %q, which is not RFC 3339", host.ErrPluginFailed, export, ev.ID, ev.Time)
			}
		}
		data := ev.Data
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		out = append(out, storage.NewEvent{SourceEventID: ev.ID, Type: ev.Type, Time: at, Data: data})
	}
	return out, nil
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

// errLeaseLost ends a poll whose source another node took meanwhile.
var errLeaseLost = errors.New("trigger: another node took the source")

// runPoll polls a source until it has no more pages (bounded), committing each page's cursor
// and events in one transaction, each after renewing the source's lease: a node that lost
// the source commits nothing.
func (e *Engine) runPoll(ctx context.Context, id string) {
	src, err := e.st.GetSource(ctx, id)
	if err != nil {
		return // deleted meanwhile
	}
	subs, err := e.st.Subscriptions(ctx, id)
	if err != nil || len(subs) == 0 {
		return
	}
	release, err := e.acquireConn(ctx, src.Connection)
	if err != nil {
		return
	}
	defer release()
	corr := e.newCorr()
	ctx, span := e.startSpan(ctx, "poll "+src.Connector+"."+src.Trigger, trace.SpanKindInternal,
		attribute.String("plugboard.connector", src.Connector), attribute.String("plugboard.trigger", src.Trigger),
		attribute.String("plugboard.source", src.ID), attribute.String("plugboard.correlation_id", corr))
	defer span.End()
	origin := storage.Origin{CorrelationID: corr, Traceparent: traceparentOf(ctx)}
	ref, err := e.Prepare(ctx, src.Connector, src.Trigger, abi.TriggerPoll, src.Connection, corr, true)
	interval := 60 * time.Second
	ivS := 0 // the interval in seconds written with the schedule; 0 when the trigger is unknown
	if ref != nil {
		defer ref.Release()
		ivS = sourceInterval(ref.Trigger(), subs)
		interval = time.Duration(ivS) * time.Second
		// The subscriptions read above may have changed while this poll ran: check once it
		// wrote its schedule (schedule.go).
		defer func() {
			if ctx.Err() == nil {
				if err := e.reschedule(ctx, id, ref.Trigger()); err != nil {
					e.log.Warn("rescheduling a trigger source after its poll", "source", id, "err", err)
				}
			}
		}()
	}
	setInterval := func(s *storage.Source) {
		if ivS > 0 {
			s.PollIntervalS = ivS
		}
	}
	now := time.Now()
	if err == nil && ref.NeedsReauth() { // paused: no poll and no token request
		_, _ = e.st.UpdateSource(ctx, id, func(s *storage.Source) { s.NextPollAt = now.Add(interval); setInterval(s) })
		return
	}
	cursor := src.Cursor
	for page := 0; err == nil && page < e.o.MaxPagesPerPoll; page++ {
		start := time.Now()
		var res *abi.PollResult
		var evs []storage.NewEvent
		res, evs, err = e.pollOnce(ctx, ref, src.Params, cursor)
		e.metrics.Observe("plugboard_trigger_poll_duration_seconds", time.Since(start), "connector", src.Connector, "trigger", src.Trigger)
		if err != nil {
			break
		}
		more := res.More && page+1 < e.o.MaxPagesPerPoll
		next := time.Now().Add(jitter(interval))
		if more {
			next = time.Now()
		}
		if !e.confirm(ctx, sourceLease(id)) {
			err = errLeaseLost
			break
		}
		c := res.Cursor
		var cr storage.CommitResult
		cr, err = e.st.CommitEvents(ctx, id, evs, origin, e.limits(), func(s *storage.Source) {
			s.Cursor = &c
			s.LastPolledAt = time.Now().UTC()
			s.LastError = nil
			s.Failures = 0
			s.NextPollAt = next
			setInterval(s)
		})
		if err != nil {
			break
		}
		e.counted(src, "ok", cr)
		e.notify(cr.Notify...)
		if !res.More {
			return
		}
		cursor = &c
	}
	if err == nil || ctx.Err() != nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, errLeaseLost) {
		return
	}
	code := e.code(err)
	span.SetStatus(codes.Error, code)
	e.metrics.Add("plugboard_trigger_polls_total", 1, "connector", src.Connector, "trigger", src.Trigger, "outcome", code)
	e.log.Warn("poll failed; keeping the cursor", "source", id, "connector", src.Connector, "trigger", src.Trigger, "code", code, "err", err, "correlation_id", corr)
	_, _ = e.st.UpdateSource(ctx, id, func(s *storage.Source) {
		s.LastPolledAt = now.UTC()
		s.LastError = e.triggerError(err, now)
		s.Failures++
		s.NextPollAt = now.Add(backoff(interval, s.Failures-1))
		setInterval(s)
	})
}

// counted records a successful poll or receive in the metrics.
func (e *Engine) counted(src storage.Source, outcome string, cr storage.CommitResult) {
	if src.Kind == storage.SourcePoll {
		e.metrics.Add("plugboard_trigger_polls_total", 1, "connector", src.Connector, "trigger", src.Trigger, "outcome", outcome)
	}
	if cr.New > 0 {
		e.metrics.Add("plugboard_trigger_events_total", float64(cr.New), "connector", src.Connector, "trigger", src.Trigger)
	}
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

// SourceKey identifies a source: subscriptions with the same key share it.
func SourceKey(connector, trigger, connection string, params json.RawMessage) string {
	h := sha256.New()
	for _, p := range []string{connector, trigger, connection, string(params)} {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// startPollSource runs the baseline poll of a new poll source and stores the source with its
// first subscription; this node leads the new source. A failing baseline creates nothing.
func (e *Engine) startPollSource(ctx context.Context, ref Call, key string, sub *storage.Subscription, secret []byte) error {
	res, evs, err := e.pollOnce(ctx, ref, sub.Params, nil)
	if err != nil {
		return &BaselineError{Err: err}
	}
	now := time.Now().UTC()
	def, lo := ref.Trigger().Interval()
	iv := sub.IntervalS
	if iv == 0 {
		iv = def
	}
	iv = max(iv, lo)
	cursor := res.Cursor
	src := storage.Source{ID: "src_" + randomToken(16), Key: key, Kind: storage.SourcePoll, Status: storage.SourceActive,
		TriggerRef: sub.TriggerRef, Cursor: &cursor, PollIntervalS: iv,
		LastPolledAt: now, NextPollAt: now.Add(jitter(time.Duration(iv) * time.Second))}
	if res.More {
		src.NextPollAt = now
	}
	sub.SourceID = src.ID
	if err := e.st.CreateSource(ctx, src, nil, sub, secret); err != nil {
		return err
	}
	e.hold(ctx, sourceLease(src.ID)) // after the commit, as in startWebhookSource
	// A baseline that asked for history (params): deliver it.
	if len(evs) > 0 {
		cr, err := e.st.CommitEvents(ctx, src.ID, evs, storage.Origin{CorrelationID: ref.CorrelationID(), Traceparent: traceparentOf(ctx)}, e.limits(), nil)
		if err != nil {
			return err
		}
		e.notify(cr.Notify...)
	}
	return nil
}
