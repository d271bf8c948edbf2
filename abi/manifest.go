package abi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Manifest describes a connector; plugboard_describe returns it (ABI.md section 3).
type Manifest struct {
	ABI              int             `json:"abi"`
	Name             string          `json:"name"`
	Version          string          `json:"version"`
	Title            string          `json:"title,omitempty"`
	Description      string          `json:"description,omitempty"`
	Auth             Auth            `json:"auth"`
	ConnectionParams json.RawMessage `json:"connection_params,omitempty"`
	// Hosts are the origins the connector may reach: "scheme://host[:port]", "https://*.domain"
	// or "{param}" naming a URL-valued connection param.
	Hosts        []string      `json:"hosts,omitempty"`
	Actions      []Action      `json:"actions,omitempty"`
	Triggers     []Trigger     `json:"triggers,omitempty"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	Limits       *Limits       `json:"limits,omitempty"`
}

// Auth lists the auth types a connector accepts and the settings of each.
type Auth struct {
	Types  []string    `json:"types"`
	APIKey *APIKeyAuth `json:"api_key,omitempty"`
	OAuth2 *OAuth2Auth `json:"oauth2,omitempty"`
}

// APIKeyAuth says where the host injects an API key.
type APIKeyAuth struct {
	// In is "header" or "query".
	In string `json:"in"`
	// Name is the header or query parameter name.
	Name string `json:"name"`
	// Prefix is prepended to the key, e.g. "Bearer ". Empty by default.
	Prefix string `json:"prefix,omitempty"`
}

// OAuth2Auth holds a connector's OAuth2 endpoints and scopes.
type OAuth2Auth struct {
	AuthorizationURL string   `json:"authorization_url,omitempty"`
	TokenURL         string   `json:"token_url,omitempty"`
	Scopes           []string `json:"scopes,omitempty"`
	// PKCE defaults to true.
	PKCE *bool `json:"pkce,omitempty"`
}

// Action is one synchronous operation of a connector.
type Action struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema"`
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
	Annotations  *Annotations    `json:"annotations,omitempty"`
	TimeoutMS    int64           `json:"timeout_ms,omitempty"`
}

// Annotations are hints about an action's effects; all default to false.
type Annotations struct {
	ReadOnly    bool `json:"read_only,omitempty"`
	Idempotent  bool `json:"idempotent,omitempty"`
	Destructive bool `json:"destructive,omitempty"`
}

// Trigger is one event source of a connector.
type Trigger struct {
	Name             string          `json:"name"`
	Kind             string          `json:"kind"`
	Title            string          `json:"title,omitempty"`
	Description      string          `json:"description,omitempty"`
	ParamsSchema     json.RawMessage `json:"params_schema"`
	EventSchema      json.RawMessage `json:"event_schema,omitempty"`
	DefaultIntervalS int             `json:"default_interval_s,omitempty"`
	MinIntervalS     int             `json:"min_interval_s,omitempty"`
}

// Capabilities are optional powers a connector asks for, each also gated by an operator.
type Capabilities struct {
	// Reveal lists credential fields the guest may read in clear with plugboard_credential.
	Reveal []string `json:"reveal,omitempty"`
}

