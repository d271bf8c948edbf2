package check

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/plugboard/plugboard/abi"
)

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
func ParseManifest(data []byte) (*abi.Manifest, error) {
	var m abi.Manifest
	if err := abi.DecodeStrict(data, &m); err != nil {
		return nil, &ManifestError{Problems: []FieldError{{Field: "manifest", Message: err.Error()}}}
	}
	if err := Manifest(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// IsSemVer reports whether v is a SemVer 2.0 version.
func IsSemVer(v string) bool { return semverRE.MatchString(v) }

// Manifest checks every rule of ABI.md section 3 and returns a *ManifestError listing all the
// violations, or nil.
func Manifest(m *abi.Manifest) error {
	var v validator
	if m.ABI != abi.Version {
		v.add("abi", "must be %d, got %d", abi.Version, m.ABI)
	}
	if !nameRE.MatchString(m.Name) {
		v.add("name", "%q must match %s", m.Name, nameRE)
	}
	if !IsSemVer(m.Version) {
		v.add("version", "%q is not a SemVer 2.0 version (like 1.2.0)", m.Version)
	}
	if m.Kind != "" && m.Kind != abi.KindMCP {
		v.add("kind", "must be absent (a connector) or %q (a hosted MCP server), got %q", abi.KindMCP, m.Kind)
	}
	params := map[string]json.RawMessage{}
	if len(m.ConnectionParams) > 0 {
		v.objectSchema("connection_params", m.ConnectionParams, false)
		params = m.ParamNames()
	}
	validateAuth(m, &v, params)
	validateHosts(m, &v, params)

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
		if t.Kind != abi.TriggerPoll && t.Kind != abi.TriggerWebhook {
			v.add(f+".kind", "must be %q or %q, got %q", abi.TriggerPoll, abi.TriggerWebhook, t.Kind)
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
		if l.OutputBytes < 0 {
			v.add("limits.output_bytes", "must be a positive number of bytes")
		}
	}
	return v.err()
}

func validateAuth(m *abi.Manifest, v *validator, params map[string]json.RawMessage) {
	if len(m.Auth.Types) == 0 {
		v.add("auth.types", "is required and must list at least one of none, api_key, basic, oauth2")
	}
	listed := map[string]bool{}
	for i, t := range m.Auth.Types {
		switch t {
		case abi.AuthNone, abi.AuthAPIKey, abi.AuthBasic, abi.AuthOAuth2:
		default:
			v.add(fmt.Sprintf("auth.types[%d]", i), "%q is not one of none, api_key, basic, oauth2", t)
		}
		if listed[t] {
			v.add(fmt.Sprintf("auth.types[%d]", i), "%q is listed twice", t)
		}
		listed[t] = true
	}
	if listed[abi.AuthAPIKey] && m.Auth.APIKey == nil {
		v.add("auth.api_key", "is required when auth.types lists api_key")
	}
	if listed[abi.AuthOAuth2] && m.Auth.OAuth2 == nil {
		v.add("auth.oauth2", "is required when auth.types lists oauth2")
	}
	if k := m.Auth.APIKey; k != nil {
		if !listed[abi.AuthAPIKey] {
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
		if !listed[abi.AuthOAuth2] {
			v.add("auth.oauth2", "is given but auth.types does not list oauth2")
		}
		for field, u := range map[string]string{"authorization_url": o.AuthorizationURL, "token_url": o.TokenURL} {
			if u == "" {
				continue
			}
			if _, err := abi.OriginOfURL(u); err != nil || !strings.Contains(u, "://") {
				v.add("auth.oauth2."+field, "%q is not an absolute http(s) URL", u)
			}
			// {param} placeholders are filled in from the connection (Microsoft's {tenant}),
			// so each must name a declared connection param.
			for _, ph := range endpointParam.FindAllStringSubmatch(u, -1) {
				if _, ok := params[ph[1]]; !ok {
					v.add("auth.oauth2."+field, "%q names connection param %q, which connection_params does not declare", u, ph[1])
				}
			}
		}
	}
}

// endpointParam is a {param} placeholder of an OAuth2 endpoint.
var endpointParam = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func validateHosts(m *abi.Manifest, v *validator, params map[string]json.RawMessage) {
	for i, h := range m.Hosts {
		f := fmt.Sprintf("hosts[%d]", i)
		if name, ok := abi.HostParam(h); ok {
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
				if _, err := abi.ExpandHosts([]string{h}, map[string]any{name: p.Default}); err != nil {
					v.add(f, "default of connection param %q must be an absolute http(s) URL", name)
				}
			}
			continue
		}
		if strings.TrimSpace(h) == "*" {
			v.add(f, "a bare \"*\" is not allowed; name the origins the connector needs")
			continue
		}
		if _, err := abi.NormalizeOrigin(h, true); err != nil {
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
