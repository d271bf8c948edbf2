package openapi

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v4"

	"github.com/plugboard/plugboard/abi"
)

func load(t *testing.T, b []byte) *openapi3.T {
	t.Helper()
	l := openapi3.NewLoader()
	doc, err := l.LoadFromData(b)
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3.1: %v", err)
	}
	return doc
}

// TestDocumentIsValid loads the document with kin-openapi and validates it, and checks that
// the JSON form says exactly what the YAML says.
func TestDocumentIsValid(t *testing.T) {
	doc := load(t, JSON())
	load(t, YAML())
	var fromYAML, fromJSON any
	if err := yaml.Unmarshal(YAML(), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(JSON(), &fromJSON); err != nil {
		t.Fatal(err)
	}
	// Round both through JSON so map types and numbers compare alike.
	b, _ := json.Marshal(fromYAML)
	json.Unmarshal(b, &fromYAML)
	if !reflect.DeepEqual(fromYAML, fromJSON) {
		t.Error("JSON() differs from the YAML it was converted from")
	}
	if !strings.HasPrefix(string(JSON()), "{\n  \"openapi\": \"3.1.0\",") {
		t.Errorf("JSON() does not keep the YAML's key order: %.60s", JSON())
	}
	for _, name := range []string{"Problem", "ProblemCode", "Connection", "Subscription", "Event", "InvokeRequest", "Key", "MCPServer"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("components.schemas.%s is missing", name)
		}
	}
	// Every operation has an id (the SDK generators name methods after them), a summary and a
	// default or error answer.
	seen := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s: needs an operationId and a summary", where)
			}
			if prev, dup := seen[op.OperationID]; dup {
				t.Errorf("%s: operationId %s is also %s's", where, op.OperationID, prev)
			}
			seen[op.OperationID] = where
		}
	}
}

// TestConnectorDocument builds the document of a connector whose schemas use local
// references, and checks it is valid and that the references point where the schemas went.
func TestConnectorDocument(t *testing.T) {
	m := abi.Manifest{ABI: 1, Name: "crm", Version: "1.2.0", Title: "CRM", Auth: abi.Auth{Types: []string{abi.AuthAPIKey}},
		Actions: []abi.Action{
			{Name: "create_lead", Title: "Create a lead", Description: "Creates a lead.",
				InputSchema:  json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"owner":{"$ref":"#/$defs/person"}},"required":["owner"],"$defs":{"person":{"type":"object","properties":{"name":{"type":"string"}}}}}`),
				OutputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`),
				Annotations:  &abi.Annotations{Idempotent: true}},
			{Name: "ping", InputSchema: json.RawMessage(`{"type":"object"}`)},
		}}
	b, err := Connector(m)
	if err != nil {
		t.Fatal(err)
	}
	doc := load(t, b)
	op := doc.Paths.Find("/v1/connectors/crm/actions/create_lead")
	if op == nil || op.Post == nil || op.Post.OperationID != "create_lead" {
		t.Fatalf("no create_lead operation in\n%s", b)
	}
	body := op.Post.RequestBody.Value.Content.Get("application/json").Schema.Value
	if !slicesHave(body.Required, "connection") || !slicesHave(body.Required, "input") {
		t.Errorf("request required = %v, want connection and input (api_key connector)", body.Required)
	}
	in := doc.Components.Schemas["create_lead_input"].Value
	if owner := in.Properties["owner"]; owner == nil || owner.Ref != "#/components/schemas/create_lead_input/$defs/person" {
		t.Errorf("the $defs reference was not relocated: %+v", owner)
	}
	if !strings.Contains(string(b), `"x-plugboard-annotations"`) || strings.Contains(string(b), `"$schema"`) {
		t.Errorf("annotations missing or $schema kept:\n%s", b)
	}
	// A connector without auth does not ask for a connection.
	m.Auth.Types = []string{abi.AuthNone}
	b, _ = Connector(m)
	doc = load(t, b)
	body = doc.Paths.Find("/v1/connectors/crm/actions/ping").Post.RequestBody.Value.Content.Get("application/json").Schema.Value
	if slicesHave(body.Required, "connection") {
		t.Errorf("an auth-less connector requires a connection: %v", body.Required)
	}
}

func slicesHave(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
