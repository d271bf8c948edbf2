package pdk

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// ErrSchema is wrapped by every error about deriving a JSON Schema from a Go type.
var ErrSchema = errors.New("pdk: cannot derive JSON Schema")

// SchemaFor derives the JSON Schema of T the way [Action] derives input and output schemas. T
// must be a struct, a pointer to one or a map with string keys, so the schema has
// "type": "object" at the top, as every schema of a manifest that describes a document must.
// Use it to build Info.ConnectionParams from a Go type or to start a schema override.
//
// The rules follow encoding/json, so the schema describes exactly what json.Marshal produces
// and json.Unmarshal accepts:
//
//   - Exported struct fields are properties named by their `json` tag; "-" skips a field;
//     embedded structs without a name are flattened. Every struct has
//     "additionalProperties": false.
//   - A field is required unless its tag says omitempty or omitzero, or its type is a pointer.
//   - bool is "boolean", integers are "integer" (unsigned ones with "minimum": 0), floats are
//     "number", strings are "string", []byte is a base64 "string".
//   - time.Time is a "string" with "format": "date-time".
//   - Slices and arrays are "array" with "items"; maps are "object" with
//     "additionalProperties" of the element's schema.
//   - Pointers, slices and maps may be JSON null, so their type also allows "null".
//   - json.RawMessage, interfaces (any) and types with their own MarshalJSON are unconstrained
//     ({}); types with MarshalText are "string".
//   - Recursive types, channels, functions and complex numbers are refused.
//
// Struct tags refine a field's schema:
//
//	`jsonschema:"The repository owner"`  description (the same tag as the MCP Go SDK)
//	`enum:"open,closed,all"`            allowed values, comma-separated, parsed as the field's type
//	`default:"30"`                      default value: JSON, or plain text for string fields
//	`format:"uri"`                      the "format" keyword
//	`pattern:"^[a-z]+$"`                the "pattern" keyword
//	`minimum:"1"` `maximum:"100"`       numeric bounds
//	`minLength:"1"` `maxLength:"256"`   string length bounds
//
// On a slice or array field, enum, format, pattern and the bounds apply to the items. A default
// is documentation for clients: the host does not fill it in, so handlers apply it themselves.
func SchemaFor[T any]() (json.RawMessage, error) {
	return objectSchema(reflect.TypeFor[T]())
}

// objectSchema derives the schema of t, which must describe a JSON object.
func objectSchema(t reflect.Type) (json.RawMessage, error) {
	root := t
	if root.Kind() == reflect.Pointer {
		root = root.Elem()
	}
	if !isObjectType(root) {
		return nil, fmt.Errorf("%w: %s is not a struct or a map with string keys, so it is not a JSON object", ErrSchema, t)
	}
	g := schemaGen{visiting: map[reflect.Type]bool{}}
	s, err := g.typeSchema(root)
	if err != nil {
		return nil, err
	}
	s.Type = "object" // the root is never null
	return json.Marshal(s)
}

// isObjectType reports whether values of t encode as JSON objects.
func isObjectType(t reflect.Type) bool {
	if implements(t, jsonMarshalerType) || implements(t, textMarshalerType) || t == timeType {
		return false
	}
	switch t.Kind() {
	case reflect.Struct:
		return true
	case reflect.Map:
		return t.Key().Kind() == reflect.String
	}
	return false
}

// schema is a JSON Schema document restricted to the keywords draft-07 and 2020-12 read alike.
// Fields are in the order they are marshalled, so the output is deterministic.
type schema struct {
	Type                 any             `json:"type,omitempty"` // string or []string
	Description          string          `json:"description,omitempty"`
	Format               string          `json:"format,omitempty"`
	ContentEncoding      string          `json:"contentEncoding,omitempty"`
	Enum                 []any           `json:"enum,omitempty"`
	Default              json.RawMessage `json:"default,omitempty"`
	Minimum              *float64        `json:"minimum,omitempty"`
	Maximum              *float64        `json:"maximum,omitempty"`
	MinLength            *int            `json:"minLength,omitempty"`
	MaxLength            *int            `json:"maxLength,omitempty"`
	Pattern              string          `json:"pattern,omitempty"`
	Items                *schema         `json:"items,omitempty"`
	MinItems             *int            `json:"minItems,omitempty"`
	MaxItems             *int            `json:"maxItems,omitempty"`
	Properties           properties      `json:"properties,omitempty"`
	Required             []string        `json:"required,omitempty"`
	AdditionalProperties any             `json:"additionalProperties,omitempty"` // *schema or false
}

// property is one entry of "properties".
type property struct {
	name   string
	schema *schema
}

// properties keeps struct field order when marshalled.
type properties []property

