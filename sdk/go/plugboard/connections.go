package plugboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Auth types of a connection.
const (
	AuthNone   = "none"
	AuthAPIKey = "api_key"
	AuthBasic  = "basic"
	AuthOAuth2 = "oauth2"
)

// OAuth2 grants.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantClientCredentials = "client_credentials"
)

// Connection statuses.
const (
	StatusReady          = "ready"
	StatusPendingConsent = "pending_consent"
	StatusNeedsReauth    = "needs_reauth"
)

// Auth is a connection's auth object. In requests it carries the secrets of its Type; in
// responses only the non-secret fields come back. Formatting an Auth with the fmt verbs redacts
// APIKey, Password and ClientSecret.
type Auth struct {
	// Type is one of the Auth* constants.
	Type string `json:"type"`
	// APIKey is the key of an "api_key" connection.
	APIKey string `json:"api_key,omitempty"`
	// Username and Password are the credentials of a "basic" connection.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Grant, ClientID, ClientSecret and Scopes configure an "oauth2" connection.
	Grant        string   `json:"grant,omitempty"`
	ClientID     string   `json:"client_id,omitempty"`
	ClientSecret string   `json:"client_secret,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	// AuthorizationURL and TokenURL override the connector manifest's OAuth2 endpoints.
	AuthorizationURL string `json:"authorization_url,omitempty"`
	TokenURL         string `json:"token_url,omitempty"`
}

// String describes a with its secrets redacted.
func (a Auth) String() string {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "REDACTED"
	}
	return fmt.Sprintf("{Type:%s APIKey:%s Username:%s Password:%s Grant:%s ClientID:%s ClientSecret:%s Scopes:%v AuthorizationURL:%s TokenURL:%s}",
		a.Type, redact(a.APIKey), a.Username, redact(a.Password), a.Grant, a.ClientID,
		redact(a.ClientSecret), a.Scopes, a.AuthorizationURL, a.TokenURL)
}

// GoString is String, so %#v redacts too.
func (a Auth) GoString() string { return "plugboard.Auth" + a.String() }

// ConnectionRequest is the body of POST /v1/connections.
type ConnectionRequest struct {
	// ID names the connection.
	ID string `json:"id"`
	// Connectors are the connectors allowed to use the connection; at least one.
	Connectors []string `json:"connectors"`
	// Params are the non-secret parameters, validated against each connector's
	// connection_params.
	Params map[string]any `json:"params,omitempty"`
	// Auth is the credential.
	Auth Auth `json:"auth"`
	// Secrets are extra secret fields (a webhook signing secret, say) that plugins use through
	// plugboard_credential without seeing them.
	Secrets Secrets `json:"secrets,omitempty"`
	// RevealApproved lists the credential fields the connectors may reveal (ABI.md "reveal"
	// capability); nil approves none.
	RevealApproved []string `json:"reveal_approved,omitempty"`
	// RateLimit caps the calls made with the connection; nil means no limit.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
}

// RateLimit is a connection's call rate limit: a token bucket.
type RateLimit struct {
	// PerSecond is the sustained rate, above 0.
	PerSecond float64 `json:"per_second"`
	// Burst is how many calls may go at once; 0 leaves it to the server.
	Burst int `json:"burst,omitempty"`
}

// Secrets are a connection's extra secret fields, by name. Formatting them with the fmt verbs
// shows the names only.
type Secrets map[string]string

// String lists the names with their values redacted.
func (s Secrets) String() string {
	names := slices.Sorted(maps.Keys(s))
	for i, n := range names {
		names[i] = n + ":REDACTED"
	}
	return "map[" + strings.Join(names, " ") + "]"
}

// GoString is String, so %#v redacts too.
func (s Secrets) GoString() string { return "plugboard.Secrets" + s.String() }

// Credentials is the body of PUT /v1/connections/{id}/credentials: a new auth object and,
// optionally, new extra secrets, shaped as in ConnectionRequest.
type Credentials struct {
	Auth    Auth    `json:"auth"`
	Secrets Secrets `json:"secrets,omitempty"`
}

// ConnectionPatch is the body of PATCH /v1/connections/{id}. A nil field is left unchanged; a
// non-nil one, even empty, is sent.
type ConnectionPatch struct {
	Params     map[string]any
	Connectors []string
	// Hosts approves the origins the connection's credentials may go to.
	Hosts []string
	// RevealApproved sets the credential fields the connectors may reveal.
	RevealApproved []string
	// RateLimit sets the call rate limit; RemoveRateLimit drops it.
	RateLimit       *RateLimit
	RemoveRateLimit bool
}

// MarshalJSON sends the non-nil fields.
func (p ConnectionPatch) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if p.Params != nil {
		m["params"] = p.Params
	}
	if p.Connectors != nil {
		m["connectors"] = p.Connectors
	}
	if p.Hosts != nil {
		m["hosts"] = p.Hosts
	}
	if p.RevealApproved != nil {
		m["reveal_approved"] = p.RevealApproved
	}
	switch {
	case p.RemoveRateLimit && p.RateLimit != nil:
		return nil, errors.New("ConnectionPatch: set RateLimit or RemoveRateLimit, not both")
	case p.RemoveRateLimit:
		m["rate_limit"] = nil
	case p.RateLimit != nil:
		m["rate_limit"] = p.RateLimit
	}
	return json.Marshal(m)
}

// Connection is a stored connection. Secrets are never part of it.
type Connection struct {
	ID         string         `json:"id"`
	Connectors []string       `json:"connectors"`
	Params     map[string]any `json:"params,omitempty"`
	// Auth carries the type and, for OAuth2, the non-secret settings.
	Auth Auth `json:"auth"`
	// Hosts are the origins the connection's credentials may be sent to.
	Hosts []string `json:"hosts,omitempty"`
	// Status is one of the Status* constants.
	Status string `json:"status"`
	// ConsentURL is where a person grants an OAuth2 authorization_code connection; set while
	// Status is "pending_consent".
	ConsentURL string    `json:"consent_url,omitempty"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the document and keeps it in Raw.
func (c *Connection) UnmarshalJSON(b []byte) error {
	type plain Connection
	return keepRaw(b, (*plain)(c), &c.Raw)
}

// CreateConnection creates a connection with POST /v1/connections.
func (c *Client) CreateConnection(ctx context.Context, req ConnectionRequest) (Connection, error) {
	var out Connection
	_, err := c.call(ctx, http.MethodPost, "/v1/connections", nil, req, &out)
	return out, err
}

// ListConnections lists every connection with GET /v1/connections.
func (c *Client) ListConnections(ctx context.Context) ([]Connection, error) {
	return list[Connection](ctx, c, "/v1/connections", "connections")
}

// GetConnection reads a connection with GET /v1/connections/{id}. Errors: 404
// connection_not_found.
func (c *Client) GetConnection(ctx context.Context, id string) (Connection, error) {
	var out Connection
	p, err := pathf("/v1/connections/%s", id)
	if err == nil {
		_, err = c.call(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}

// PatchConnection changes a connection's params, connectors or hosts with PATCH
// /v1/connections/{id} and returns the updated connection.
func (c *Client) PatchConnection(ctx context.Context, id string, patch ConnectionPatch) (Connection, error) {
	var out Connection
	p, err := pathf("/v1/connections/%s", id)
	if err == nil {
		_, err = c.call(ctx, http.MethodPatch, p, nil, patch, &out)
	}
	return out, err
}

// RotateCredentials replaces a connection's credentials with PUT
// /v1/connections/{id}/credentials; calls after it use the new secret. It returns the updated
// connection, or a zero Connection with only ID set when the server answers without a body.
func (c *Client) RotateCredentials(ctx context.Context, id string, creds Credentials) (Connection, error) {
	out := Connection{ID: id}
	p, err := pathf("/v1/connections/%s/credentials", id)
	if err != nil {
		return out, err
	}
	resp, err := c.call(ctx, http.MethodPut, p, nil, creds, nil)
	if err != nil || len(resp.body) == 0 {
		return out, err
	}
	if err := decodeDocument(resp, &out); err != nil {
		return Connection{ID: id}, fmt.Errorf("PUT %s%s: %w", c.base, p, err)
	}
	return out, nil
}

// DeleteConnection deletes a connection with DELETE /v1/connections/{id}. Errors: 409 while
// subscriptions or MCP servers use it.
func (c *Client) DeleteConnection(ctx context.Context, id string) error {
	p, err := pathf("/v1/connections/%s", id)
	if err == nil {
		_, err = c.call(ctx, http.MethodDelete, p, nil, nil, nil)
	}
	return err
}
