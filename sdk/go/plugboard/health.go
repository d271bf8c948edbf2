package plugboard

import (
	"context"
	"net/http"
)

// Health checks GET /healthz: nil when the server process is up.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.call(ctx, http.MethodGet, "/healthz", nil, nil, nil)
	return err
}

// Ready checks GET /readyz: nil when the store is open and the active connectors are loaded.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.call(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}