// MarshalJSON writes the properties as an object in field order.
func (p properties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, prop := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(prop.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(prop.schema)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// implements reports whether t or *t implements iface (encoding/json uses both).
func implements(t, iface reflect.Type) bool {
	return t.Implements(iface) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(iface))
}

type schemaGen struct {
	// visiting holds the struct types on the current path, to refuse recursive types.
	visiting map[reflect.Type]bool
}

func (g *schemaGen) typeSchema(t reflect.Type) (*schema, error) {
	if t.Kind() == reflect.Pointer { // nil encodes as null, anything else as the element
		s, err := g.typeSchema(t.Elem())
		if err != nil {
			return nil, err
		}
		return nullable(s), nil
	}
	switch {
	case t == timeType:
		return &schema{Type: "string", Format: "date-time"}, nil
	case t == rawMessageType:
		return &schema{}, nil
	case implements(t, jsonMarshalerType):
		return &schema{}, nil
	case implements(t, textMarshalerType):
		return &schema{Type: "string"}, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return &schema{Type: "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &schema{Type: "integer"}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		zero := 0.0
		return &schema{Type: "integer", Minimum: &zero}, nil
	case reflect.Float32, reflect.Float64:
		return &schema{Type: "number"}, nil
	case reflect.String:
		return &schema{Type: "string"}, nil
	case reflect.Interface:
		return &schema{}, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && !implements(t.Elem(), jsonMarshalerType) && !implements(t.Elem(), textMarshalerType) {
			return &schema{Type: []string{"string", "null"}, ContentEncoding: "base64"}, nil
		}
		items, err := g.typeSchema(t.Elem())
		if err != nil {
			return nil, err
		}
		return &schema{Type: []string{"array", "null"}, Items: items}, nil
	case reflect.Array:
		items, err := g.typeSchema(t.Elem())
		if err != nil {
			return nil, err
		}
		n := t.Len()
		return &schema{Type: "array", Items: items, MinItems: &n, MaxItems: &n}, nil
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		default:
			if !implements(t.Key(), textMarshalerType) {
				return nil, fmt.Errorf("%w: map key type %s cannot be a JSON object key", ErrSchema, t.Key())
			}
		}
		elem, err := g.typeSchema(t.Elem())
		if err != nil {
			return nil, err
		}
		return &schema{Type: []string{"object", "null"}, AdditionalProperties: elem}, nil
	case reflect.Struct:
		return g.structSchema(t)
	}
	return nil, fmt.Errorf("%w: %s values have no JSON encoding", ErrSchema, t)
}

// nullable lets s also accept null; an unconstrained schema already does.
func nullable(s *schema) *schema {
	switch typ := s.Type.(type) {
	case string:
		s.Type = []string{typ, "null"}
	case []string:
		if !contains(typ, "null") {
			s.Type = append(typ, "null")
		}
	}
	if len(s.Enum) > 0 {
		s.Enum = append(s.Enum, nil)
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (g *schemaGen) structSchema(t reflect.Type) (*schema, error) {
	if g.visiting[t] {
		return nil, fmt.Errorf("%w: %s is recursive; give the schema explicitly (InputSchema, OutputSchema)", ErrSchema, t)
	}
	g.visiting[t] = true
	defer delete(g.visiting, t)

	s := &schema{Type: "object", AdditionalProperties: false}
	for _, f := range jsonFields(t) {
		ps, err := g.typeSchema(f.typ)
		if err != nil {
			return nil, fmt.Errorf("field %s.%s: %w", t, f.goName, err)
		}
		if f.asString {
			ps = &schema{Type: "string"}
		}
		if err := applyTags(ps, f); err != nil {
			return nil, fmt.Errorf("%w: field %s.%s: %v", ErrSchema, t, f.goName, err)
		}
		s.Properties = append(s.Properties, property{name: f.name, schema: ps})
		if f.required {
			s.Required = append(s.Required, f.name)
		}
	}
	return s, nil
}

// jsonField is one property of a struct as encoding/json sees it.
type jsonField struct {
	name     string
	goName   string
	typ      reflect.Type
	tag      reflect.StructTag
	required bool
	asString bool
	depth    int
	tagged   bool
}

// jsonFields lists the fields encoding/json encodes for struct type t, in order, with embedded
// structs flattened and name conflicts resolved as encoding/json does (shallower wins; at equal
// depth a tagged field wins; otherwise the name is dropped).
func jsonFields(t reflect.Type) []jsonField {
	var all []jsonField
	var walk func(t reflect.Type, depth int, seen map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, seen map[reflect.Type]bool) {
		if seen[t] {
			return
		}
		seen[t] = true
		defer delete(seen, t)
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if name == "" && et.Kind() == reflect.Struct {
					if !sf.IsExported() && ft.Kind() == reflect.Pointer {
						continue // encoding/json cannot set embedded pointers to unexported types
					}
					walk(et, depth+1, seen)
					continue
				}
				if !sf.IsExported() {
					continue
				}
			} else if !sf.IsExported() {
				continue
			}
			f := jsonField{name: name, goName: sf.Name, typ: ft, tag: sf.Tag, depth: depth, tagged: name != ""}
			if f.name == "" {
				f.name = sf.Name
			}
			omit := hasOpt(opts, "omitempty") || hasOpt(opts, "omitzero")
			f.required = !omit && ft.Kind() != reflect.Pointer
			if hasOpt(opts, "string") {
				switch ft.Kind() {
				case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
					reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
					reflect.Float32, reflect.Float64, reflect.String:
					f.asString = true
				}
			}
			all = append(all, f)
		}
	}
	walk(t, 0, map[reflect.Type]bool{})

	// Resolve conflicts, keeping the order of first appearance.
	byName := map[string][]int{}
	var order []string
	for i, f := range all {
		if _, ok := byName[f.name]; !ok {
			order = append(order, f.name)
		}
		byName[f.name] = append(byName[f.name], i)
	}
	var out []jsonField
	for _, name := range order {
		if f, ok := dominantField(all, byName[name]); ok {
			out = append(out, f)
		}
	}
	return out
}

// dominantField picks the field encoding/json uses among those sharing a name: the shallowest,
// and among several at that depth the only tagged one. ok is false when none dominates.
func dominantField(all []jsonField, idx []int) (jsonField, bool) {
	minDepth := all[idx[0]].depth
	for _, i := range idx {
		minDepth = min(minDepth, all[i].depth)
	}
	var shallow, tagged []jsonField
	for _, i := range idx {
		if all[i].depth == minDepth {
			shallow = append(shallow, all[i])
			if all[i].tagged {
				tagged = append(tagged, all[i])
			}
		}
	}
	switch {
	case len(shallow) == 1:
		return shallow[0], true
	case len(tagged) == 1:
		return tagged[0], true
	}
	return jsonField{}, false
}

func hasOpt(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// applyTags sets the keywords given by a field's struct tags.
func applyTags(s *schema, f jsonField) error {
	if d, ok := f.tag.Lookup("jsonschema"); ok {
		s.Description = d
	}
	if d, ok := f.tag.Lookup("default"); ok {
		raw, err := defaultValue(d, f.typ)
		if err != nil {
			return err
		}
		s.Default = raw
	}
	// Value constraints apply to the items of a list.
	target, vt := s, f.typ
	if s.Items != nil {
		target, vt = s.Items, f.typ.Elem()
	}
	for vt.Kind() == reflect.Pointer {
		vt = vt.Elem()
	}
	if e, ok := f.tag.Lookup("enum"); ok {
		vals, err := enumValues(e, vt)
		if err != nil {
			return err
		}
		target.Enum = vals
		if isNullable(target) {
			target.Enum = append(target.Enum, nil)
		}
	}
	if v, ok := f.tag.Lookup("format"); ok {
		target.Format = v
	}
	if v, ok := f.tag.Lookup("pattern"); ok {
		target.Pattern = v
	}
	for _, kw := range []struct {
		tag string
		dst **float64
	}{{"minimum", &target.Minimum}, {"maximum", &target.Maximum}} {
		if v, ok := f.tag.Lookup(kw.tag); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%s tag %q is not a number", kw.tag, v)
			}
			*kw.dst = &n
		}
	}
	for _, kw := range []struct {
		tag string
		dst **int
	}{{"minLength", &target.MinLength}, {"maxLength", &target.MaxLength}} {
		if v, ok := f.tag.Lookup(kw.tag); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%s tag %q is not a non-negative integer", kw.tag, v)
			}
			*kw.dst = &n
		}
	}
	return nil
}

