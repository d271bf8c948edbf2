package plugboard

import (
	"context"
	"net/http"
)

// Reauthorize asks for a new consent URL for an OAuth2 authorization_code connection with POST
// /v1/connections/{id}/reauthorize (after needs_reauth, or with scopes non-nil to change them);
// earlier consent URLs stop working. A client_credentials connection gets a new token at once
// instead. Errors: 400 invalid_request for other auth types, 502 oauth_token_failed.
func (c *Client) Reauthorize(ctx context.Context, id string, scopes []string) (Connection, error) {
	var out Connection
	p, err := pathf("/v1/connections/%s/reauthorize", id)
	if err != nil {
		return out, err
	}
	var body any
	if scopes != nil {
		body = map[string]any{"scopes": scopes}
	}
	_, err = c.call(ctx, http.MethodPost, p, nil, body, &out)
	return out, err
}

// MasterKey describes the server's master key (never the key itself).
type MasterKey struct {
	// KeyID is the id of the key new secrets are sealed with.
	KeyID string `json:"key_id"`
	// Rotated counts the secrets a rotation re-sealed.
	Rotated int `json:"rotated"`
}

// RotateMasterKey re-seals every connection secret under a new master key with POST
// /v1/master-key/rotate. A failure half-way loses nothing: every secret still opens, and
// rotating again finishes the job.
func (c *Client) RotateMasterKey(ctx context.Context) (MasterKey, error) {
	var out MasterKey
	_, err := c.call(ctx, http.MethodPost, "/v1/master-key/rotate", nil, nil, &out)
	return out, err
}

// MasterKeyID returns the id of the active master key with GET /v1/master-key.
func (c *Client) MasterKeyID(ctx context.Context) (string, error) {
	var out MasterKey
	_, err := c.call(ctx, http.MethodGet, "/v1/master-key", nil, nil, &out)
	return out.KeyID, err
}
