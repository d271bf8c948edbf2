package sdkenv

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// Checker is a reverse proxy to the server that checks every exchange against the server's
// OpenAPI document (GET /v1/openapi.json) and fails the test on a mismatch.
type Checker struct {
	// URL is the proxy's base URL.
	URL string
}

// NewChecker starts a checking proxy in front of server for the test's lifetime.
func NewChecker(t *testing.T, server string) *Checker {
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	p := httptest.NewServer(httputil.NewSingleHostReverseProxy(u))
	t.Cleanup(p.Close)
	return &Checker{URL: p.URL}
}
