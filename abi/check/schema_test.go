package check

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
