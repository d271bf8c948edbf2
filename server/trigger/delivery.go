package trigger

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
)

// Delivery types of API.md.
const (
	DeliveryWebhook = "webhook"
	DeliveryQueue   = "queue"
)

// Codes of a failed push attempt, in the subscription's last_error and push.last_error_code.
const (
	// CodeDeliveryRefused: the egress policy refused every address of the URL's host, the
	// same code plugboard_http and subscription creation give.
	CodeDeliveryRefused = abi.CodePrivateAddress
	// CodeDeliveryFailed: the receiver answered, with a status other than 2xx.
	CodeDeliveryFailed = "delivery_failed"
	// CodeDeliveryUnreachable: no answer: the name did not resolve, the connection failed,
	// or the push timeout passed.
	CodeDeliveryUnreachable = "delivery_unreachable"
)

// Event is ABI.md "Delivered events": what subscribers receive, pushed or pulled.
type Event struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	EventType     string          `json:"event_type,omitempty"`
	SourceEventID string          `json:"source_event_id"`
	Timestamp     string          `json:"timestamp"`
	Subscription  string          `json:"subscription"`
	Data          json.RawMessage `json:"data"`
}

// DeliveredID is the delivered event's id: unique per (subscription, event) and the same on
// every retry and replay, so subscribers can use it as the idempotency key.
func DeliveredID(sub string, seq uint64) string {
	return "evt_" + strings.TrimPrefix(sub, "sub_") + "_" + strconv.FormatUint(seq, 10)
}

// ParseDeliveredID returns the sequence number of one of sub's delivered ids.
func ParseDeliveredID(sub, id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, "evt_"+strings.TrimPrefix(sub, "sub_")+"_")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil
}

// Deliver renders a stored event as sub's subscriber receives it.
func Deliver(sub storage.Subscription, ev storage.StoredEvent) Event {
	return Event{ID: DeliveredID(sub.ID, ev.Seq), Type: sub.Connector + "." + sub.Trigger, EventType: ev.Type,
		SourceEventID: ev.SourceEventID, Timestamp: ev.Time.UTC().Format(time.RFC3339Nano), Subscription: sub.ID, Data: ev.Data}
}

