package plugboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Delivery types of a subscription.
const (
	DeliveryWebhook = "webhook"
	DeliveryQueue   = "queue"
)

// Subscription statuses.
const (
	SubscriptionActive   = "active"
	SubscriptionPaused   = "paused"
	SubscriptionDisabled = "disabled"
	SubscriptionOverflow = "overflow"
)

// Delivery says how a subscription's events reach the subscriber: pushed to URL (webhook) or
// pulled from a queue.
type Delivery struct {
	// Type is DeliveryWebhook or DeliveryQueue.
	Type string `json:"type"`
	// URL is where a webhook delivery POSTs each event.
	URL string `json:"url,omitempty"`
}

// SubscriptionRequest is the body of POST /v1/subscriptions.
type SubscriptionRequest struct {
	Connector  string         `json:"connector"`
	Trigger    string         `json:"trigger"`
	Connection string         `json:"connection,omitempty"`
	Params     map[string]any `json:"params"`
	// IntervalS is the polling interval of a poll trigger in seconds; 0 leaves it to the
	// trigger's default.
	IntervalS int      `json:"interval_s,omitempty"`
	Delivery  Delivery `json:"delivery"`
}

// SubscriptionError is a subscription's last error.
type SubscriptionError struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at,omitzero"`
}

// SubscriptionCounts are a subscription's event counters.
type SubscriptionCounts struct {
	Events    int64 `json:"events"`
	Delivered int64 `json:"delivered"`
	Pending   int64 `json:"pending"`
	Dropped   int64 `json:"dropped"`
}

