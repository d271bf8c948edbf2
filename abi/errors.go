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

// Codes of the answers the host gives in an upstream's place (ABI.md section 5, plugboard_http):
// a request it did not send because the connection's rate limit was used up (429) or the
// origin's circuit breaker was open (503). Such an answer carries the code in the
// [HeaderPolicy] header and in its problem document body.
const (
	PolicyRateLimited = "rate_limited"
	PolicyCircuitOpen = "circuit_open"
)

// HeaderPolicy is the response header naming the policy of an answer the host gave in the
// upstream's place: [PolicyRateLimited] or [PolicyCircuitOpen].
const HeaderPolicy = "X-Plugboard-Policy"

// DetailHostCode is the key of a guest error's details that names the host code the error passes
// on (ABI.md section 4): {"host_code": "private_address"}.
const DetailHostCode = "host_code"

// IsHostCode reports whether code is one a host import answers in an error document (ABI.md
// section 5), rather than a guest error code (section 4).
func IsHostCode(code string) bool {
	_, ok := HostErrorStatus(code)
	return ok && code != PolicyRateLimited && code != PolicyCircuitOpen
}

// HostErrorStatus is the HTTP status the API answers for a guest error that passes on the host
// code code (a host import's error code, or a policy code of an answer the host gave in an
// upstream's place), as the table of ABI.md section 4 gives it; ok is false for any other code.
//
//   - 403: the host's policy refused the request and nothing was sent (host_not_allowed,
//     private_address, denied); the fix is configuration, not a retry;
//   - 500: the connector misused a host import or passed a per-call limit (invalid_request,
//     too_many_requests); the fix is in the connector;
//   - 502: the upstream failed or answered what the host will not pass on (network,
//     too_many_redirects, too_large);
//   - 504: the upstream or the call ran out of time (timeout, deadline);
//   - 429 and 503: the host answered in the upstream's place (rate_limited, circuit_open).
func HostErrorStatus(code string) (status int, ok bool) {
	switch code {
	case CodeHostNotAllowed, CodePrivateAddress, CodeDenied:
		return 403, true
	case CodeInvalidRequest, CodeTooManyRequests:
		return 500, true
	case CodeNetwork, CodeTooManyRedirects, CodeTooLarge:
		return 502, true
	case CodeTimeout, CodeDeadline:
		return 504, true
	case PolicyRateLimited:
		return 429, true
	case PolicyCircuitOpen:
		return 503, true
	}
	return 0, false
}

// HostCode returns the host code a guest error passes on, or "" when it passes none on: the
// code in its details' "host_code" when that is a host code or a policy code (the convention of
// ABI.md section 4, which the Go PDK follows), else its own code when that is a host code (a
// plugin that reported the host's error document unchanged).
func HostCode(e *Error) string {
	if e == nil {
		return ""
	}
	if len(e.Details) > 0 {
		var d struct {
			HostCode string `json:"host_code"`
		}
		if json.Unmarshal(e.Details, &d) == nil {
			if _, ok := HostErrorStatus(d.HostCode); ok {
				return d.HostCode
			}
		}
	}
	if IsHostCode(e.Code) {
		return e.Code
	}
	return ""
}

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
