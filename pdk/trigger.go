package pdk

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// Event is one item a trigger produced.
type Event struct {
	// ID is stable and unique within the source (the upstream object's id, or id plus
	// revision); the host drops events whose ID it has already seen. Required.
	ID string
	// Type is an optional sub-type ("opened", "closed").
	Type string
	// Time is when the event happened upstream; zero for unknown.
	Time time.Time
	// Data is the event's payload, encoded as JSON.
	Data any
}

// PollResult is what a poll handler returns.
type PollResult struct {
	// Events are the new items since the cursor the handler was given.
	Events []Event
	// Cursor is the opaque position the next poll starts from; the host stores it together with
	// the events and passes it back verbatim.
	Cursor string
	// More asks the host to poll again at once, to page through a backlog.
	More bool
}

// PollTrigger registers a poll trigger: the host calls handler every interval with the
// trigger's params (decoded into P, whose schema becomes params_schema) and the cursor the
// previous poll returned (nil on the first poll of a source).
//
// By convention the first poll (cursor nil) establishes a baseline and returns no historical
// events: it only computes the cursor. Options: [Title], [Description], [InputSchema] (for
// params), [EventType] or [EventSchema], [Interval].
func PollTrigger[P any](name string, handler func(ctx *Context, params P, cursor *string) (PollResult, error), opts ...Option) {
	defaultTable.addTrigger(newPollTrigger(name, handler, opts))
}

// WebhookSubscription is what the subscribe, renew and unsubscribe steps of a webhook trigger get.
type WebhookSubscription[P any] struct {
	// Params are the trigger's params.
	Params P
	// CallbackURL is the public URL the upstream must call (subscribe and renew).
	CallbackURL string
	// Secret is a per-subscription random secret to register upstream and to verify deliveries
	// with (subscribe and renew).
	Secret string
	// State is what subscribe or renew returned before (renew and unsubscribe).
	State json.RawMessage
}

// WebhookState is what subscribe and renew return.
type WebhookState struct {
	// State is anything the plugin needs later (typically the upstream hook's id), encoded as
	// JSON and stored durably by the host.
	State any
	// RenewAt is when the host should call renew; zero for never.
	RenewAt time.Time
}

// WebhookDelivery is what the receive step of a webhook trigger gets: one inbound request.
type WebhookDelivery[P any] struct {
	// Params are the trigger's params.
	Params P
	// Secret is the subscription's secret.
	Secret string
	// State is what subscribe or renew returned.
	State json.RawMessage
	// Request is the inbound HTTP request as the host received it.
	Request abi.InboundRequest
	// Body is Request.BodyBase64 decoded.
	Body []byte
}

// WebhookReceipt is what the receive step returns.
type WebhookReceipt struct {
	// Events are the events the delivery carries; none for a handshake or a ping.
	Events []Event
	// Response is what the host answers the upstream; nil means 200 with an empty body.
	Response *abi.WebhookResponse
	// RenewAt, when set, asks the host to call renew at that time (or at once, when it has
	// passed) instead of at the renew_at of the last subscribe or renew: for a delivery that
	// says the upstream subscription needs attention (Microsoft Graph's
	// reauthorizationRequired and subscriptionRemoved lifecycle notifications). Zero keeps
	// the schedule.
	RenewAt time.Time
}

// Webhook holds the handlers of a webhook trigger's lifecycle (ABI.md section 2). Subscribe and
// Receive are required. A nil Renew makes renew call Subscribe again; a nil Unsubscribe makes
// unsubscribe a no-op.
type Webhook[P any] struct {
	// Subscribe registers CallbackURL upstream and returns the state to keep.
	Subscribe func(ctx *Context, sub WebhookSubscription[P]) (WebhookState, error)
	// Renew extends an expiring upstream subscription.
	Renew func(ctx *Context, sub WebhookSubscription[P]) (WebhookState, error)
	// Unsubscribe removes the upstream registration.
	Unsubscribe func(ctx *Context, sub WebhookSubscription[P]) error
	// Receive turns one inbound request into events and, optionally, the answer to send.
	Receive func(ctx *Context, d WebhookDelivery[P]) (WebhookReceipt, error)
}

// WebhookTrigger registers a webhook trigger, served by the plugboard_webhook export. The
// trigger's params are decoded into P, whose schema becomes params_schema. Options:
// [Title], [Description], [InputSchema] (for params), [EventType] or [EventSchema].
func WebhookTrigger[P any](name string, handlers Webhook[P], opts ...Option) {
	defaultTable.addTrigger(newWebhookTrigger(name, handlers, opts))
}

// OnTimer registers the handler of the plugboard_on_timer export, called when a timer set with
// [Timers.Set] fires. Dispatch on ev.Name; ev.Payload is the payload given to Set. Register it
// once at most.
func OnTimer(handler func(ctx *Context, ev abi.TimerEvent) error) {
	defaultTable.setOnTimer(handler)
}

// triggerEntry is one registered trigger.
type triggerEntry struct {
	desc    abi.Trigger
	poll    func(ctx *Context, req *abi.PollRequest) (*abi.PollResult, error)
	webhook func(ctx *Context, req *abi.WebhookRequest) (*abi.WebhookResult, error)
	err     error
}

