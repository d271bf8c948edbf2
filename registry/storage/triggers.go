package storage

import (
	"encoding/json"
	"time"
)

// Source kinds and states.
const (
	SourcePoll    = "poll"
	SourceWebhook = "webhook"
	// SourceStarting marks a webhook source whose upstream subscribe has not completed: its hook
	// URL already answers (handshakes come during subscribe), but it has no subscription yet.
	SourceStarting = "starting"
	SourceActive   = "active"
	// SourceStopping marks a webhook source whose last subscription is gone but whose upstream
	// unsubscribe failed: it is retried, and a new subscription revives the source.
	SourceStopping = "stopping"
)

// Subscription statuses (API.md). Paused is computed from the connection, never stored.
const (
	SubActive   = "active"
	SubDisabled = "disabled" // the receiver answered 410 Gone
	SubOverflow = "overflow" // the queue reached its bound; later events are counted as dropped
)

// TriggerError is the last error of a source.
type TriggerError struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// TriggerRef names what a source polls or receives, and what a subscription subscribed to:
// a connector's trigger, run with a connection and params.
type TriggerRef struct {
	Connector  string          `json:"connector"`
	Trigger    string          `json:"trigger"`
	Connection string          `json:"connection,omitempty"`
	Params     json.RawMessage `json:"params"`
}

// Source is a poller or a webhook registration shared by the subscriptions with the same
// (connector, trigger, connection, params).
type Source struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	TriggerRef
	// Cursor is the poll cursor; nil before the baseline poll.
	Cursor *string `json:"cursor,omitempty"`
	// NextSeq is the sequence number the next new event gets (from 1).
	NextSeq uint64 `json:"next_seq"`
	// Events is how many events the source log holds.
	Events int `json:"events"`
	// HookToken is the unguessable token of /hooks/{token} (webhook sources).
	HookToken string `json:"hook_token,omitempty"`
	// CallbackURL is the public URL of /hooks/{token}, as given to the plugin.
	CallbackURL string `json:"callback_url,omitempty"`
	// State is what the plugin's subscribe or renew returned.
	State   json.RawMessage `json:"state,omitempty"`
	RenewAt time.Time       `json:"renew_at,omitzero"`
	// NextPollAt is when the scheduler polls next (poll sources) or retries renew.
	NextPollAt time.Time `json:"next_poll_at,omitzero"`
	// PollIntervalS is the interval in seconds NextPollAt was computed from (poll sources):
	// the shortest interval of its subscriptions, never below the trigger's min_interval_s.
	// 0 means not recorded yet (a source stored before the field existed).
	PollIntervalS int `json:"poll_interval_s,omitempty"`
	// LastPolledAt is when the source was last polled, successfully or not.
	LastPolledAt time.Time     `json:"last_polled_at,omitzero"`
	LastEventAt  time.Time     `json:"last_event_at,omitzero"`
	LastError    *TriggerError `json:"last_error,omitempty"`
	// Failures counts consecutive failed polls (or renewals), for backoff.
	Failures  int       `json:"failures,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Delivery says how a subscription receives events.
type Delivery struct {
	Type string `json:"type"` // "webhook" or "queue"
	URL  string `json:"url,omitempty"`
}

// PushState is the push delivery state of a subscription.
type PushState struct {
	Attempts      int64     `json:"attempts"`
	LastStatus    int       `json:"last_status,omitempty"`
	LastAttemptAt time.Time `json:"last_attempt_at,omitzero"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	// LastErrorCode is the stable code of LastError (set by the pusher), empty with it.
	LastErrorCode string `json:"last_error_code,omitempty"`
}

// Subscription is one subscriber of a source.
type Subscription struct {
	ID       string `json:"id"`
	SourceID string `json:"source_id"`
	TriggerRef
	IntervalS    int       `json:"interval_s,omitempty"`
	Delivery     Delivery  `json:"delivery"`
	Owner        string    `json:"owner,omitempty"`
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	// Counters: events enqueued, delivered (pushed with 2xx or acked), dropped (queue full),
	// failed (push retries exhausted), pending (in the queue now).
	Events    int64     `json:"events"`
	Delivered int64     `json:"delivered"`
	Dropped   int64     `json:"dropped"`
	Failed    int64     `json:"failed"`
	Pending   int64     `json:"pending"`
	Push      PushState `json:"push"`
}

// StoredEvent is one event of a source's log.
type StoredEvent struct {
	Seq           uint64          `json:"seq"`
	SourceEventID string          `json:"source_event_id"`
	Type          string          `json:"type,omitempty"`
	Time          time.Time       `json:"time"`
	Received      time.Time       `json:"received"`
	Data          json.RawMessage `json:"data"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	// Traceparent is the W3C trace context of the poll or inbound webhook that produced the
	// event, carried onto its deliveries.
	Traceparent string `json:"traceparent,omitempty"`
}

// Origin is where a commit's events come from: the correlation id and trace context of the
// poll or inbound webhook, carried onto deliveries.
type Origin struct {
	CorrelationID, Traceparent string
}

// QueueEntry is one pending delivery of a subscription.
type QueueEntry struct {
	Seq        uint64    `json:"seq"`
	Attempts   int       `json:"attempts"`
	NextAt     time.Time `json:"next_at,omitzero"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// Pending is a queue entry with its event.
type Pending struct {
	Entry QueueEntry
	Event StoredEvent
}

// TriggerLimits bound what a commit keeps.
type TriggerLimits struct {
	// MaxQueue is the queue bound of one subscription; an event past it is dropped for that
	// subscription (counted, status overflow) and stays in the source log for replay.
	MaxQueue int
	// MaxEvents bounds a source's event log (and so its deduplication ledger); the oldest
	// events no queue still needs are pruned beyond it.
	MaxEvents int
}

// SubscriptionView is a subscription with the receive time of its oldest pending event.
type SubscriptionView struct {
	Subscription
	OldestPending time.Time
}

// NewEvent is an event a poll or an inbound webhook produced.
type NewEvent struct {
	SourceEventID string
	Type          string
	Time          time.Time // zero: the receive time
	Data          json.RawMessage
}

// CommitResult says what a commit did.
type CommitResult struct {
	// New is how many events were new (not in the ledger).
	New int
	// Notify lists the subscriptions that got at least one queue entry.
	Notify []string
}

// PushOutcome is the result of one push attempt.
type PushOutcome struct {
	Seq        uint64
	At         time.Time
	Status     int    // HTTP status; 0 when no response
	Err        string // what went wrong, for last_error
	Code       string // Err's stable code
	Delivered  bool   // 2xx
	GiveUp     bool   // retries exhausted: drop the entry, count failed
	Disable    bool   // 410 Gone
	NextAt     time.Time
	NextReason string
}