// PushState is the state of a webhook delivery.
type PushState struct {
	Attempts      int       `json:"attempts"`
	LastStatus    int       `json:"last_status,omitempty"`
	LastAttemptAt time.Time `json:"last_attempt_at,omitzero"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
}

// Source is the upstream poller or webhook registration a subscription shares with others of
// the same (connector, trigger, connection, params).
type Source struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Subscribers int    `json:"subscribers"`
	IntervalS   int    `json:"interval_s,omitempty"`
}

// Subscription is a subscription document. Fields the server adds later are kept in Raw.
type Subscription struct {
	ID           string             `json:"id"`
	Connector    string             `json:"connector"`
	Trigger      string             `json:"trigger"`
	Connection   string             `json:"connection"`
	Params       map[string]any     `json:"params,omitempty"`
	IntervalS    int                `json:"interval_s,omitempty"`
	Delivery     Delivery           `json:"delivery"`
	Status       string             `json:"status"`
	StatusReason string             `json:"status_reason,omitempty"`
	Owner        string             `json:"owner,omitempty"`
	CreatedAt    time.Time          `json:"created_at,omitzero"`
	LastPolledAt time.Time          `json:"last_polled_at,omitzero"`
	NextPollAt   time.Time          `json:"next_poll_at,omitzero"`
	LastEventAt  time.Time          `json:"last_event_at,omitzero"`
	LastError    *SubscriptionError `json:"last_error,omitempty"`
	LagS         float64            `json:"lag_s"`
	Counts       SubscriptionCounts `json:"counts"`
	Push         *PushState         `json:"push,omitempty"`
	Source       *Source            `json:"source,omitempty"`
	// SigningSecret is the whsec_ secret of a webhook delivery, in the answer to the create
	// call only.
	SigningSecret string `json:"signing_secret,omitempty"`

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the document and keeps it in Raw.
func (s *Subscription) UnmarshalJSON(b []byte) error {
	type plain Subscription
	return keepRaw(b, (*plain)(s), &s.Raw)
}

// Event is a delivered event (ABI.md "Delivered events").
type Event struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	EventType     string          `json:"event_type,omitempty"`
	SourceEventID string          `json:"source_event_id"`
	Timestamp     time.Time       `json:"timestamp"`
	Subscription  string          `json:"subscription"`
	Data          json.RawMessage `json:"data"`

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the document and keeps it in Raw.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	return keepRaw(b, (*plain)(e), &e.Raw)
}

// CreateSubscription creates a subscription with POST /v1/subscriptions. For webhook delivery
// the answer carries SigningSecret, which the server shows only this once. Errors: 404
// connector_not_found / connection_not_found, 400 invalid_input (params), 502 with the
// plugin's code when the baseline poll or the upstream registration fails.
func (c *Client) CreateSubscription(ctx context.Context, req SubscriptionRequest) (Subscription, error) {
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	var out Subscription
	_, err := c.call(ctx, http.MethodPost, "/v1/subscriptions", nil, req, &out)
	return out, err
}

// ListSubscriptions lists the subscriptions the caller may see with GET /v1/subscriptions.
func (c *Client) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	return list[Subscription](ctx, c, "/v1/subscriptions", "subscriptions")
}

// GetSubscription reads one subscription with GET /v1/subscriptions/{id}.
func (c *Client) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var out Subscription
	p, err := pathf("/v1/subscriptions/%s", id)
	if err == nil {
		_, err = c.call(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}

// SetSubscriptionInterval changes a poll subscription's interval with PATCH
// /v1/subscriptions/{id} {"interval_s": seconds}; 0 goes back to the trigger's default. The
// shared source is rescheduled at once.
func (c *Client) SetSubscriptionInterval(ctx context.Context, id string, seconds int) (Subscription, error) {
	var out Subscription
	p, err := pathf("/v1/subscriptions/%s", id)
	if err == nil {
		_, err = c.call(ctx, http.MethodPatch, p, nil, map[string]int{"interval_s": seconds}, &out)
	}
	return out, err
}

// DeleteSubscription stops a subscription with DELETE /v1/subscriptions/{id}.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	p, err := pathf("/v1/subscriptions/%s", id)
	if err == nil {
		_, err = c.call(ctx, http.MethodDelete, p, nil, nil, nil)
	}
	return err
}

// PullEvents leases up to max queued events of a queue subscription with GET
// /v1/subscriptions/{id}/events, long-polling up to wait while none is ready (0 answers at
// once). max <= 0 leaves it to the server (100). Leased events come back after 30 s unless
// acknowledged with [Client.AckEvents]; [Client.Events] does the loop.
func (c *Client) PullEvents(ctx context.Context, id string, max int, wait time.Duration) ([]Event, error) {
	p, err := pathf("/v1/subscriptions/%s/events", id)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if max > 0 {
		q.Set("max", strconv.Itoa(max))
	}
	waitS := 0
	if wait > 0 {
		waitS = int((wait + time.Second - 1) / time.Second)
		q.Set("wait_s", strconv.Itoa(waitS))
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: p, query: q, longPoll: time.Duration(waitS) * time.Second})
	if err != nil {
		return nil, err
	}
	var out struct {
		Events []Event `json:"events"`
	}
	if err := decodeDocument(resp, &out); err != nil {
		return nil, fmt.Errorf("GET %s%s: %w", c.base, p, err)
	}
	return out.Events, nil
}

// AckEvents acknowledges delivered events by id with POST /v1/subscriptions/{id}/events/ack
// and returns how many were newly acknowledged.
func (c *Client) AckEvents(ctx context.Context, id string, eventIDs []string) (int, error) {
	p, err := pathf("/v1/subscriptions/%s/events/ack", id)
	if err != nil {
		return 0, err
	}
	var out struct {
		Acked int `json:"acked"`
	}
	_, err = c.call(ctx, http.MethodPost, p, nil, map[string]any{"ids": eventIDs}, &out)
	return out.Acked, err
}

// Replay re-delivers the subscription's stored events since a time with POST
// /v1/subscriptions/{id}/replay and returns how many were queued again.
func (c *Client) Replay(ctx context.Context, id string, since time.Time) (int, error) {
	p, err := pathf("/v1/subscriptions/%s/replay", id)
	if err != nil {
		return 0, err
	}
	var out struct {
		Replayed int `json:"replayed"`
	}
	_, err = c.call(ctx, http.MethodPost, p, nil, map[string]string{"since": since.UTC().Format(time.RFC3339Nano)}, &out)
	return out.Replayed, err
}