func triggerBase[P any](kind optKind, name string, opts []Option) (*triggerEntry, error) {
	e := &triggerEntry{desc: abi.Trigger{Name: name, Kind: abi.TriggerPoll}}
	if kind == kindWebhook {
		e.desc.Kind = abi.TriggerWebhook
	}
	if !validOpName(name) {
		return e, errors.New("the name must match ^[a-z][a-z0-9_]{0,63}$")
	}
	o := options{kind: kind}
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return e, o.err
	}
	if e.desc.ParamsSchema = o.input; e.desc.ParamsSchema == nil {
		raw, err := objectSchema(reflect.TypeFor[P]())
		if err != nil {
			return e, fmt.Errorf("params: %w", err)
		}
		e.desc.ParamsSchema = raw
	}
	e.desc.EventSchema = o.output
	e.desc.Title = o.title
	if e.desc.Title == "" {
		e.desc.Title = titleFromName(name)
	}
	e.desc.Description = o.description
	e.desc.DefaultIntervalS = int(o.defInterval / time.Second)
	e.desc.MinIntervalS = int(o.minInterval / time.Second)
	return e, nil
}

func newPollTrigger[P any](name string, handler func(*Context, P, *string) (PollResult, error), opts []Option) *triggerEntry {
	e, err := triggerBase[P](kindPoll, name, opts)
	if err == nil && handler == nil {
		err = errors.New("the handler is nil")
	}
	if err != nil {
		e.err = fmt.Errorf("pdk.PollTrigger(%q): %w", name, err)
		return e
	}
	e.poll = func(ctx *Context, req *abi.PollRequest) (*abi.PollResult, error) {
		params, err := decodeInto[P](req.Params)
		if err != nil {
			return nil, Errorf(abi.CodeInvalidInput, "params: %v", err)
		}
		res, err := handler(ctx, params, req.Cursor)
		if failed(err) {
			return nil, err
		}
		events, err := encodeEvents(res.Events)
		if err != nil {
			return nil, err
		}
		return &abi.PollResult{Events: events, Cursor: res.Cursor, More: res.More}, nil
	}
	return e
}

func newWebhookTrigger[P any](name string, h Webhook[P], opts []Option) *triggerEntry {
	e, err := triggerBase[P](kindWebhook, name, opts)
	if err == nil && (h.Subscribe == nil || h.Receive == nil) {
		err = errors.New("Webhook.Subscribe and Webhook.Receive are required")
	}
	if err != nil {
		e.err = fmt.Errorf("pdk.WebhookTrigger(%q): %w", name, err)
		return e
	}
	e.webhook = func(ctx *Context, req *abi.WebhookRequest) (*abi.WebhookResult, error) {
		params, err := decodeInto[P](req.Params)
		if err != nil {
			return nil, Errorf(abi.CodeInvalidInput, "params: %v", err)
		}
		sub := WebhookSubscription[P]{Params: params, CallbackURL: req.CallbackURL, Secret: req.Secret, State: req.State}
		switch req.Op {
		case abi.WebhookSubscribe, abi.WebhookRenew:
			f := h.Subscribe
			if req.Op == abi.WebhookRenew && h.Renew != nil {
				f = h.Renew
			}
			st, err := f(ctx, sub)
			if failed(err) {
				return nil, err
			}
			res := &abi.WebhookResult{}
			if st.State != nil {
				b, err := json.Marshal(st.State)
				if err != nil {
					return nil, errInternalf("encoding the webhook state: %v", err)
				}
				res.State = b
			}
			if !st.RenewAt.IsZero() {
				res.RenewAt = st.RenewAt.UTC().Format(time.RFC3339)
			}
			return res, nil
		case abi.WebhookUnsubscribe:
			if h.Unsubscribe != nil {
				if err := h.Unsubscribe(ctx, sub); failed(err) {
					return nil, err
				}
			}
			return &abi.WebhookResult{}, nil
		case abi.WebhookReceive:
			d := WebhookDelivery[P]{Params: params, Secret: req.Secret, State: req.State}
			if req.Request != nil {
				d.Request = *req.Request
				body, err := base64.StdEncoding.DecodeString(req.Request.BodyBase64)
				if err != nil {
					return nil, errInternalf("the inbound request's body_base64 does not decode: %v", err)
				}
				d.Body = body
			}
			rec, err := h.Receive(ctx, d)
			if failed(err) {
				return nil, err
			}
			events, err := encodeEvents(rec.Events)
			if err != nil {
				return nil, err
			}
			res := &abi.WebhookResult{Events: events, Response: rec.Response}
			if !rec.RenewAt.IsZero() {
				res.RenewAt = rec.RenewAt.UTC().Format(time.RFC3339)
			}
			return res, nil
		}
		return nil, errInternalf("unknown webhook op %q", req.Op)
	}
	return e
}

func encodeEvents(events []Event) ([]abi.Event, error) {
	out := make([]abi.Event, 0, len(events))
	for i, ev := range events {
		if ev.ID == "" {
			return nil, errInternalf("event %d has no ID", i)
		}
		b, err := json.Marshal(ev.Data)
		if err != nil {
			return nil, errInternalf("encoding event %q: %v", ev.ID, err)
		}
		ae := abi.Event{ID: ev.ID, Type: ev.Type, Data: b}
		if !ev.Time.IsZero() {
			ae.Time = ev.Time.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, ae)
	}
	return out, nil
}

func (t *table) addTrigger(e *triggerEntry) {
	if e.err != nil {
		t.fail(e.err)
		return
	}
	if t.claim("Trigger", e.desc.Name) {
		t.triggers = append(t.triggers, e)
	}
}

func (t *table) setOnTimer(h func(*Context, abi.TimerEvent) error) {
	switch {
	case h == nil:
		t.fail(errors.New("pdk.OnTimer: the handler is nil"))
	case t.onTimer != nil:
		t.fail(errors.New("pdk.OnTimer called twice"))
	default:
		t.onTimer = h
	}
}
