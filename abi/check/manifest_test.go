package check

import (
	"encoding/json"
	"strings"
	"testing"
)

const validManifest = `{
  "abi": 1, "name": "github", "version": "1.2.0", "title": "GitHub",
  "auth": {"types": ["api_key", "oauth2"],
           "api_key": {"in": "header", "name": "Authorization", "prefix": "Bearer "},
           "oauth2": {"authorization_url": "https://github.com/login/oauth/authorize", "token_url": "https://github.com/login/oauth/access_token", "scopes": ["repo"]}},
  "connection_params": {"type": "object", "properties": {"base_url": {"type": "string", "format": "uri", "default": "https://api.github.com"}}},
  "hosts": ["{base_url}", "https://uploads.github.com", "https://*.githubusercontent.com"],
  "actions": [{"name": "create_issue", "input_schema": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
               "output_schema": {"type": "object"}, "annotations": {"idempotent": true}, "timeout_ms": 30000}],
  "triggers": [{"name": "new_issue", "kind": "poll", "params_schema": {"type": "object"}, "default_interval_s": 60, "min_interval_s": 15},
               {"name": "issue_event", "kind": "webhook", "params_schema": {}, "event_schema": {}}],
  "capabilities": {"reveal": []},
  "limits": {"memory_mb": 64, "timeout_ms": 30000}
}`

