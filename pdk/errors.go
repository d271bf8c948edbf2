package pdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// Errorf returns a guest error with the given code (one of the abi.Code* constants of ABI.md
// section 4) and a formatted message. Return it from a handler to report an expected failure;
// set Retryable or Details on the result when they apply.
//
//	if in.Title == "" {
//		return Issue{}, pdk.Errorf(abi.CodeInvalidInput, "title must not be empty")
//	}
func Errorf(code, format string, args ...any) *abi.Error {
	return abi.Errorf(code, format, args...)
}

// WithDetails returns a copy of e whose Details are v encoded as JSON. v should encode as a
// JSON object; a value that cannot be encoded leaves Details unset.
func WithDetails(e *abi.Error, v any) *abi.Error {
	c := *e
	if b, err := json.Marshal(v); err == nil && len(b) > 0 && b[0] == '{' {
		c.Details = b
	}
	return &c
}

// guestCodes are the codes of ABI.md section 4.
var guestCodes = map[string]bool{
	abi.CodeInvalidInput: true, abi.CodeNotFound: true, abi.CodeUnauthorized: true,
	abi.CodeForbidden: true, abi.CodeConflict: true, abi.CodeRateLimited: true,
	abi.CodeUpstreamError: true, abi.CodeUnavailable: true, abi.CodeInternal: true,
}

// FromHostError maps an error a host import answered to the guest error a handler reports. The
// guest code is the one of ABI.md section 4 that an API without host codes understands:
//
//   - timeout, network and deadline become unavailable (retryable): the upstream did not
//     answer in time or could not be reached;
//   - too_many_redirects and too_large become upstream_error: the upstream answered something
//     the host will not pass on;
//   - every other refusal (host_not_allowed, private_address, denied, invalid_request,
//     too_many_requests, unknown codes) becomes internal.
//
// The host's own code is kept in Details as {"host_code": "..."}, next to the details the host
// gave (private_address names the refused "address" and the range to "allow"). The server reads
// it and answers with the host's code, its status of the ABI.md section 4 table (403
// private_address, 504 timeout, ...) and a detail that says what to change; [HostCode] reads it
// back. Handlers rarely call FromHostError: a host error returned from a handler unchanged, or
// wrapped with %w, is mapped this way automatically.
func FromHostError(e *abi.Error) *abi.Error {
	if e == nil {
		return nil
	}
	var code string
	retryable := false
	switch e.Code {
	case abi.CodeTimeout, abi.CodeNetwork, abi.CodeDeadline:
		code, retryable = abi.CodeUnavailable, true
	case abi.CodeTooManyRedirects, abi.CodeTooLarge:
		code = abi.CodeUpstreamError
	default:
		code = abi.CodeInternal
	}
	msg := e.Message
	if msg == "" {
		msg = e.Code
	}
	out := &abi.Error{Code: code, Message: msg, Retryable: retryable}
	out.Details = withHostCode(e.Details, e.Code)
	return out
}

// withHostCode returns details (a JSON object, or nothing) with "host_code" set to code.
func withHostCode(details json.RawMessage, code string) json.RawMessage {
	var fields map[string]json.RawMessage
	if len(details) == 0 || json.Unmarshal(details, &fields) != nil || fields == nil {
		fields = map[string]json.RawMessage{} // not an object: the host's details are dropped
	}
	fields[abi.DetailHostCode], _ = json.Marshal(code)
	b, _ := json.Marshal(fields)
	return b
}

// HostCode returns the host code err passes on: the code of a host import's error (ABI.md
// section 5: host_not_allowed, private_address, timeout, ...) or of an answer the host gave in
// the upstream's place (rate_limited, circuit_open), whether err is the host's error itself or
// the guest error [FromHostError] or [StatusError] made of it, possibly wrapped. It returns ""
// for any other error. Tests use it to check that a refusal reaches the API with its code:
//
//	_, gerr := h.Invoke("get_repo", in)
//	if pdk.HostCode(gerr) != abi.CodeHostNotAllowed { ... }
func HostCode(err error) string {
	var ae *abi.Error
	if !errors.As(err, &ae) {
		return ""
	}
	return abi.HostCode(ae)
}

// guestError turns whatever a handler returned into the error document of its result:
//
//   - an *abi.Error (possibly wrapped) with a host import's code goes through [FromHostError];
//   - any other *abi.Error keeps its code, retryable flag and details; when it was wrapped, the
//     message is the whole chain's text;
//   - any other error becomes internal.
func guestError(err error) *abi.Error {
	var ae *abi.Error
	if !errors.As(err, &ae) || ae == nil {
		return &abi.Error{Code: abi.CodeInternal, Message: err.Error()}
	}
	out := *ae
	if abi.IsHostCode(ae.Code) {
		out = *FromHostError(ae)
	}
	if err != error(ae) {
		out.Message = err.Error()
	}
	if out.Code == "" {
		out.Code = abi.CodeInternal
	}
	if out.Message == "" {
		out.Message = out.Code
	}
	return &out
}