// NewSigningSecret returns a Standard Webhooks secret: "whsec_" and 32 random bytes in base64.
func NewSigningSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// SignWebhook returns the Standard Webhooks signature header value for one message.
func SignWebhook(secret, id string, ts int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("signing secret is not base64: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// startPusher starts the push worker of a subscription when this node can lease it, unless it
// runs already or the engine is stopped.
func (e *Engine) startPusher(sub string) {
	e.mu.Lock()
	_, ok := e.pushers[sub]
	e.mu.Unlock()
	if ok || e.loops.Err() != nil || !e.hold(e.loops, pushLease(sub)) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.pushers[sub]; ok || e.loops.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(e.work)
	e.pushers[sub] = cancel
	e.spawn(func() {
		gone := e.push(ctx, sub)
		e.mu.Lock()
		delete(e.pushers, sub)
		e.mu.Unlock()
		cancel()
		if gone {
			e.release(e.loops, pushLease(sub))
		}
	})
}

// stopPusher stops a subscription's push worker (deleted subscription).
func (e *Engine) stopPusher(sub string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cancel := e.pushers[sub]; cancel != nil {
		cancel()
	}
}

// keepPushers renews the leases of this node's push workers (a lost one stops its worker)
// and, every third of LeaseTTL, starts a worker for each push subscription nobody pushes:
// created on another node, or left by a node that died.
func (e *Engine) keepPushers(ctx context.Context, now time.Time) {
	e.mu.Lock()
	ids := make([]string, 0, len(e.pushers))
	for id := range e.pushers {
		ids = append(ids, id)
	}
	scan := now.Sub(e.lastPushScan) >= e.o.LeaseTTL/3
	if scan {
		e.lastPushScan = now
	}
	e.mu.Unlock()
	for _, id := range ids {
		e.hold(ctx, pushLease(id))
	}
	if !scan {
		return
	}
	subs, err := e.st.Subscriptions(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("trigger scheduler: reading subscriptions", "err", err)
		}
		return
	}
	for _, sub := range subs {
		if sub.Delivery.Type == DeliveryWebhook && sub.Status != storage.SubDisabled {
			e.startPusher(sub.ID)
		}
	}
}

// pushWindow is how many queued events a push worker reads at once. They are still sent one
// at a time, in order; their outcomes are committed together, so a busy subscription costs one
// transaction per window instead of one per event. A window is committed after pushWindowTime
// at the latest, which bounds both how stale the subscription's counters can be and how many
// deliveries a crash repeats.
const (
	pushWindow     = 64
	pushWindowTime = 250 * time.Millisecond
)

// push delivers a subscription's queue in order, one event at a time, until the subscription
// is deleted or disabled (gone is true), the engine stops or the worker is canceled.
func (e *Engine) push(ctx context.Context, id string) (gone bool) {
	var secret string
	for ctx.Err() == nil && e.loops.Err() == nil {
		wake := e.wakeChan(id)
		sub, pending, err := e.st.QueueHead(ctx, id, pushWindow)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				e.log.Error("push delivery: reading the queue", "subscription", id, "err", err)
				e.pause(ctx, time.Second, nil)
			}
			continue
		case sub.ID == "" || sub.Status == storage.SubDisabled:
			return true // deleted or disabled
		case len(pending) == 0:
			e.pause(ctx, e.o.Recheck, wake)
			continue
		}
		if wait := time.Until(pending[0].Entry.NextAt); wait > 0 {
			e.pause(ctx, min(wait, e.o.Recheck), wake)
			continue
		}
		if secret == "" {
			b, err := e.st.TriggerSecret(ctx, "sub", id)
			if err != nil {
				e.log.Error("push delivery: opening the signing secret", "subscription", id, "err", err)
				e.pause(ctx, 5*time.Second, nil)
				continue
			}
			secret = string(b)
		}
		var outcomes []storage.PushOutcome
		disabled := false
		windowStart := time.Now()
		for _, p := range pending {
			if p.Entry.NextAt.After(time.Now()) || time.Since(windowStart) > pushWindowTime || e.loops.Err() != nil {
				break // a retry not due yet (order holds the rest back), time to commit, or stopping
			}
			o := e.attempt(ctx, sub, p, secret)
			if ctx.Err() != nil {
				break
			}
			outcomes = append(outcomes, o)
			if o.Disable {
				disabled = true
				break
			}
			if !o.Delivered && !o.GiveUp {
				break // retry later; the events behind it wait
			}
		}
		if len(outcomes) > 0 {
			if err := e.st.RecordPush(context.WithoutCancel(ctx), id, outcomes...); err != nil && ctx.Err() == nil {
				e.log.Error("push delivery: recording the attempts", "subscription", id, "err", err)
			}
		}
		if disabled {
			return true
		}
	}
	return false
}

// pause waits d, or until wake is closed, the worker is canceled or the engine stops.
func (e *Engine) pause(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-wake:
	case <-ctx.Done():
	case <-e.loops.Done():
	}
}

