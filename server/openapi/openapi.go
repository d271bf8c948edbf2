// Package openapi holds the OpenAPI 3.1 document of Plugboard's HTTP API (openapi.yaml, the
// single machine-readable source of docs/API.md) and builds the per-connector documents that
// describe one connector's actions as typed operations.
//
// The server serves [JSON] and [YAML] at GET /v1/openapi.json and /v1/openapi.yaml, and
// [Connector] at GET /v1/connectors/{name}/openapi.json. The package openapitest checks HTTP
// exchanges against the document in tests.
package openapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v4"
)

//go:embed openapi.yaml
var source []byte

var (
	jsonOnce sync.Once
	jsonDoc  []byte
	jsonErr  error
)

// YAML is the document as written, in YAML.
func YAML() []byte { return source }

// JSON is the document in JSON, with the keys in the order the YAML has them. It panics if the
// embedded YAML is not valid, which the package's tests rule out.
func JSON() []byte {
	jsonOnce.Do(func() { jsonDoc, jsonErr = yamlToJSON(source) })
	if jsonErr != nil {
		panic("openapi: the embedded openapi.yaml does not convert to JSON: " + jsonErr.Error())
	}
	return jsonDoc
}

// yamlToJSON converts a YAML document to indented JSON, keeping the order of mapping keys.
func yamlToJSON(src []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := writeNode(&b, &root); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func writeNode(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("line %d: want one document", n.Line)
		}
		return writeNode(b, n.Content[0])
	case yaml.AliasNode:
		return writeNode(b, n.Alias)
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, n.Content[i].Value)
			b.WriteByte(':')
			if err := writeNode(b, n.Content[i+1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeNode(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			b.WriteString("null")
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			j, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			b.Write(j)
		default:
			writeString(b, n.Value)
		}
	default:
		return fmt.Errorf("line %d: unexpected YAML node kind %v", n.Line, n.Kind)
	}
	return nil
}

// writeString writes s as a JSON string, without json.Marshal's escaping of <, > and &.
func writeString(b *bytes.Buffer, s string) {
	e := json.NewEncoder(b)
	e.SetEscapeHTML(false)
	e.Encode(s)
	b.Truncate(b.Len() - 1) // Encode's newline
}