func isNullable(s *schema) bool {
	typ, ok := s.Type.([]string)
	return ok && contains(typ, "null")
}

// defaultValue turns a default tag into JSON: string fields may give plain text.
func defaultValue(tag string, t reflect.Type) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if json.Valid([]byte(tag)) && !(t.Kind() == reflect.String && !strings.HasPrefix(tag, `"`)) {
		return json.RawMessage(tag), nil
	}
	if t.Kind() == reflect.String {
		return json.Marshal(tag)
	}
	return nil, fmt.Errorf("default tag %q is not JSON", tag)
}

// enumValues parses a comma-separated enum tag as values of kind t.
func enumValues(tag string, t reflect.Type) ([]any, error) {
	var out []any
	for _, v := range strings.Split(tag, ",") {
		switch t.Kind() {
		case reflect.String:
			out = append(out, v)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("enum value %q is not an integer", v)
			}
			out = append(out, n)
		case reflect.Float32, reflect.Float64:
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("enum value %q is not a number", v)
			}
			out = append(out, n)
		case reflect.Bool:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("enum value %q is not a boolean", v)
			}
			out = append(out, b)
		default:
			return nil, fmt.Errorf("enum tag on a %s field; enums take strings, numbers or booleans", t)
		}
	}
	return out, nil
}
