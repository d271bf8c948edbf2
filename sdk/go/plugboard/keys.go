package plugboard

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Roles of an API key (the README has the permission table).
const (
	RoleAdmin       = "admin"
	RoleAuthor      = "author"
	RoleConnections = "connections"
	RoleInvoker     = "invoker"
	RoleReader      = "reader"
)

// KeyScopes narrows a key to named connectors and connections; a nil list means no narrowing.
type KeyScopes struct {
	Connectors  []string `json:"connectors,omitempty"`
	Connections []string `json:"connections,omitempty"`
}

// KeySpec is the body of POST /v1/keys.
type KeySpec struct {
	Name   string     `json:"name"`
	Role   string     `json:"role"`
	Scopes *KeyScopes `json:"scopes,omitempty"`
	// ExpiresAt is when the key stops working; nil means never.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Key is an API key as the server shows it. Secret is set only in the answer to CreateKey: it
// is the bearer token, shown once.
type Key struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Scopes    KeyScopes  `json:"scopes"`
	Secret    string     `json:"secret,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at"`
	// Builtin marks key_admin, the server's configured admin token.
	Builtin bool `json:"builtin,omitempty"`
	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the raw document.
func (k *Key) UnmarshalJSON(b []byte) error {
	type plain Key
	return keepRaw(b, (*plain)(k), &k.Raw)
}

// CreateKey creates an API key with POST /v1/keys; the answer carries the secret, once.
func (c *Client) CreateKey(ctx context.Context, spec KeySpec) (Key, error) {
	var out Key
	_, err := c.call(ctx, http.MethodPost, "/v1/keys", nil, spec, &out)
	return out, err
}

// ListKeys lists the keys with GET /v1/keys (never their secrets).
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	return list[Key](ctx, c, "/v1/keys", "keys")
}

// GetKey reads one key with GET /v1/keys/{id}.
func (c *Client) GetKey(ctx context.Context, id string) (Key, error) {
	var out Key
	p, err := pathf("/v1/keys/%s", id)
	if err != nil {
		return out, err
	}
	_, err = c.call(ctx, http.MethodGet, p, nil, nil, &out)
	return out, err
}

// RevokeKey revokes a key with DELETE /v1/keys/{id}; its next request fails.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	p, err := pathf("/v1/keys/%s", id)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodDelete, p, nil, nil, nil)
	return err
}

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	Time          time.Time `json:"time"`
	Actor         string    `json:"actor"`
	Role          string    `json:"role"`
	Action        string    `json:"action"`
	Target        string    `json:"target"`
	Outcome       string    `json:"outcome"`
	Status        int       `json:"status"`
	CorrelationID string    `json:"correlation_id"`
	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the raw document.
func (e *AuditEntry) UnmarshalJSON(b []byte) error {
	type plain AuditEntry
	return keepRaw(b, (*plain)(e), &e.Raw)
}

// AuditQuery selects audit entries; zero fields select everything.
type AuditQuery struct {
	// Since keeps entries at or after this time.
	Since time.Time
	// Actor keeps the entries of one key id.
	Actor string
	// Target keeps the entries about one resource ("connection:gh-main").
	Target string
	// Limit caps the entries of one page (the server's default is 100, its maximum 1000).
	Limit int
	// Cursor is the Next of the previous page.
	Cursor string
}

// AuditPage is one page of the audit log, newest first; Next is "" on the last page.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"-"`
}

// Audit reads one page of the audit log with GET /v1/audit.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Target != "" {
		v.Set("target", q.Target)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	var page struct {
		Entries []AuditEntry `json:"entries"`
		Next    *string      `json:"next"`
	}
	_, err := c.call(ctx, http.MethodGet, "/v1/audit", v, nil, &page)
	out := AuditPage{Entries: page.Entries}
	if page.Next != nil {
		out.Next = *page.Next
	}
	return out, err
}

// AuditEntries reads the audit log from the newest entry back, following the pages of
// [Client.Audit] while the loop asks for more (q.Cursor is where it starts; q.Limit is the
// page size). A failed page is yielded as the error of a zero entry and ends the loop.
func (c *Client) AuditEntries(ctx context.Context, q AuditQuery) iter.Seq2[AuditEntry, error] {
	return func(yield func(AuditEntry, error) bool) {
		seen := map[string]bool{}
		for {
			page, err := c.Audit(ctx, q)
			if err != nil {
				yield(AuditEntry{}, err)
				return
			}
			for _, e := range page.Entries {
				if !yield(e, nil) {
					return
				}
			}
			if page.Next == "" || seen[page.Next] {
				return
			}
			seen[page.Next] = true
			q.Cursor = page.Next
		}
	}
}

// Invocation is the log of one action call, as GET /v1/invocations/{correlation_id} shows it.
type Invocation struct {
	CorrelationID string `json:"correlation_id"`
	Connector     string `json:"connector"`
	Version       string `json:"version"`
	Action        string `json:"action"`
	// Connection is empty for a connector whose auth type is "none".
	Connection string `json:"connection"`
	// Caller is the key id that made the call, with its Role.
	Caller     string    `json:"caller,omitempty"`
	Role       string    `json:"role,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS float64   `json:"duration_ms"`
	// Outcome is "ok" or the error code.
	Outcome string `json:"outcome"`
	// Error is the problem the call answered; nil for a success.
	Error *InvocationError `json:"error,omitempty"`
	// Outbound lists the HTTP calls the plugin made through the host.
	Outbound []OutboundCall `json:"outbound"`
	// Logs are the lines the plugin logged; LogsTruncated says some were dropped.
	Logs          []LogLine `json:"logs"`
	LogsTruncated bool      `json:"logs_truncated,omitempty"`

	// Raw is the document as the server sent it (guest and host times, memory peak, ...).
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the raw document.
func (i *Invocation) UnmarshalJSON(b []byte) error {
	type plain Invocation
	return keepRaw(b, (*plain)(i), &i.Raw)
}

// InvocationError is the error an invocation answered.
type InvocationError struct {
	Code   string `json:"code"`
	Source string `json:"source"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// OutboundCall is one HTTP call a plugin made during an invocation.
type OutboundCall struct {
	Method     string  `json:"method"`
	Origin     string  `json:"origin"`
	Status     int     `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	BytesIn    int64   `json:"bytes_in"`
	BytesOut   int64   `json:"bytes_out"`
	Retries    int     `json:"retries"`
	// Policy names the egress rule that refused the call, when one did.
	Policy string `json:"policy,omitempty"`
	Error  string `json:"error,omitempty"`
}

// LogLine is one line a plugin logged.
type LogLine struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// GetInvocation reads the log of one action call by its correlation id (the CorrelationID of
// [InvokeResponse] or of a [*Problem]) with GET /v1/invocations/{correlation_id}. Errors: 404
// when there is none, or the caller may not see that connector and connection.
func (c *Client) GetInvocation(ctx context.Context, correlationID string) (Invocation, error) {
	var out Invocation
	p, err := pathf("/v1/invocations/%s", correlationID)
	if err == nil {
		_, err = c.call(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}