// failed reports whether a handler's error is one: nil and a typed nil *abi.Error are not.
func failed(err error) bool {
	ae, ok := err.(*abi.Error)
	return err != nil && !(ok && ae == nil)
}

// IsHostCode reports whether code is one a host import answers (ABI.md section 5) rather than a
// guest error code (section 4).
func IsHostCode(code string) bool { return abi.IsHostCode(code) }

// IsGuestCode reports whether code is one of the guest error codes of ABI.md section 4.
func IsGuestCode(code string) bool { return guestCodes[code] }

// StatusError maps a non-2xx upstream response to a guest error, or returns nil for 1xx-3xx:
//
//	400                      invalid_input
//	401                      unauthorized
//	403                      forbidden, or rate_limited when the response carries Retry-After
//	                         or X-RateLimit-Remaining: 0 (how many APIs signal throttling)
//	404, 410                 not_found
//	408                      unavailable, retryable
//	409                      conflict
//	422                      invalid_input
//	429                      rate_limited, retryable
//	503                      unavailable, retryable
//	502, 504                 upstream_error, retryable
//	other 4xx and 5xx        upstream_error
//
// The message is taken from the body when it is a JSON error document of a common shape
// ({"message": ...}, {"error": "..."}, {"error": {"message": ...}}, {"error_description": ...}),
// else from the status. Details carry {"status": N} and, when known, "retry_after_s". An answer
// the host gave in the upstream's place (a 429 with X-Plugboard-Policy: rate_limited, a 503
// with X-Plugboard-Policy: circuit_open) also carries "host_code", so the API answers
// circuit_open rather than unavailable.
func StatusError(resp *Response) *abi.Error {
	if resp == nil || resp.Status < 400 {
		return nil
	}
	st := resp.Status
	var code string
	retryable := false
	retryAfter, hasRetryAfter := RetryAfter(resp, time.Now())
	switch {
	case st == 400 || st == 422:
		code = abi.CodeInvalidInput
	case st == 401:
		code = abi.CodeUnauthorized
	case st == 403 && (hasRetryAfter || resp.Header("X-RateLimit-Remaining") == "0"):
		code, retryable = abi.CodeRateLimited, true
	case st == 403:
		code = abi.CodeForbidden
	case st == 404 || st == 410:
		code = abi.CodeNotFound
	case st == 408:
		code, retryable = abi.CodeUnavailable, true
	case st == 409:
		code = abi.CodeConflict
	case st == 429:
		code, retryable = abi.CodeRateLimited, true
	case st == 503:
		code, retryable = abi.CodeUnavailable, true
	case st == 502 || st == 504:
		code, retryable = abi.CodeUpstreamError, true
	default:
		code = abi.CodeUpstreamError
	}
	details := map[string]any{"status": st}
	if hasRetryAfter {
		details["retry_after_s"] = int64((retryAfter + time.Second - 1) / time.Second)
	}
	if p := resp.Header(abi.HeaderPolicy); p == abi.PolicyRateLimited && st == 429 || p == abi.PolicyCircuitOpen && st == 503 {
		details[abi.DetailHostCode] = p
	}
	return WithDetails(&abi.Error{Code: code, Message: UpstreamMessage(resp), Retryable: retryable}, details)
}

// UpstreamMessage extracts a human-readable message from an error response: the message of a
// JSON error document of a common shape, else "upstream answered <status>" followed by the
// start of a text body.
func UpstreamMessage(resp *Response) string {
	var doc struct {
		Message          string          `json:"message"`
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
		Detail           string          `json:"detail"`
	}
	if json.Unmarshal(resp.Body, &doc) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case doc.Message != "":
			return doc.Message
		case doc.ErrorDescription != "":
			return doc.ErrorDescription
		case doc.Detail != "":
			return doc.Detail
		case json.Unmarshal(doc.Error, &s) == nil && s != "":
			return s
		case json.Unmarshal(doc.Error, &inner) == nil && inner.Message != "":
			return inner.Message
		}
	}
	msg := "upstream answered " + strconv.Itoa(resp.Status)
	if text := strings.TrimSpace(resp.Text()); text != "" && !looksBinary(resp.Body) {
		const max = 200
		if len(text) > max {
			text = text[:max] + "..."
		}
		msg += ": " + strings.Join(strings.Fields(text), " ")
	}
	return msg
}

func looksBinary(b []byte) bool {
	for _, c := range b {
		if c < 0x09 {
			return true
		}
	}
	return false
}

// RetryAfter reads the response's Retry-After header (delay in seconds or an HTTP date,
// RFC 9110 section 10.2.3) relative to now. ok is false when the header is absent or invalid.
// For X-RateLimit-Reset style headers, read them with [Response.Header] yourself.
func RetryAfter(resp *Response, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(resp.Header("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	for _, layout := range []string{time.RFC1123, "Monday, 02-Jan-06 15:04:05 GMT", time.ANSIC} {
		if t, err := time.Parse(layout, v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	return 0, false
}

// errInternalf is a shorthand for internal errors the pdk itself reports.
func errInternalf(format string, args ...any) *abi.Error {
	return &abi.Error{Code: abi.CodeInternal, Message: fmt.Sprintf(format, args...)}
}
