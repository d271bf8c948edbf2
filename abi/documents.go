package abi

import "encoding/json"

// Connection is the non-secret view of a connection that the host passes to the guest. It is
// nil when the call has no connection.
type Connection struct {
	// ID is the connection's id, as given at creation.
	ID string `json:"id"`
	// Params are the connection's non-secret parameters.
	Params map[string]any `json:"params"`
}

// Common holds the fields every request except describe carries.
type Common struct {
	Connection     *Connection `json:"connection"`
	CorrelationID  string      `json:"correlation_id"`
	DeadlineUnixMS int64       `json:"deadline_unix_ms"`
}

// InvokeRequest is the input of plugboard_invoke.
type InvokeRequest struct {
	Action string          `json:"action"`
	Input  json.RawMessage `json:"input"`
	Common
}

// InvokeResult is the output of plugboard_invoke: exactly one of Output (a JSON object) and
// Error is set.
type InvokeResult struct {
	Output json.RawMessage `json:"output,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// PollRequest is the input of plugboard_poll.
type PollRequest struct {
	Trigger string          `json:"trigger"`
	Params  json.RawMessage `json:"params"`
	// Cursor is nil on the first poll of a source, afterwards the string the plugin returned.
	Cursor *string `json:"cursor"`
	Common
}

// PollResult is the output of plugboard_poll.
type PollResult struct {
	Events []Event `json:"events,omitempty"`
	Cursor string  `json:"cursor,omitempty"`
	More   bool    `json:"more,omitempty"`
	Error  *Error  `json:"error,omitempty"`
}

// Event is one item a trigger produced.
type Event struct {
	// ID is stable and unique within the source; the host deduplicates on it.
	ID   string          `json:"id"`
	Type string          `json:"type,omitempty"`
	Time string          `json:"time,omitempty"`
	Data json.RawMessage `json:"data"`
}

// WebhookRequest is the input of plugboard_webhook; Op selects the lifecycle step.
type WebhookRequest struct {
	Op          string          `json:"op"`
	Trigger     string          `json:"trigger"`
	Params      json.RawMessage `json:"params"`
	CallbackURL string          `json:"callback_url,omitempty"`
	Secret      string          `json:"secret,omitempty"`
	State       json.RawMessage `json:"state,omitempty"`
	Request     *InboundRequest `json:"request,omitempty"`
	Common
}

// InboundRequest is an HTTP request an upstream service sent to a webhook source.
type InboundRequest struct {
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Query      map[string]string `json:"query"`
	Headers    map[string]string `json:"headers"`
	BodyBase64 string            `json:"body_base64"`
}

// WebhookResult is the output of plugboard_webhook. Which fields are meaningful depends on the op.
type WebhookResult struct {
	State    json.RawMessage  `json:"state,omitempty"`
	RenewAt  string           `json:"renew_at,omitempty"`
	Events   []Event          `json:"events,omitempty"`
	Response *WebhookResponse `json:"response,omitempty"`
	Error    *Error           `json:"error,omitempty"`
}

// WebhookResponse is what the host answers the upstream service on the plugin's behalf.
type WebhookResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// TimerEvent is the input of plugboard_on_timer.
type TimerEvent struct {
	Name    string          `json:"name"`
	Payload json.RawMessage `json:"payload"`
	Common
}

// TimerResult is the output of plugboard_on_timer: {} or an error.
type TimerResult struct {
	Error *Error `json:"error,omitempty"`
}

// ErrorReply is the reply of a host import that refused or failed.
type ErrorReply struct {
	Error *Error `json:"error"`
}

// HTTPRequest is the request document of the plugboard_http import.
type HTTPRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is a text body; BodyBase64 a binary one. At most one is set.
	Body       *string `json:"body,omitempty"`
	BodyBase64 *string `json:"body_base64,omitempty"`
	TimeoutMS  int64   `json:"timeout_ms,omitempty"`
	// Auth set to false sends the request without credentials; nil means true.
	Auth *bool `json:"auth,omitempty"`
}

// HTTPResponse is the reply of the plugboard_http import. Body holds a UTF-8 body, BodyBase64
// any other; header names are canonical and multiple values are joined with ", " ("\n" for
// Set-Cookie).
type HTTPResponse struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body,omitempty"`
	BodyBase64 string            `json:"body_base64,omitempty"`
	Error      *Error            `json:"error,omitempty"`
}

// Operations of the plugboard_credential import.
const (
	CredentialHMACSHA256 = "hmac_sha256"
	CredentialReveal     = "reveal"
)

// CredentialRequest is the request document of the plugboard_credential import.
type CredentialRequest struct {
	Op         string `json:"op"`
	Field      string `json:"field"`
	DataBase64 string `json:"data_base64,omitempty"`
}

// CredentialResponse is the reply of the plugboard_credential import.
type CredentialResponse struct {
	MACBase64 string `json:"mac_base64,omitempty"`
	Value     string `json:"value,omitempty"`
	Error     *Error `json:"error,omitempty"`
}

// Operations of the plugboard_timer import.
const (
	TimerSet    = "set"
	TimerCancel = "cancel"
	TimerSleep  = "sleep"
)

// TimerRequest is the request document of the plugboard_timer import.
type TimerRequest struct {
	Op      string          `json:"op"`
	Name    string          `json:"name,omitempty"`
	DelayMS int64           `json:"delay_ms,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	ID      string          `json:"id,omitempty"`
	MS      int64           `json:"ms,omitempty"`
}

// TimerResponse is the reply of the plugboard_timer import.
type TimerResponse struct {
	ID    string `json:"id,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// Operations of the plugboard_kv import.
const (
	KVGet    = "get"
	KVSet    = "set"
	KVDelete = "delete"
)

// KVRequest is the request document of the plugboard_kv import.
type KVRequest struct {
	Op    string          `json:"op"`
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
	TTLS  int64           `json:"ttl_s,omitempty"`
}

// KVResponse is the reply of the plugboard_kv import.
type KVResponse struct {
	Found *bool           `json:"found,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	Error *Error          `json:"error,omitempty"`
}

// Limits of the plugboard_kv import (ABI.md section 5).
const (
	KVMaxKeyBytes   = 256
	KVMaxValueBytes = 64 << 10
	KVMaxScopeBytes = 1 << 20
)

// Limits of the plugboard_timer import.
const (
	TimerMinDelayMS  = 1000
	TimerMaxPerScope = 100
)
