package pdktest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

// Details decodes a guest error's details (an empty map when it has none), failing t when
// they are not a JSON object.
func Details(t testing.TB, e *abi.Error) map[string]any {
	t.Helper()
	d := map[string]any{}
	if e != nil && len(e.Details) > 0 {
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatalf("error details %s are not a JSON object: %v", e.Details, err)
		}
	}
	return d
}

// WantError fails t unless e is a guest error with code whose message contains each of parts.
func WantError(t testing.TB, e *abi.Error, code string, parts ...string) {
	t.Helper()
	if e == nil {
		t.Fatalf("no error, want %s", code)
	}
	if e.Code != code {
		t.Fatalf("code %s (%s), want %s", e.Code, e.Message, code)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("message %q lacks %q", e.Message, p)
		}
	}
}
