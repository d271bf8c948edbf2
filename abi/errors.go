package abi

import (
	"encoding/json"
	"fmt"
	"net/http"
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

// GuestErrorStatus is the HTTP status the API answers for a guest error code; a code outside
// the ABI.md table gives 502.
func GuestErrorStatus(code string) int {
	switch code {
	case CodeInvalidInput:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeForbidden:
		return http.StatusForbidden
	case CodeConflict:
		return http.StatusConflict
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeInternal:
		return http.StatusInternalServerError
	default: // unauthorized, upstream_error and unknown codes
		return http.StatusBadGateway
	}
}
