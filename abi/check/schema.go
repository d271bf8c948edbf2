package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is a compiled JSON Schema (2020-12) ready to validate instances.
type Schema struct {
	s *jsonschema.Schema
}

// SchemaError is one reason an instance failed validation, located by JSON Pointer.
type SchemaError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

var printer = message.NewPrinter(language.English)

// ErrSchemaInvalid is wrapped by every error [CompileSchema] returns for a bad schema.
var ErrSchemaInvalid = errors.New("invalid JSON Schema")

// draft07Incompatible are keywords draft-07 validators (used by MCP clients) read differently.
var draft07Incompatible = []string{"prefixItems", "$dynamicRef", "$dynamicAnchor"}

// noLoader refuses every external reference: plugin schemas must be self-contained.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external $ref %q is not allowed; schemas must be self-contained", url)
}

// CompileSchema compiles raw as a JSON Schema 2020-12 document. It refuses external references
// and the keywords draft-07 validators read differently (prefixItems, $dynamicRef).
func CompileSchema(raw json.RawMessage) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrSchemaInvalid, err)
	}
	switch doc.(type) {
	case map[string]any, bool:
	default:
		return nil, fmt.Errorf("%w: a schema is an object or a boolean", ErrSchemaInvalid)
	}
	if kw := findKeyword(doc, draft07Incompatible); kw != "" {
		return nil, fmt.Errorf("%w: keyword %q is not allowed (MCP clients validate with draft-07)", ErrSchemaInvalid, kw)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	const loc = "plugboard:///schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchemaInvalid, err)
	}
	s, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchemaInvalid, oneLine(err.Error()))
	}
	return &Schema{s: s}, nil
}

// findKeyword returns the first of kws used as an object key anywhere in doc.
func findKeyword(doc any, kws []string) string {
	switch v := doc.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, kw := range kws {
				if k == kw {
					return kw
				}
			}
			if k == "enum" || k == "const" || k == "default" || k == "examples" {
				continue // values, not schemas
			}
			if found := findKeyword(v[k], kws); found != "" {
				return found
			}
		}
	case []any:
		for _, e := range v {
			if found := findKeyword(e, kws); found != "" {
				return found
			}
		}
	}
	return ""
}

// Validate checks a JSON instance against the schema. It returns nil when the instance is
// valid, otherwise the leaf errors, each with the JSON Pointer of the offending value.
func (s *Schema) Validate(instance json.RawMessage) []SchemaError {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(instance))
	if err != nil {
		return []SchemaError{{Path: "", Message: "not valid JSON: " + err.Error()}}
	}
	err = s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []SchemaError{{Path: "", Message: err.Error()}}
	}
	var out []SchemaError
	collectLeaves(ve, &out)
	if len(out) == 0 {
		out = append(out, SchemaError{Path: pointer(ve.InstanceLocation), Message: oneLine(ve.Error())})
	}
	return out
}

func collectLeaves(ve *jsonschema.ValidationError, out *[]SchemaError) {
	if len(ve.Causes) == 0 {
		*out = append(*out, SchemaError{Path: pointer(ve.InstanceLocation), Message: ve.ErrorKind.LocalizedString(printer)})
		return
	}
	for _, c := range ve.Causes {
		collectLeaves(c, out)
	}
}

// pointer renders instance location tokens as a JSON Pointer ("" for the root).
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