// Limits bound one call of the connector; the server caps both.
type Limits struct {
	MemoryMB  int   `json:"memory_mb,omitempty"`
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Defaults for optional trigger fields.
const (
	DefaultIntervalS    = 60
	DefaultMinIntervalS = 15
)

// Interval returns the trigger's default and minimum polling intervals in seconds, with the
// ABI defaults applied.
func (t Trigger) Interval() (def, min int) {
	def, min = t.DefaultIntervalS, t.MinIntervalS
	if def == 0 {
		def = DefaultIntervalS
	}
	if min == 0 {
		min = DefaultMinIntervalS
	}
	return def, min
}

// Action returns the action with the given name.
func (m *Manifest) Action(name string) (*Action, bool) {
	for i := range m.Actions {
		if m.Actions[i].Name == name {
			return &m.Actions[i], true
		}
	}
	return nil, false
}

// HasAuthType reports whether the manifest accepts the given auth type.
func (m *Manifest) HasAuthType(t string) bool {
	for _, x := range m.Auth.Types {
		if x == t {
			return true
		}
	}
	return false
}

// RequiredExports lists the exports a module must provide for what this manifest declares.
func (m *Manifest) RequiredExports() []string {
	out := []string{ExportDescribe}
	if len(m.Actions) > 0 {
		out = append(out, ExportInvoke)
	}
	var poll, hook bool
	for _, t := range m.Triggers {
		poll = poll || t.Kind == TriggerPoll
		hook = hook || t.Kind == TriggerWebhook
	}
	if poll {
		out = append(out, ExportPoll)
	}
	if hook {
		out = append(out, ExportWebhook)
	}
	return out
}

// ParamNames returns the property names declared by connection_params.
func (m *Manifest) ParamNames() map[string]json.RawMessage {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(m.ConnectionParams, &s)
	return s.Properties
}

// FieldError is one manifest rule violation, naming the field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ManifestError lists every rule a manifest violates.
type ManifestError struct {
	Problems []FieldError
}

// Error implements the error interface, naming each field and its problem.
func (e *ManifestError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return "invalid manifest: " + strings.Join(parts, "; ")
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
	opRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	// semverRE is the regular expression suggested by semver.org for SemVer 2.0.
	semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
)

// ParseManifest decodes a manifest strictly (unknown fields are errors) and validates it
// against every rule of ABI.md section 3. The error is a *ManifestError for rule violations.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := DecodeStrict(data, &m); err != nil {
		return nil, &ManifestError{Problems: []FieldError{{Field: "manifest", Message: err.Error()}}}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// IsSemVer reports whether v is a SemVer 2.0 version.
func IsSemVer(v string) bool { return semverRE.MatchString(v) }

// Validate checks every rule of ABI.md section 3 and returns a *ManifestError listing all the
// violations, or nil.
func (m *Manifest) Validate() error {
	var v validator
	if m.ABI != Version {
		v.add("abi", "must be %d, got %d", Version, m.ABI)
	}
	if !nameRE.MatchString(m.Name) {
		v.add("name", "%q must match %s", m.Name, nameRE)
	}
	if !IsSemVer(m.Version) {
		v.add("version", "%q is not a SemVer 2.0 version (like 1.2.0)", m.Version)
	}
	m.validateAuth(&v)
	params := map[string]json.RawMessage{}
	if len(m.ConnectionParams) > 0 {
		v.objectSchema("connection_params", m.ConnectionParams, false)
		params = m.ParamNames()
	}
	m.validateHosts(&v, params)

	seen := map[string]string{}
	for i, a := range m.Actions {
		f := fmt.Sprintf("actions[%d]", i)
		v.opName(f+".name", a.Name, seen, "action")
		if len(a.InputSchema) == 0 {
			v.add(f+".input_schema", "is required")
		} else {
			v.objectSchema(f+".input_schema", a.InputSchema, false)
		}
		if len(a.OutputSchema) > 0 {
			v.objectSchema(f+".output_schema", a.OutputSchema, false)
		}
		if a.TimeoutMS < 0 {
			v.add(f+".timeout_ms", "must not be negative")
		}
	}
	for i, t := range m.Triggers {
		f := fmt.Sprintf("triggers[%d]", i)
		v.opName(f+".name", t.Name, seen, "trigger")
		if t.Kind != TriggerPoll && t.Kind != TriggerWebhook {
			v.add(f+".kind", "must be %q or %q, got %q", TriggerPoll, TriggerWebhook, t.Kind)
		}
		if len(t.ParamsSchema) == 0 {
			v.add(f+".params_schema", "is required")
		} else {
			v.objectSchema(f+".params_schema", t.ParamsSchema, true)
		}
		if len(t.EventSchema) > 0 {
			v.schema(f+".event_schema", t.EventSchema)
		}
		if t.DefaultIntervalS < 0 || t.MinIntervalS < 0 {
			v.add(f, "intervals must not be negative")
		} else if def, min := t.Interval(); def < min {
			v.add(f+".default_interval_s", "%d is below min_interval_s %d", def, min)
		}
	}
	if c := m.Capabilities; c != nil {
		dup := map[string]bool{}
		for i, r := range c.Reveal {
			if r == "" || dup[r] {
				v.add(fmt.Sprintf("capabilities.reveal[%d]", i), "must be a distinct, non-empty field name")
			}
			dup[r] = true
		}
	}
	if l := m.Limits; l != nil {
		if l.MemoryMB < 0 {
			v.add("limits.memory_mb", "must be positive")
		}
		if l.TimeoutMS < 0 {
			v.add("limits.timeout_ms", "must be positive")
		}
	}
	return v.err()
}

func (m *Manifest) validateAuth(v *validator) {
	if len(m.Auth.Types) == 0 {
		v.add("auth.types", "is required and must list at least one of none, api_key, basic, oauth2")
	}
	listed := map[string]bool{}
	for i, t := range m.Auth.Types {
		switch t {
		case AuthNone, AuthAPIKey, AuthBasic, AuthOAuth2:
		default:
			v.add(fmt.Sprintf("auth.types[%d]", i), "%q is not one of none, api_key, basic, oauth2", t)
		}
		if listed[t] {
			v.add(fmt.Sprintf("auth.types[%d]", i), "%q is listed twice", t)
		}
		listed[t] = true
	}
	if listed[AuthAPIKey] && m.Auth.APIKey == nil {
		v.add("auth.api_key", "is required when auth.types lists api_key")
	}
	if listed[AuthOAuth2] && m.Auth.OAuth2 == nil {
		v.add("auth.oauth2", "is required when auth.types lists oauth2")
	}
	if k := m.Auth.APIKey; k != nil {
		if !listed[AuthAPIKey] {
			v.add("auth.api_key", "is given but auth.types does not list api_key")
		}
		if k.In != "header" && k.In != "query" {
			v.add("auth.api_key.in", "must be \"header\" or \"query\", got %q", k.In)
		}
		if strings.TrimSpace(k.Name) == "" {
			v.add("auth.api_key.name", "is required")
		}
	}
	if o := m.Auth.OAuth2; o != nil {
		if !listed[AuthOAuth2] {
			v.add("auth.oauth2", "is given but auth.types does not list oauth2")
		}
		for field, u := range map[string]string{"authorization_url": o.AuthorizationURL, "token_url": o.TokenURL} {
			if u == "" {
				continue
			}
			if _, err := OriginOfURL(u); err != nil || !strings.Contains(u, "://") {
				v.add("auth.oauth2."+field, "%q is not an absolute http(s) URL", u)
			}
		}
	}
}

func (m *Manifest) validateHosts(v *validator, params map[string]json.RawMessage) {
	for i, h := range m.Hosts {
		f := fmt.Sprintf("hosts[%d]", i)
		if name, ok := hostParam(h); ok {
			prop, declared := params[name]
			if !declared {
				v.add(f, "%q names connection param %q, which connection_params does not declare", h, name)
				continue
			}
			var p struct {
				Default any `json:"default"`
			}
			_ = json.Unmarshal(prop, &p)
			if p.Default != nil {
				if _, err := ExpandHosts([]string{h}, map[string]any{name: p.Default}); err != nil {
					v.add(f, "default of connection param %q must be an absolute http(s) URL", name)
				}
			}
			continue
		}
		if strings.TrimSpace(h) == "*" {
			v.add(f, "a bare \"*\" is not allowed; name the origins the connector needs")
			continue
		}
		if _, err := NormalizeOrigin(h, true); err != nil {
			v.add(f, "%v", err)
		}
	}
}

type validator struct{ problems []FieldError }

func (v *validator) add(field, format string, args ...any) {
	v.problems = append(v.problems, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ManifestError{Problems: v.problems}
}

func (v *validator) opName(field, name string, seen map[string]string, kind string) {
	if !opRE.MatchString(name) {
		v.add(field, "%q must match %s", name, opRE)
		return
	}
	if other, dup := seen[name]; dup {
		v.add(field, "%q is already the name of an %s; names are unique within a manifest", name, other)
		return
	}
	seen[name] = kind
}

func (v *validator) schema(field string, raw json.RawMessage) bool {
	if _, err := CompileSchema(raw); err != nil {
		v.add(field, "%v", err)
		return false
	}
	return true
}

// objectSchema checks raw is a valid schema with "type": "object". With allowEmpty, the empty
// schema {} (accept anything) is also taken: ABI.md's own example uses it for params_schema.
func (v *validator) objectSchema(field string, raw json.RawMessage, allowEmpty bool) {
	if !v.schema(field, raw) {
		return
	}
	var s map[string]json.RawMessage
	if json.Unmarshal(raw, &s) != nil {
		v.add(field, "must be an object schema with \"type\": \"object\"")
		return
	}
	if allowEmpty && len(s) == 0 {
		return
	}
	var typ string
	if json.Unmarshal(s["type"], &typ) != nil || typ != "object" {
		v.add(field, "must have \"type\": \"object\"")
	}
}
