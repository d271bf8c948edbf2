package pdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/plugboard/plugboard/abi"
)

// Info is a connector's identity and the manifest fields that are not about one action or
// trigger (ABI.md section 3). Name, Version and Auth.Types are required.
type Info struct {
	// Name is the connector's name: lower-case letters, digits and "-", 2 to 63 characters.
	Name string
	// Version is the connector's SemVer 2.0 version, such as "1.2.0".
	Version string
	// Title is a short human-readable name; empty for none.
	Title string
	// Description says what the connector reaches; empty for none.
	Description string
	// Auth lists the accepted auth types and where the host injects credentials.
	Auth abi.Auth
	// ConnectionParams is the JSON Schema of the connection's non-secret params, with
	// "type": "object". It may be a json.RawMessage, a []byte or string of JSON text, or any
	// value that encodes to the schema (a map, or the result of [SchemaFor]). Nil means the
	// connector takes no params.
	ConnectionParams any
	// Hosts are the origins the connector may reach: "https://api.example.com",
	// "https://*.example.com", or "{param}" naming a URL-valued connection param. Nil means no
	// egress at all.
	Hosts []string
	// Capabilities are optional powers (reveal); nil for none.
	Capabilities *abi.Capabilities
	// Limits bound one call (memory, timeout); nil leaves the server's defaults.
	Limits *abi.Limits
}

// Connector declares the connector's identity. Call it once, from an init function of the
// plugin's main package, next to the [Action] and trigger registrations:
//
//	func init() {
//		pdk.Connector(pdk.Info{Name: "github", Version: "1.0.0", Auth: abi.Auth{Types: []string{abi.AuthNone}}})
//	}
//
// Mistakes (a second call, a connection_params schema that is not JSON) are reported by
// [Describe], so the plugin's describe export and the pdktest harness both fail with them.
func Connector(info Info) { defaultTable.setConnector(info) }

// Describe builds the manifest from the registrations made so far: what the plugboard_describe
// export returns. It fails with every registration mistake joined in one error. The result is
// deterministic: actions and triggers are in registration order, schemas are derived the same
// way each time. Describe does not apply the full validation of ABI.md section 3 (the host does
// that at upload, and pdktest in tests): call (*abi.Manifest).Validate for that.
func Describe() (*abi.Manifest, error) { return defaultTable.manifest() }

// table holds a plugin's registrations. A plugin has one, filled by init functions before any
// export runs and read-only afterwards.
type table struct {
	info     *Info
	params   json.RawMessage
	actions  []*actionEntry
	triggers []*triggerEntry
	onTimer  func(*Context, abi.TimerEvent) error
	names    map[string]bool
	errs     []error
}

// defaultTable is the registration table of the plugin: its only package-level state.
var defaultTable table

func (t *table) fail(err error) { t.errs = append(t.errs, err) }

func (t *table) setConnector(info Info) {
	if t.info != nil {
		t.fail(errors.New("pdk.Connector called twice"))
		return
	}
	t.info = &info
	if info.ConnectionParams == nil {
		return
	}
	raw, err := rawSchema(info.ConnectionParams)
	if err != nil {
		t.fail(fmt.Errorf("pdk.Connector: ConnectionParams: %w", err))
		return
	}
	t.params = raw
}

// rawSchema turns a schema given as any value into JSON text describing an object.
func rawSchema(v any) (json.RawMessage, error) {
	var raw []byte
	switch s := v.(type) {
	case json.RawMessage:
		raw = s
	case []byte:
		raw = s
	case string:
		raw = []byte(s)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Schema object: %v", err)
	}
	if doc["type"] != "object" {
		return nil, errors.New(`the schema must have "type": "object"`)
	}
	return compact(raw)
}

func compact(raw []byte) (json.RawMessage, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v) // sorted keys: deterministic whatever the source's layout
}

// claim reserves an action or trigger name, which are unique within a manifest.
func (t *table) claim(kind, name string) bool {
	if t.names == nil {
		t.names = map[string]bool{}
	}
	if t.names[name] {
		t.fail(fmt.Errorf("pdk.%s(%q): the name is already registered", kind, name))
		return false
	}
	t.names[name] = true
	return true
}

func (t *table) manifest() (*abi.Manifest, error) {
	errs := t.errs
	if t.info == nil {
		errs = append(errs, errors.New("pdk.Connector was not called: declare the connector's name, version and auth in an init function"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	info := t.info
	m := &abi.Manifest{
		ABI:              abi.Version,
		Name:             info.Name,
		Version:          info.Version,
		Title:            info.Title,
		Description:      info.Description,
		Auth:             info.Auth,
		ConnectionParams: t.params,
		Hosts:            info.Hosts,
		Capabilities:     info.Capabilities,
		Limits:           info.Limits,
	}
	for _, a := range t.actions {
		m.Actions = append(m.Actions, a.desc)
	}
	for _, tr := range t.triggers {
		m.Triggers = append(m.Triggers, tr.desc)
	}
	return m, nil
}

func (t *table) action(name string) *actionEntry {
	for _, a := range t.actions {
		if a.desc.Name == name {
			return a
		}
	}
	return nil
}

func (t *table) trigger(name string) *triggerEntry {
	for _, tr := range t.triggers {
		if tr.desc.Name == name {
			return tr
		}
	}
	return nil
}

// decodeInto decodes a JSON document into a new value of type T strictly (unknown fields are an
// error); an absent or null document decodes as the empty object.
func decodeInto[T any](raw json.RawMessage) (T, error) {
	var v T
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	if err := abi.DecodeStrict(raw, &v); err != nil {
		return v, err
	}
	return v, nil
}

// checkObjectType refuses a type whose values do not encode as a JSON object.
func checkObjectType(t reflect.Type) error {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if !isObjectType(t) {
		return fmt.Errorf("%s does not encode as a JSON object; use a struct", t)
	}
	return nil
}
