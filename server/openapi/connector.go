package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/plugboard/plugboard/abi"
)

// Connector is the OpenAPI 3.1 document of one connector version: each action of the manifest
// as the typed operation POST /v1/connectors/{name}/actions/{action}, whose request's "input"
// is the action's input_schema and whose response's "output" is its output_schema. The
// schemas go under components/schemas as "{action}_input" and "{action}_output", with their
// local references ("#/$defs/...", "#") rewritten to where they now sit, so a generator gets
// one named type per action input and output.
func Connector(m abi.Manifest) ([]byte, error) {
	needsConnection := !slices.Equal(m.Auth.Types, []string{abi.AuthNone}) && len(m.Auth.Types) > 0
	schemas := map[string]any{}
	paths := map[string]any{}
	for _, a := range m.Actions {
		in, err := relocate(a.InputSchema, a.Name+"_input")
		if err != nil {
			return nil, fmt.Errorf("action %s: input_schema: %w", a.Name, err)
		}
		schemas[a.Name+"_input"] = in
		output := any(map[string]any{"description": "the action's output (the manifest declares no output_schema)"})
		if len(a.OutputSchema) > 0 {
			out, err := relocate(a.OutputSchema, a.Name+"_output")
			if err != nil {
				return nil, fmt.Errorf("action %s: output_schema: %w", a.Name, err)
			}
			schemas[a.Name+"_output"] = out
			output = ref(a.Name + "_output")
		}
		reqProps := map[string]any{
			"connection": map[string]any{"type": "string", "description": "the connection to call it with"},
			"input":      ref(a.Name + "_input"),
			"version":    map[string]any{"type": "string", "description": "pins a stored version; default the active one"},
		}
		required := []string{"input"}
		if needsConnection {
			required = append(required, "connection")
		}
		op := map[string]any{
			"operationId": a.Name,
			"summary":     firstNonEmpty(a.Title, a.Name),
			"tags":        []string{m.Name},
			"requestBody": map[string]any{
				"required": true,
				"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
					"type": "object", "additionalProperties": false, "required": required, "properties": reqProps,
				}}},
			},
			"responses": map[string]any{
				"200": map[string]any{
					"description": "The action's output.",
					"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
						"type":     "object",
						"required": []string{"output", "connector", "version", "correlation_id"},
						"properties": map[string]any{
							"output":         output,
							"connector":      map[string]any{"const": m.Name},
							"version":        map[string]any{"type": "string"},
							"correlation_id": map[string]any{"type": "string"},
						},
					}}},
				},
				"default": map[string]any{
					"description": "A problem document (RFC 9457); see the Plugboard API document for the codes.",
					"content":     map[string]any{"application/problem+json": map[string]any{"schema": ref("Problem")}},
				},
			},
		}
		if a.Description != "" {
			op["description"] = a.Description
		}
		if an := a.Annotations; an != nil {
			op["x-plugboard-annotations"] = map[string]bool{"read_only": an.ReadOnly, "idempotent": an.Idempotent, "destructive": an.Destructive}
		}
		paths["/v1/connectors/"+m.Name+"/actions/"+a.Name] = map[string]any{"post": op}
	}
	schemas["Problem"] = map[string]any{
		"type":     "object",
		"required": []string{"type", "title", "status", "code", "source"},
		"properties": map[string]any{
			"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
			"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
			"code": map[string]any{"type": "string"}, "correlation_id": map[string]any{"type": "string"},
			"source": map[string]any{"type": "string", "enum": []string{"plugboard", "plugin"}},
			"errors": map[string]any{"type": "array", "items": map[string]any{
				"type": "object", "required": []string{"path", "message"},
				"properties": map[string]any{"path": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}},
			}},
		},
	}
	info := map[string]any{
		"title":   firstNonEmpty(m.Title, m.Name) + " (Plugboard connector " + m.Name + ")",
		"version": m.Version,
	}
	if m.Description != "" {
		info["description"] = m.Description
	}
	doc := map[string]any{
		"openapi":    "3.1.0",
		"info":       info,
		"security":   []any{map[string]any{"bearer": []string{}}},
		"paths":      paths,
		"components": map[string]any{"schemas": schemas, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

var localRef = regexp.MustCompile(`^#(/.*)?$`)

// relocate decodes a JSON Schema that will sit at #/components/schemas/{name} and rewrites
// its document-local references to point there, and drops "$schema" (the document's
// jsonSchemaDialect says it) so the schema is valid as a component.
func relocate(raw json.RawMessage, name string) (any, error) {
	if len(raw) == 0 {
		return map[string]any{}, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	base := "#/components/schemas/" + name
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k, c := range t {
				if k == "$ref" {
					if s, ok := c.(string); ok && localRef.MatchString(s) {
						t[k] = base + strings.TrimPrefix(s, "#")
					}
					continue
				}
				t[k] = walk(c)
			}
			return t
		case []any:
			for i, c := range t {
				t[i] = walk(c)
			}
			return t
		}
		return x
	}
	v = walk(v)
	if m, ok := v.(map[string]any); ok {
		delete(m, "$schema")
	}
	return v, nil
}
