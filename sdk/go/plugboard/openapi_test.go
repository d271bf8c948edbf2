package plugboard_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/server/openapi"
)

// TestTypesMatchOpenAPI holds the client's wire types to the server's OpenAPI document: every
// JSON field of a type is a property of its schema (a request field the schema lacks would be
// refused; a response field it lacks is never sent), every required property of a response
// schema is a field (or it would only be in Raw), and every property of a request schema is a
// field (or the client could not send it).
func TestTypesMatchOpenAPI(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapi.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	tests := []struct {
		schema  string
		value   any
		request bool
		// notInGo are properties the type leaves out on purpose, inGo fields the document
		// lacks on purpose.
		notInGo, inGo []string
	}{
		{schema: "InvokeRequest", value: plugboard.InvokeRequest{}, request: true},
		{schema: "InvokeResponse", value: plugboard.InvokeResponse{}},
		{schema: "ConnectionRequest", value: plugboard.ConnectionRequest{}, request: true},
		{schema: "AuthRequest", value: plugboard.Auth{}, request: true,
			notInGo: []string{"secrets"}}, // sent as ConnectionRequest.Secrets
		{schema: "Connection", value: plugboard.Connection{}},
		{schema: "ConnectorSummary", value: plugboard.ConnectorSummary{}},
		{schema: "Connector", value: plugboard.Connector{}},
		{schema: "Version", value: plugboard.Version{}},
		{schema: "Canary", value: plugboard.Canary{}, request: true,
			notInGo: []string{"since", "stats"}}, // answered, not sent: in the version's Raw
		{schema: "SubscriptionRequest", value: plugboard.SubscriptionRequest{}, request: true},
		{schema: "Subscription", value: plugboard.Subscription{}},
		{schema: "Delivery", value: plugboard.Delivery{}, request: true},
		{schema: "Event", value: plugboard.Event{}},
		{schema: "MCPServerRequest", value: plugboard.MCPServerRequest{}, request: true},
		{schema: "MCPServer", value: plugboard.MCPServer{}},
		{schema: "KeyRequest", value: plugboard.KeySpec{}, request: true},
		{schema: "KeyScopes", value: plugboard.KeyScopes{}, request: true},
		{schema: "Key", value: plugboard.Key{}},
		{schema: "AuditEntry", value: plugboard.AuditEntry{}},
		{schema: "Invocation", value: plugboard.Invocation{}},
		{schema: "Problem", value: plugboard.Problem{},
			inGo: []string{"instance"}}, // RFC 9457's, which the server does not send today
		{schema: "FieldError", value: plugboard.FieldError{}},
		{schema: "MasterKey", value: plugboard.MasterKey{}},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			raw, ok := schemas[tt.schema]
			if !ok {
				t.Fatalf("the document has no schema %s", tt.schema)
			}
			props, required := properties(t, schemas, raw)
			fields := jsonFields(reflect.TypeOf(tt.value))
			for _, f := range fields {
				if !slices.Contains(props, f) && !slices.Contains(tt.inGo, f) {
					t.Errorf("%T has field %q, not a property of %s %v", tt.value, f, tt.schema, props)
				}
			}
			want := required
			if tt.request {
				want = props
			}
			for _, p := range want {
				if !slices.Contains(fields, p) && !slices.Contains(tt.notInGo, p) {
					t.Errorf("%s property %q is not a field of %T", tt.schema, p, tt.value)
				}
			}
		})
	}
}

// properties returns a schema's property names and its required ones, through $ref and allOf.
func properties(t *testing.T, schemas map[string]json.RawMessage, raw json.RawMessage) (props, required []string) {
	var s struct {
		Ref        string                     `json:"$ref"`
		AllOf      []json.RawMessage          `json:"allOf"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/"); ok {
		return properties(t, schemas, schemas[name])
	}
	for _, sub := range s.AllOf {
		p, r := properties(t, schemas, sub)
		props, required = append(props, p...), append(required, r...)
	}
	for name := range s.Properties {
		props = append(props, name)
	}
	return props, append(required, s.Required...)
}

// jsonFields returns the JSON names of a struct's fields, embedded structs flattened.
func jsonFields(typ reflect.Type) []string {
	var names []string
	for _, f := range reflect.VisibleFields(typ) {
		if f.Anonymous || !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			if tag == "" && typ.Kind() == reflect.Struct {
				// No tag: encoding/json uses the Go name, or a MarshalJSON does its own.
				if _, ok := reflect.New(typ).Interface().(json.Marshaler); ok {
					continue
				}
			}
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}
