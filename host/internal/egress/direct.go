package egress

import (
	"net/http"
	"time"
)

// HostClient returns an HTTP client for the requests the host makes on its own behalf, such as
// OAuth2 token requests: it dials through the same address checks as plugin requests (no
// loopback, private or link-local address unless Config.AllowNetworks allows it, no proxy),
// follows no redirect (a 3xx is returned as is), and gives up after timeout (0 means 30 s).
func (c *Client) HostClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &http.Client{
		Transport: c.transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
