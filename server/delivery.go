package server

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
	deliveryWebhook = "webhook"
	deliveryQueue   = "queue"
)

// Codes of a failed push attempt, in the subscription's last_error and push.last_error_code.
const (
	// codeDeliveryRefused: the egress policy refused every address of the URL's host, the
	// same code plugboard_http and subscription creation give.
	codeDeliveryRefused = abi.CodePrivateAddress
	// codeDeliveryFailed: the receiver answered, with a status other than 2xx.
	codeDeliveryFailed = "delivery_failed"
	// codeDeliveryUnreachable: no answer: the name did not resolve, the connection failed,
	// or the push timeout passed.
	codeDeliveryUnreachable = "delivery_unreachable"
)

// deliveredEvent is ABI.md "Delivered events": what subscribers receive, pushed or pulled.
type deliveredEvent struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	EventType     string          `json:"event_type,omitempty"`
	SourceEventID string          `json:"source_event_id"`
	Timestamp     string          `json:"timestamp"`
	Subscription  string          `json:"subscription"`
	Data          json.RawMessage `json:"data"`
}

// deliveredID is the delivered event's id: unique per (subscription, event) and the same on
// every retry and replay, so subscribers can use it as the idempotency key.
func deliveredID(sub string, seq uint64) string {
	return "evt_" + strings.TrimPrefix(sub, "sub_") + "_" + strconv.FormatUint(seq, 10)
}

// parseDeliveredID returns the sequence number of one of sub's delivered ids.
func parseDeliveredID(sub, id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, "evt_"+strings.TrimPrefix(sub, "sub_")+"_")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	return seq, err == nil
}

func deliver(sub storage.Subscription, ev storage.StoredEvent) deliveredEvent {
	return deliveredEvent{ID: deliveredID(sub.ID, ev.Seq), Type: sub.Connector + "." + sub.Trigger, EventType: ev.Type,
		SourceEventID: ev.SourceEventID, Timestamp: ev.Time.UTC().Format(time.RFC3339Nano), Subscription: sub.ID, Data: ev.Data}
}

// newSigningSecret returns a Standard Webhooks secret: "whsec_" and 32 random bytes in base64.
func newSigningSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// signWebhook returns the Standard Webhooks signature header value for one message.
func signWebhook(secret, id string, ts int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("signing secret is not base64: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// startPusher starts the push worker of a subscription, unless it runs already.
func (t *triggers) startPusher(sub string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pushers[sub]; ok || t.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(t.ctx)
	t.pushers[sub] = cancel
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.push(ctx, sub)
		t.mu.Lock()
		delete(t.pushers, sub)
		t.mu.Unlock()
	}()
}

// stopPusher stops a subscription's push worker (deleted subscription).
func (t *triggers) stopPusher(sub string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cancel := t.pushers[sub]; cancel != nil {
		cancel()
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
// is deleted or disabled or the engine stops.
func (t *triggers) push(ctx context.Context, id string) {
	var secret string
	for ctx.Err() == nil {
		wake := t.wakeChan(id)
		sub, pending, err := t.s.st.QueueHead(ctx, id, pushWindow)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				t.log.Error("push delivery: reading the queue", "subscription", id, "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		case sub.ID == "" || sub.Status == storage.SubDisabled:
			return // deleted or disabled
		case len(pending) == 0:
			select {
			case <-wake:
			case <-ctx.Done():
			}
			continue
		}
		if wait := time.Until(pending[0].Entry.NextAt); wait > 0 {
			sleepCtx(ctx, wait)
			continue
		}
		if secret == "" {
			b, err := t.s.st.TriggerSecret(ctx, "sub", id)
			if err != nil {
				t.log.Error("push delivery: opening the signing secret", "subscription", id, "err", err)
				sleepCtx(ctx, 5*time.Second)
				continue
			}
			secret = string(b)
		}
		var outcomes []storage.PushOutcome
		disabled := false
		windowStart := time.Now()
		for _, p := range pending {
			if p.Entry.NextAt.After(time.Now()) || time.Since(windowStart) > pushWindowTime {
				break // a retry not due yet (order holds the rest back), or time to commit
			}
			o := t.attempt(ctx, sub, p, secret)
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
			if err := t.s.st.RecordPush(context.WithoutCancel(ctx), id, outcomes...); err != nil && ctx.Err() == nil {
				t.log.Error("push delivery: recording the attempts", "subscription", id, "err", err)
			}
		}
		if disabled {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// attempt makes one push attempt and decides what follows.
func (t *triggers) attempt(ctx context.Context, sub storage.Subscription, p storage.Pending, secret string) storage.PushOutcome {
	ev := deliver(sub, p.Event)
	body, _ := json.Marshal(ev)
	now := time.Now()
	o := storage.PushOutcome{Seq: p.Entry.Seq, At: now.UTC()}
	sig, err := signWebhook(secret, ev.ID, now.Unix(), body)
	if err != nil {
		o.Err, o.Code = err.Error(), codeDeliveryFailed
		o.GiveUp = true
		return o
	}
	// The delivery continues the trace of the poll or inbound webhook that produced the event.
	if p.Event.Traceparent != "" {
		ctx = propagator.Extract(ctx, propagation.MapCarrier{"traceparent": p.Event.Traceparent})
	}
	ctx, span := t.s.startSpan(ctx, "deliver "+sub.Connector+"."+sub.Trigger, trace.SpanKindClient,
		attribute.String("plugboard.subscription", sub.ID), attribute.String("plugboard.event_id", ev.ID),
		attribute.Int("plugboard.attempt", p.Entry.Attempts+1))
	defer span.End()
	actx, cancel := context.WithTimeout(ctx, t.o.PushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, sub.Delivery.URL, bytes.NewReader(body))
	if err != nil {
		o.Err, o.Code = err.Error(), codeDeliveryFailed
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
	t.s.injectTrace(ctx, req.Header)
	start := time.Now()
	resp, err := t.client.Do(req)
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
	t.s.metrics.add("plugboard_deliveries_total", labels("connector", sub.Connector, "trigger", sub.Trigger, "outcome", outcome), 1)
	t.s.metrics.observe("plugboard_delivery_duration_seconds", labels("connector", sub.Connector, "trigger", sub.Trigger), time.Since(start))
	if err == nil {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	switch {
	case err == nil && resp.StatusCode/100 == 2:
		o.Delivered = true
		return o
	case err == nil && resp.StatusCode == http.StatusGone:
		o.Disable = true
		o.Err, o.Code = "the receiver answered 410 Gone", codeDeliveryFailed
		return o
	case err == nil:
		o.Err, o.Code = fmt.Sprintf("the receiver answered %d", resp.StatusCode), codeDeliveryFailed
	}
	span.SetStatus(codes.Error, o.Err)
	n := p.Entry.Attempts // retries already made
	if n >= len(t.o.RetrySchedule) {
		o.GiveUp = true
		o.Err += fmt.Sprintf("; gave up after %d attempts", n+1)
		return o
	}
	wait := max(t.o.RetrySchedule[n], retryAfter)
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
		return "no response within the push timeout", codeDeliveryUnreachable
	}
	if host.IsAddressRefused(err) {
		return "refused: " + err.Error() + "; Plugboard pushes only to public addresses unless the server's --egress-allow names the range", codeDeliveryRefused
	}
	return err.Error(), codeDeliveryUnreachable
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