// attempt makes one push attempt and decides what follows.
func (e *Engine) attempt(ctx context.Context, sub storage.Subscription, p storage.Pending, secret string) storage.PushOutcome {
	ev := Deliver(sub, p.Event)
	body, _ := json.Marshal(ev)
	now := time.Now()
	o := storage.PushOutcome{Seq: p.Entry.Seq, At: now.UTC()}
	sig, err := SignWebhook(secret, ev.ID, now.Unix(), body)
	if err != nil {
		o.Err, o.Code = err.Error(), CodeDeliveryFailed
		o.GiveUp = true
		return o
	}
	// The delivery continues the trace of the poll or inbound webhook that produced the event.
	if p.Event.Traceparent != "" {
		ctx = propagator.Extract(ctx, propagation.MapCarrier{"traceparent": p.Event.Traceparent})
	}
	ctx, span := e.startSpan(ctx, "deliver "+sub.Connector+"."+sub.Trigger, trace.SpanKindClient,
		attribute.String("plugboard.subscription", sub.ID), attribute.String("plugboard.event_id", ev.ID),
		attribute.Int("plugboard.attempt", p.Entry.Attempts+1))
	defer span.End()
	actx, cancel := context.WithTimeout(ctx, e.o.PushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, sub.Delivery.URL, bytes.NewReader(body))
	if err != nil {
		o.Err, o.Code = err.Error(), CodeDeliveryFailed
		o.GiveUp = true
		return o
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Plugboard-Webhooks/1")
	req.Header.Set("webhook-id", ev.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	if p.Event.CorrelationID != "" {
		req.Header.Set("X-Correlation-ID", p.Event.CorrelationID)
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	start := time.Now()
	resp, err := e.client.Do(req)
	outcome := "error"
	var retryAfter time.Duration
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		o.Status = resp.StatusCode
		outcome = strconv.Itoa(resp.StatusCode)
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	} else {
		o.Err, o.Code = deliveryError(err)
	}
	e.metrics.Add("plugboard_deliveries_total", 1, "connector", sub.Connector, "trigger", sub.Trigger, "outcome", outcome)
	e.metrics.Observe("plugboard_delivery_duration_seconds", time.Since(start), "connector", sub.Connector, "trigger", sub.Trigger)
	if err == nil {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	switch {
	case err == nil && resp.StatusCode/100 == 2:
		o.Delivered = true
		return o
	case err == nil && resp.StatusCode == http.StatusGone:
		o.Disable = true
		o.Err, o.Code = "the receiver answered 410 Gone", CodeDeliveryFailed
		return o
	case err == nil:
		o.Err, o.Code = fmt.Sprintf("the receiver answered %d", resp.StatusCode), CodeDeliveryFailed
	}
	span.SetStatus(codes.Error, o.Err)
	n := p.Entry.Attempts // retries already made
	if n >= len(e.o.RetrySchedule) {
		o.GiveUp = true
		o.Err += fmt.Sprintf("; gave up after %d attempts", n+1)
		return o
	}
	wait := max(e.o.RetrySchedule[n], retryAfter)
	o.NextAt = now.Add(wait).UTC()
	return o
}

// deliveryError says why a push got no response, without the URL's query (it may hold a
// token of the receiver's), and gives the code of that failure.
func deliveryError(err error) (msg, code string) {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no response within the push timeout", CodeDeliveryUnreachable
	}
	if host.IsAddressRefused(err) {
		return "refused: " + err.Error() + "; Plugboard pushes only to public addresses unless the server's --egress-allow names the range", CodeDeliveryRefused
	}
	return err.Error(), CodeDeliveryUnreachable
}

// maxRetryAfter caps a receiver's Retry-After.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads Retry-After as seconds or an HTTP date; 0 when absent or invalid. Any
// number of seconds above maxRetryAfter, also one too large for an integer, is maxRetryAfter
// (compared before converting, so it cannot overflow into a short wait).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(at.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

// Pull leases up to max of a queue subscription's pending events, waiting up to wait for the
// first one (a long poll): woken by events this node commits, and reading the queue again at
// least every Options.Recheck for those another node commits. The store's errors come back
// as they are ([storage.ErrNotFound]).
func (e *Engine) Pull(ctx context.Context, sub string, max int, wait time.Duration) ([]storage.Pending, error) {
	deadline := time.Now().Add(wait)
	for {
		wake := e.wakeChan(sub)
		got, next, err := e.st.LeaseEvents(ctx, sub, max, e.o.LeaseFor)
		if err != nil {
			return nil, err
		}
		if len(got) > 0 || !time.Now().Before(deadline) {
			return got, nil
		}
		until := deadline
		if !next.IsZero() && next.Before(until) {
			until = next
		}
		if r := time.Now().Add(e.o.Recheck); r.Before(until) {
			until = r
		}
		tm := time.NewTimer(time.Until(until))
		select {
		case <-wake:
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return nil, ctx.Err()
		}
		tm.Stop()
	}
}

// Replay enqueues again the events of sub's source received since since, wakes its
// deliveries and, for a push subscription, makes sure it is pushed. It returns how many it
// enqueued.
func (e *Engine) Replay(ctx context.Context, sub storage.Subscription, since time.Time) (int, error) {
	n, err := e.st.Replay(ctx, sub.ID, since, e.o.MaxQueue)
	if err != nil {
		return 0, err
	}
	e.notify(sub.ID)
	if sub.Delivery.Type == DeliveryWebhook && sub.Status != storage.SubDisabled {
		e.startPusher(sub.ID)
	}
	return n, nil
}
