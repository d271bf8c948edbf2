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

// Every host code of ABI.md section 5 has a status in the section 4 table, and only those and
// the two policy codes do.
func TestHostErrorStatus(t *testing.T) {
	for code, want := range map[string]int{
		CodeHostNotAllowed: 403, CodePrivateAddress: 403, CodeDenied: 403,
		CodeInvalidRequest: 500, CodeTooManyRequests: 500,
		CodeNetwork: 502, CodeTooManyRedirects: 502, CodeTooLarge: 502,
		CodeTimeout: 504, CodeDeadline: 504,
		PolicyRateLimited: 429, PolicyCircuitOpen: 503,
	} {
		got, ok := HostErrorStatus(code)
		if got != want || !ok {
			t.Errorf("HostErrorStatus(%q) = %d, %v, want %d", code, got, ok, want)
		}
		if IsHostCode(code) == (code == PolicyRateLimited || code == PolicyCircuitOpen) {
			t.Errorf("IsHostCode(%q) = %v", code, IsHostCode(code))
		}
	}
	for _, code := range []string{CodeInternal, CodeNotFound, CodeForbidden, "", "made_up"} {
		if _, ok := HostErrorStatus(code); ok || IsHostCode(code) {
			t.Errorf("%q is taken for a host code", code)
		}
	}
}

func TestHostCode(t *testing.T) {
	tests := []struct {
		name string
		e    *Error
		want string
	}{
		{"details.host_code", &Error{Code: CodeInternal, Details: []byte(`{"host_code":"private_address","address":"127.0.0.1"}`)}, CodePrivateAddress},
		{"a policy code in details", &Error{Code: CodeUnavailable, Details: []byte(`{"host_code":"circuit_open"}`)}, PolicyCircuitOpen},
		{"the host's code reported unchanged", &Error{Code: CodeTimeout}, CodeTimeout},
		{"details win over the code", &Error{Code: CodeTimeout, Details: []byte(`{"host_code":"network"}`)}, CodeNetwork},
		{"an unknown host_code", &Error{Code: CodeInternal, Details: []byte(`{"host_code":"made_up"}`)}, ""},
		{"a host_code that is not a string", &Error{Code: CodeInternal, Details: []byte(`{"host_code":7}`)}, ""},
		{"details that are not an object", &Error{Code: CodeInternal, Details: []byte(`"private_address"`)}, ""},
		{"a guest code alone", &Error{Code: CodeRateLimited}, ""},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HostCode(tt.e); got != tt.want {
				t.Errorf("HostCode = %q, want %q", got, tt.want)
			}
		})
	}
}
