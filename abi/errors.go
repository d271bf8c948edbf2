package abi

import (
	"encoding/json"
	"fmt"
)

// Error is the error document a plugin reports instead of a result (ABI.md section 4), and the
// one a host import answers when it refuses or fails.
type Error struct {
	// Code is a stable machine-readable code, one of the Code* constants for guest errors.
	Code string `json:"code"`
	// Message is a human-readable explanation. Required in guest error documents.
	Message string `json:"message"`
	// Retryable says the same call may succeed later.
	Retryable bool `json:"retryable,omitempty"`
	// Details is any extra JSON object the plugin wants to pass on.
	Details json.RawMessage `json:"details,omitempty"`
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error codes a plugin reports in its result documents (ABI.md section 4).
const (
	CodeInvalidInput  = "invalid_input"
	CodeNotFound      = "not_found"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeConflict      = "conflict"
	CodeRateLimited   = "rate_limited"
	CodeUpstreamError = "upstream_error"
	CodeUnavailable   = "unavailable"
	CodeInternal      = "internal"
)

// Error codes the host imports answer (ABI.md section 5).
const (
	CodeHostNotAllowed   = "host_not_allowed"
	CodePrivateAddress   = "private_address"
	CodeTimeout          = "timeout"
	CodeNetwork          = "network"
	CodeInvalidRequest   = "invalid_request"
	CodeDenied           = "denied"
	CodeTooManyRedirects = "too_many_redirects"
	CodeTooLarge         = "too_large"
	CodeTooManyRequests  = "too_many_requests"
	CodeDeadline         = "deadline"
)

// GuestErrorStatus is the HTTP status (plain numbers: package abi is linked into every plugin,
// so it stays free of net/http) the API answers for a guest error code; a code outside
// the ABI.md table gives 502.
func GuestErrorStatus(code string) int {
	switch code {
	case CodeInvalidInput:
		return 400
	case CodeNotFound:
		return 404
	case CodeForbidden:
		return 403
	case CodeConflict:
		return 409
	case CodeRateLimited:
		return 429
	case CodeUnavailable:
		return 503
	case CodeInternal:
		return 500
	default: // unauthorized, upstream_error and unknown codes
		return 502
	}
}
