package abi

import (
	"encoding/json"
	"testing"
)

func TestSchemaValidate(t *testing.T) {
	s, err := CompileSchema(json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"},"n":{"type":"integer","minimum":1}},"required":["title"],"additionalProperties":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if errs := s.Validate(json.RawMessage(`{"title":"x","n":2}`)); errs != nil {
		t.Errorf("valid instance rejected: %v", errs)
	}
	errs := s.Validate(json.RawMessage(`{"n":0,"extra":1}`))
	paths := map[string]bool{}
	for _, e := range errs {
		paths[e.Path] = true
		if e.Message == "" {
			t.Errorf("empty message for %q", e.Path)
		}
	}
	for _, want := range []string{"", "/n"} {
		if !paths[want] {
			t.Errorf("errors %v lack path %q", errs, want)
		}
	}
}

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