// mutate applies fn to the decoded valid manifest and re-encodes it.
func mutate(t *testing.T, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(validManifest), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func action(m map[string]any) map[string]any {
	return m["actions"].([]any)[0].(map[string]any)
}

func trigger(m map[string]any) map[string]any {
	return m["triggers"].([]any)[0].(map[string]any)
}

func TestParseManifestValid(t *testing.T) {
	m, err := ParseManifest([]byte(validManifest))
	if err != nil {
		t.Fatalf("valid manifest rejected: %v", err)
	}
	if got := m.RequiredExports(); strings.Join(got, ",") != "plugboard_describe,plugboard_invoke,plugboard_poll,plugboard_webhook" {
		t.Errorf("RequiredExports = %v", got)
	}
	if def, min := m.Triggers[1].Interval(); def != 60 || min != 15 {
		t.Errorf("default intervals = %d, %d", def, min)
	}
}

func TestParseManifestRules(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(m map[string]any)
		field string // the field the error must name
	}{
		{"abi missing", func(m map[string]any) { delete(m, "abi") }, "abi"},
		{"abi is 2", func(m map[string]any) { m["abi"] = 2 }, "abi"},
		{"name missing", func(m map[string]any) { delete(m, "name") }, "name"},
		{"name with upper case", func(m map[string]any) { m["name"] = "GitHub" }, "name"},
		{"name of one character", func(m map[string]any) { m["name"] = "g" }, "name"},
		{"name starting with a digit", func(m map[string]any) { m["name"] = "1github" }, "name"},
		{"name with underscore", func(m map[string]any) { m["name"] = "git_hub" }, "name"},
		{"name of 64 characters", func(m map[string]any) { m["name"] = "a" + strings.Repeat("b", 63) }, "name"},
		{"version missing", func(m map[string]any) { delete(m, "version") }, "version"},
		{"version not semver", func(m map[string]any) { m["version"] = "1.2" }, "version"},
		{"version with leading zero", func(m map[string]any) { m["version"] = "01.2.0" }, "version"},
		{"version with v prefix", func(m map[string]any) { m["version"] = "v1.2.0" }, "version"},
		{"auth missing", func(m map[string]any) { delete(m, "auth") }, "auth.types"},
		{"auth types empty", func(m map[string]any) { m["auth"] = map[string]any{"types": []any{}} }, "auth.types"},
		{"auth type unknown", func(m map[string]any) { m["auth"].(map[string]any)["types"] = []any{"jwt"} }, "auth.types[0]"},
		{"auth type listed twice", func(m map[string]any) {
			m["auth"] = map[string]any{"types": []any{"basic", "basic"}}
		}, "auth.types[1]"},
		{"api_key settings missing", func(m map[string]any) { delete(m["auth"].(map[string]any), "api_key") }, "auth.api_key"},
		{"oauth2 settings missing", func(m map[string]any) { delete(m["auth"].(map[string]any), "oauth2") }, "auth.oauth2"},
		{"api_key in cookie", func(m map[string]any) {
			m["auth"].(map[string]any)["api_key"].(map[string]any)["in"] = "cookie"
		}, "auth.api_key.in"},
		{"api_key name empty", func(m map[string]any) {
			m["auth"].(map[string]any)["api_key"].(map[string]any)["name"] = ""
		}, "auth.api_key.name"},
		{"api_key settings for an unlisted type", func(m map[string]any) {
			m["auth"].(map[string]any)["types"] = []any{"oauth2"}
		}, "auth.api_key"},
		{"oauth2 token_url not a URL", func(m map[string]any) {
			m["auth"].(map[string]any)["oauth2"].(map[string]any)["token_url"] = "github.com/token"
		}, "auth.oauth2.token_url"},
		{"oauth2 endpoint naming an undeclared param", func(m map[string]any) {
			m["auth"].(map[string]any)["oauth2"].(map[string]any)["token_url"] = "https://login.example.com/{tenant}/token"
		}, "auth.oauth2.token_url"},
		{"host bare star", func(m map[string]any) { m["hosts"] = []any{"*"} }, "hosts[0]"},
		{"host with path", func(m map[string]any) { m["hosts"] = []any{"https://api.github.com/v3"} }, "hosts[0]"},
		{"host without scheme", func(m map[string]any) { m["hosts"] = []any{"api.github.com"} }, "hosts[0]"},
		{"host with ftp scheme", func(m map[string]any) { m["hosts"] = []any{"ftp://files.example.com"} }, "hosts[0]"},
		{"host wildcard in the middle", func(m map[string]any) { m["hosts"] = []any{"https://api.*.example.com"} }, "hosts[0]"},
		{"host wildcard over a TLD", func(m map[string]any) { m["hosts"] = []any{"https://*.com"} }, "hosts[0]"},
		{"host param not declared", func(m map[string]any) { m["hosts"] = []any{"{api_url}"} }, "hosts[0]"},
		{"host param default not a URL", func(m map[string]any) {
			m["connection_params"].(map[string]any)["properties"].(map[string]any)["base_url"].(map[string]any)["default"] = "api.github.com"
		}, "hosts[0]"},
		{"action name with dash", func(m map[string]any) { action(m)["name"] = "create-issue" }, "actions[0].name"},
		{"action name too long", func(m map[string]any) { action(m)["name"] = "a" + strings.Repeat("b", 64) }, "actions[0].name"},
		{"action and trigger share a name", func(m map[string]any) { trigger(m)["name"] = "create_issue" }, "triggers[0].name"},
		{"action names duplicated", func(m map[string]any) {
			m["actions"] = append(m["actions"].([]any), action(m))
		}, "actions[1].name"},
		{"input_schema missing", func(m map[string]any) { delete(action(m), "input_schema") }, "actions[0].input_schema"},
		{"input_schema not an object type", func(m map[string]any) { action(m)["input_schema"] = map[string]any{"type": "string"} }, "actions[0].input_schema"},
		{"input_schema not a valid schema", func(m map[string]any) {
			action(m)["input_schema"] = map[string]any{"type": "object", "properties": 5}
		}, "actions[0].input_schema"},
		{"input_schema with prefixItems", func(m map[string]any) {
			action(m)["input_schema"] = map[string]any{"type": "object", "properties": map[string]any{"p": map[string]any{"prefixItems": []any{}}}}
		}, "actions[0].input_schema"},
		{"input_schema with $dynamicRef", func(m map[string]any) {
			action(m)["input_schema"] = map[string]any{"type": "object", "$dynamicRef": "#x"}
		}, "actions[0].input_schema"},
		{"input_schema with external $ref", func(m map[string]any) {
			action(m)["input_schema"] = map[string]any{"type": "object", "$ref": "https://example.com/s.json"}
		}, "actions[0].input_schema"},
		{"output_schema not an object type", func(m map[string]any) { action(m)["output_schema"] = map[string]any{"type": "array"} }, "actions[0].output_schema"},
		{"action timeout negative", func(m map[string]any) { action(m)["timeout_ms"] = -1 }, "actions[0].timeout_ms"},
		{"trigger kind unknown", func(m map[string]any) { trigger(m)["kind"] = "stream" }, "triggers[0].kind"},
		{"trigger kind missing", func(m map[string]any) { delete(trigger(m), "kind") }, "triggers[0].kind"},
		{"trigger params_schema missing", func(m map[string]any) { delete(trigger(m), "params_schema") }, "triggers[0].params_schema"},
		{"trigger params_schema an array type", func(m map[string]any) { trigger(m)["params_schema"] = map[string]any{"type": "array"} }, "triggers[0].params_schema"},
		{"trigger default interval below minimum", func(m map[string]any) { trigger(m)["default_interval_s"] = 5 }, "triggers[0].default_interval_s"},
		{"connection_params not an object type", func(m map[string]any) { m["connection_params"] = map[string]any{"type": "string"} }, "connection_params"},
		{"reveal field duplicated", func(m map[string]any) { m["capabilities"] = map[string]any{"reveal": []any{"api_key", "api_key"}} }, "capabilities.reveal[1]"},
		{"memory limit negative", func(m map[string]any) { m["limits"] = map[string]any{"memory_mb": -1} }, "limits.memory_mb"},
		{"output cap negative", func(m map[string]any) { m["limits"] = map[string]any{"output_bytes": -1} }, "limits.output_bytes"},
		{"output cap not an integer", func(m map[string]any) { m["limits"] = map[string]any{"output_bytes": 1.5} }, "manifest"},
		{"unknown top-level field", func(m map[string]any) { m["hostz"] = []any{} }, "manifest"},
		{"unknown action field", func(m map[string]any) { action(m)["inputSchema"] = map[string]any{} }, "manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest(mutate(t, tt.edit))
			me, ok := err.(*ManifestError)
			if !ok {
				t.Fatalf("err = %v (%T), want *ManifestError", err, err)
			}
			for _, p := range me.Problems {
				if p.Field == tt.field {
					return
				}
			}
			t.Errorf("error %q does not name field %q", err, tt.field)
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add([]byte(`{"abi":1}`))
	f.Add([]byte(`{"hosts":["{x}"],"connection_params":{"type":"object","properties":{"x":{"default":"http://[::1]:80"}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err == nil && Manifest(m) != nil {
			t.Fatal("a parsed manifest must validate")
		}
	})
}
