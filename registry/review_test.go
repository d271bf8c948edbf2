package registry

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

func manifest(t *testing.T, doc string) *abi.Manifest {
	t.Helper()
	var m abi.Manifest
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestReviewCapabilities(t *testing.T) {
	active := `{"name":"c","version":"1.0.0","auth":{"types":["api_key"]},"hosts":["https://api.example.com","{base_url}"],"capabilities":{"reveal":["api_key"]}}`
	tests := []struct {
		name string
		next string
		want Changes
	}{
		{"same capabilities", active, Changes{}},
		{"fewer hosts need nothing", `{"auth":{"types":["api_key"]},"hosts":["https://api.example.com"]}`, Changes{}},
		{"a new origin", `{"auth":{"types":["api_key"]},"hosts":["https://api.example.com","{base_url}","https://uploads.example.com"]}`,
			Changes{HostsAdded: []string{"https://uploads.example.com"}}},
		{"a wildcard replacing a host counts as added", `{"auth":{"types":["api_key"]},"hosts":["https://*.example.com"]}`,
			Changes{HostsAdded: []string{"https://*.example.com"}}},
		{"a new auth type", `{"auth":{"types":["api_key","oauth2"]},"hosts":["https://api.example.com"]}`,
			Changes{AuthTypesAdded: []string{"oauth2"}}},
		{"a new reveal field", `{"auth":{"types":["api_key"]},"capabilities":{"reveal":["api_key","signing_secret"]}}`,
			Changes{RevealAdded: []string{"signing_secret"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ReviewCapabilities(manifest(t, active), manifest(t, tt.next))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReviewCapabilities = %+v, want %+v", got, tt.want)
			}
			if got.Empty() != tt.want.Empty() {
				t.Errorf("Empty() = %v", got.Empty())
			}
		})
	}
}

func TestCapabilitiesError(t *testing.T) {
	var c Changes
	c.Against = "1.0.0"
	c.add("1.1.0", Changes{HostsAdded: []string{"https://a.example"}})
	c.add("1.2.0", Changes{HostsAdded: []string{"https://a.example", "https://b.example"}, RevealAdded: []string{"api_key"}})
	c.add("1.3.0", Changes{})
	err := error(&CapabilitiesError{Connector: "c", Changes: c})
	if !errors.Is(err, ErrCapabilitiesChanged) {
		t.Error("CapabilitiesError does not match ErrCapabilitiesChanged")
	}
	want := "c 1.1.0 and 1.2.0 asks for more than the active version 1.0.0: hosts +https://a.example, +https://b.example; reveal +api_key; approve with ?approve=capabilities"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
	ae := error(&ActivationError{Connector: "c", Version: "2.0.0", Err: ErrVersionNotFound})
	if !errors.Is(ae, ErrActivationFailed) || !errors.Is(ae, ErrVersionNotFound) {
		t.Error("ActivationError matches neither its sentinel nor its cause")
	}
}

func TestDiffManifests(t *testing.T) {
	old := `{"auth":{"types":["api_key"]},"hosts":["https://api.example.com"],
		"connection_params":{"type":"object"},
		"actions":[
			{"name":"get","input_schema":{"type":"object","properties":{"id":{"type":"string"}}}},
			{"name":"gone","input_schema":{"type":"object"}},
			{"name":"same","input_schema":{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}},"timeout_ms":1000}],
		"triggers":[{"name":"new_item","kind":"poll","params_schema":{"type":"object"}},{"name":"old_hook","kind":"webhook","params_schema":{}}]}`
	next := `{"auth":{"types":["api_key","basic"]},"hosts":["https://uploads.example.com"],
		"connection_params":{"type":"object","required":["base_url"]},
		"actions":[
			{"name":"get","input_schema":{"type":"object","properties":{"id":{"type":"integer"}}},"output_schema":{"type":"object"}},
			{"name":"same","input_schema":{"properties":{"a":{"type":"string"}},"required":["a"],"type":"object"},"timeout_ms":2000},
			{"name":"create","input_schema":{"type":"object"}}],
		"triggers":[{"name":"new_item","kind":"poll","params_schema":{"type":"object"},"event_schema":{"type":"object"}}]}`
	var got []string
	for _, c := range DiffManifests(manifest(t, old), manifest(t, next)) {
		got = append(got, c.String())
	}
	want := []string{
		"~ action get: input schema, output schema",
		"~ action same: timeout 1000ms -> 2000ms", // key order in a schema does not count
		"+ action create",
		"- action gone",
		"~ trigger new_item: event schema",
		"- trigger old_hook",
		"+ host https://uploads.example.com (needs approval)",
		"- host https://api.example.com",
		"+ auth type basic (needs approval)",
		"~ connection params: schema",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("DiffManifests =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := DiffManifests(manifest(t, old), manifest(t, old)); len(d) != 0 {
		t.Errorf("a manifest differs from itself: %v", d)
	}
}
