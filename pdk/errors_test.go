package pdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
)

func TestFromHostError(t *testing.T) {
	tests := []struct {
		host      string
		want      string
		retryable bool
	}{
		{abi.CodeTimeout, abi.CodeUnavailable, true},
		{abi.CodeNetwork, abi.CodeUnavailable, true},
		{abi.CodeDeadline, abi.CodeUnavailable, true},
		{abi.CodeTooManyRedirects, abi.CodeUpstreamError, false},
		{abi.CodeTooLarge, abi.CodeUpstreamError, false},
		{abi.CodeHostNotAllowed, abi.CodeInternal, false},
		{abi.CodePrivateAddress, abi.CodeInternal, false},
		{abi.CodeDenied, abi.CodeInternal, false},
		{abi.CodeInvalidRequest, abi.CodeInternal, false},
		{abi.CodeTooManyRequests, abi.CodeInternal, false},
		{"something_new", abi.CodeInternal, false},
	}
	for _, tt := range tests {
		t.Run(tt.host+" becomes "+tt.want, func(t *testing.T) {
			got := FromHostError(&abi.Error{Code: tt.host, Message: "it failed"})
			if got.Code != tt.want || got.Retryable != tt.retryable || got.Message != "it failed" {
				t.Errorf("got %+v", got)
			}
			if want := `{"host_code":"` + tt.host + `"}`; string(got.Details) != want {
				t.Errorf("details = %s, want %s", got.Details, want)
			}
		})
	}
	if FromHostError(nil) != nil {
		t.Error("FromHostError(nil) is not nil")
	}
}

