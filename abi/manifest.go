package abi

import (
	"encoding/json"
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
	// Kind is "" for a connector, or [KindMCP] for a hosted MCP server: a plugin that lists and
	// calls its own tools through the servlet exports [ExportMCPDescribe] and [ExportMCPCall].
	Kind string `json:"kind,omitempty"`
}

// KindMCP is the manifest kind of a hosted MCP server (an Extism MCP "servlet" in the
// convention of hyper-mcp and mcp.run).
const KindMCP = "mcp"

// Servlet exports a plugin of kind [KindMCP] provides besides plugboard_describe.
const (
	// ExportMCPDescribe takes no input and writes an MCP ListToolsResult ({"tools": [...]}).
	ExportMCPDescribe = "describe"
	// ExportMCPCall takes {"params": {"name", "arguments"}} (an MCP CallToolRequest, plus the
	// common request fields of ABI.md section 2) and writes an MCP CallToolResult.
	ExportMCPCall = "call"
)

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

// Limits bound one call of the connector; the server caps each.
type Limits struct {
	// MemoryMB is the memory limit of an instance, in MiB.
	MemoryMB int `json:"memory_mb,omitempty"`
	// TimeoutMS is the deadline of a call, in milliseconds.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// OutputBytes caps each document the plugin writes to the host (results, events, error
	// messages); it can only lower the server's cap (10 MiB by default).
	OutputBytes int64 `json:"output_bytes,omitempty"`
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
	if m.Kind == KindMCP {
		out = append(out, ExportMCPDescribe, ExportMCPCall)
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
