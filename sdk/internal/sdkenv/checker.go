package sdkenv

import (
	"testing"

	"github.com/plugboard/plugboard/server/openapi/openapitest"
)

// Checker is a reverse proxy to the server that checks every exchange against the server's
// OpenAPI document (package openapitest) and fails the test on a mismatch when it ends.
type Checker struct {
	// URL is the proxy's base URL.
	URL string
}

// NewChecker starts a checking proxy in front of server for the test's lifetime.
func NewChecker(t *testing.T, server string) *Checker {
	return &Checker{URL: openapitest.Proxy(t, server)}
}