func TestFromHostErrorKeepsTheHostsDetails(t *testing.T) {
	tests := []struct{ name, details, want string }{
		{"an object is kept, host_code added", `{"address":"10.0.0.1","allow":"10.0.0.0/8"}`, `{"address":"10.0.0.1","allow":"10.0.0.0/8","host_code":"private_address"}`},
		{"a host_code of the host's is replaced by its code", `{"host_code":"other"}`, `{"host_code":"private_address"}`},
		{"details that are not an object are dropped", `[1,2]`, `{"host_code":"private_address"}`},
		{"null is dropped", `null`, `{"host_code":"private_address"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromHostError(&abi.Error{Code: abi.CodePrivateAddress, Message: "m", Details: json.RawMessage(tt.details)})
			if string(got.Details) != tt.want {
				t.Errorf("details = %s, want %s", got.Details, tt.want)
			}
		})
	}
}

func TestHostCode(t *testing.T) {
	hostErr := &abi.Error{Code: abi.CodeHostNotAllowed, Message: "origin https://x.example is not allowed"}
	policy := func(status int, policy string) error {
		return StatusError(&Response{Status: status, Headers: map[string]string{"X-Plugboard-Policy": policy, "Retry-After": "5"}})
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"the host's error itself", hostErr, abi.CodeHostNotAllowed},
		{"the guest error made of it", FromHostError(hostErr), abi.CodeHostNotAllowed},
		{"wrapped with %w", fmt.Errorf("listing pages: %w", hostErr), abi.CodeHostNotAllowed},
		{"after guestError, as the result carries it", guestError(fmt.Errorf("page 2: %w", hostErr)), abi.CodeHostNotAllowed},
		{"the host's circuit breaker answer", policy(503, "circuit_open"), abi.PolicyCircuitOpen},
		{"the connection's rate limit answer", policy(429, "rate_limited"), abi.PolicyRateLimited},
		{"an upstream 503 is no host code", StatusError(&Response{Status: 503}), ""},
		{"a policy header on the wrong status is ignored", policy(502, "circuit_open"), ""},
		{"an unknown policy is ignored", policy(503, "maintenance"), ""},
		{"a guest code", Errorf(abi.CodeNotFound, "no repo"), ""},
		{"an unknown host_code in details", &abi.Error{Code: abi.CodeInternal, Details: json.RawMessage(`{"host_code":"made_up"}`)}, ""},
		{"a plain error", errors.New("boom"), ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HostCode(tt.err); got != tt.want {
				t.Errorf("HostCode(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestGuestError(t *testing.T) {
	notFound := Errorf(abi.CodeNotFound, "no repo o/r")
	tests := []struct {
		name string
		err  error
		want abi.Error
	}{
		{"a guest error keeps its code", notFound, abi.Error{Code: abi.CodeNotFound, Message: "no repo o/r"}},
		{"a wrapped guest error keeps its code and takes the chain's message",
			fmt.Errorf("fetching page 2: %w", notFound),
			abi.Error{Code: abi.CodeNotFound, Message: "fetching page 2: not_found: no repo o/r"}},
		{"a host error is mapped", &abi.Error{Code: abi.CodeNetwork, Message: "connection refused"},
			abi.Error{Code: abi.CodeUnavailable, Message: "connection refused", Retryable: true, Details: json.RawMessage(`{"host_code":"network"}`)}},
		{"a plain error is internal", errors.New("boom"), abi.Error{Code: abi.CodeInternal, Message: "boom"}},
		{"a custom code passes through", &abi.Error{Code: "quota_exceeded", Message: "over quota"}, abi.Error{Code: "quota_exceeded", Message: "over quota"}},
		{"an empty message gets the code", &abi.Error{Code: abi.CodeConflict}, abi.Error{Code: abi.CodeConflict, Message: abi.CodeConflict}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := guestError(tt.err)
			if got.Code != tt.want.Code || got.Message != tt.want.Message || got.Retryable != tt.want.Retryable || string(got.Details) != string(tt.want.Details) {
				t.Errorf("got %+v (details %s), want %+v (details %s)", got, got.Details, tt.want, tt.want.Details)
			}
		})
	}
}

func TestStatusError(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		headers   map[string]string
		body      string
		code      string
		retryable bool
		message   string
		details   string
	}{
		{name: "2xx is no error", status: 200},
		{name: "3xx is no error", status: 304},
		{name: "400 is invalid_input", status: 400, body: `{"error":"bad field"}`, code: abi.CodeInvalidInput, message: "bad field", details: `{"status":400}`},
		{name: "401 is unauthorized", status: 401, body: `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`, code: abi.CodeUnauthorized, message: "Bad credentials", details: `{"status":401}`},
		{name: "403 is forbidden", status: 403, body: `{"message":"Resource not accessible by integration"}`, code: abi.CodeForbidden, message: "Resource not accessible by integration", details: `{"status":403}`},
		{name: "403 with Retry-After is rate_limited", status: 403, headers: map[string]string{"Retry-After": "60"}, body: `{"message":"You have exceeded a secondary rate limit"}`, code: abi.CodeRateLimited, retryable: true, message: "You have exceeded a secondary rate limit", details: `{"retry_after_s":60,"status":403}`},
		{name: "403 with no remaining quota is rate_limited", status: 403, headers: map[string]string{"X-Ratelimit-Remaining": "0"}, code: abi.CodeRateLimited, retryable: true, message: "upstream answered 403", details: `{"status":403}`},
		{name: "404 is not_found", status: 404, body: `{"message":"Not Found"}`, code: abi.CodeNotFound, message: "Not Found", details: `{"status":404}`},
		{name: "410 is not_found", status: 410, code: abi.CodeNotFound, message: "upstream answered 410", details: `{"status":410}`},
		{name: "409 is conflict", status: 409, body: `{"error":{"message":"already exists"}}`, code: abi.CodeConflict, message: "already exists", details: `{"status":409}`},
		{name: "422 is invalid_input", status: 422, body: `{"message":"Validation Failed"}`, code: abi.CodeInvalidInput, message: "Validation Failed", details: `{"status":422}`},
		{name: "429 is rate_limited", status: 429, headers: map[string]string{"Retry-After": "7"}, code: abi.CodeRateLimited, retryable: true, message: "upstream answered 429", details: `{"retry_after_s":7,"status":429}`},
		{name: "500 is upstream_error", status: 500, body: "Internal Server Error\n", code: abi.CodeUpstreamError, message: "upstream answered 500: Internal Server Error", details: `{"status":500}`},
		{name: "502 is a retryable upstream_error", status: 502, code: abi.CodeUpstreamError, retryable: true, message: "upstream answered 502", details: `{"status":502}`},
		{name: "503 is unavailable", status: 503, body: `{"error_description":"maintenance"}`, code: abi.CodeUnavailable, retryable: true, message: "maintenance", details: `{"status":503}`},
		{name: "418 is upstream_error", status: 418, code: abi.CodeUpstreamError, message: "upstream answered 418", details: `{"status":418}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &Response{Status: tt.status, Headers: tt.headers, Body: []byte(tt.body)}
			got := StatusError(resp)
			if tt.code == "" {
				if got != nil {
					t.Fatalf("got %+v, want nil", got)
				}
				return
			}
			if got == nil {
				t.Fatal("got nil")
			}
			if got.Code != tt.code || got.Retryable != tt.retryable || got.Message != tt.message || string(got.Details) != tt.details {
				t.Errorf("got %+v details %s\nwant code %s retryable %v message %q details %s", got, got.Details, tt.code, tt.retryable, tt.message, tt.details)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{"Fri, 28 Nov 2025 12:00:30 GMT", 30 * time.Second, true},
		{"Fri, 28 Nov 2025 11:00:00 GMT", 0, true}, // in the past
		{"-5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := RetryAfter(&Response{Headers: map[string]string{"Retry-After": tt.value}}, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.ok)
		}
	}
}

func TestWithDetails(t *testing.T) {
	e := Errorf(abi.CodeRateLimited, "slow down")
	d := WithDetails(e, map[string]int{"retry_after_s": 3})
	if string(d.Details) != `{"retry_after_s":3}` || e.Details != nil {
		t.Errorf("WithDetails: got %s, original changed to %s", d.Details, e.Details)
	}
	if d := WithDetails(e, []int{1}); d.Details != nil {
		t.Errorf("a non-object detail was kept: %s", d.Details)
	}
}
