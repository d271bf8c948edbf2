package plugboard

import (
	"context"
	"encoding/json"
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
