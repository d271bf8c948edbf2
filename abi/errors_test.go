package abi

import "testing"

func TestErrorStatus(t *testing.T) {
	for code, want := range map[string]int{
		CodeInvalidInput: 400, CodeNotFound: 404, CodeUnauthorized: 502, CodeForbidden: 403,
		CodeConflict: 409, CodeRateLimited: 429, CodeUpstreamError: 502, CodeUnavailable: 503,
		CodeInternal: 500, "custom_code": 502,
	} {
		if got := GuestErrorStatus(code); got != want {
			t.Errorf("GuestErrorStatus(%q) = %d, want %d", code, got, want)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	var r InvokeResult
	if err := DecodeStrict([]byte(`{"output":{},"extra":1}`), &r); err == nil {
		t.Error("unknown field accepted")
	}
	if err := DecodeStrict([]byte(`{"output":{}} {}`), &r); err == nil {
		t.Error("trailing document accepted")
	}
	if err := DecodeStrict([]byte(`{"output":{"a":1}}`), &r); err != nil {
		t.Error(err)
	}
}
