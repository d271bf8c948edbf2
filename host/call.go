package host

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host/internal/egress"
)

// State backs the plugboard_kv and plugboard_timer imports. Keys are scoped by (connector,
// connection id); implementations return [ErrTooLarge], [ErrTooMany] and [ErrNotFound] so the
// imports can answer the right error code.
type State interface {
	KVGet(ctx context.Context, connector, connection, key string) (value []byte, found bool, err error)
	KVSet(ctx context.Context, connector, connection, key string, value []byte, ttl time.Duration) error
	KVDelete(ctx context.Context, connector, connection, key string) error
	SetTimer(ctx context.Context, t Timer) (id string, err error)
	CancelTimer(ctx context.Context, connector, connection, id string) error
}

// Timer is a durable timer a plugin set with plugboard_timer.
type Timer struct {
	Connector, Connection, Name string
	FireAt                      time.Time
	Payload                     json.RawMessage
}

// Binding is the connection a call runs with, as the host imports see it. The guest receives
// only ID and Params; the rest stays in the host.
type Binding struct {
	// ID is the connection id.
	ID string
	// Params are the connection's non-secret parameters (defaults applied).
	Params map[string]any
	// AuthType is one of the abi.Auth* constants.
	AuthType string
	// Origins are the connection's approved hosts (normalised origins or "*." patterns).
	Origins []string
	// Secrets maps credential field names (api_key, username, password, access_token and the
	// connection's extra secrets) to their values.
	Secrets map[string]string
	// RevealApproved lists the fields an operator approved for plugboard_credential reveal.
	RevealApproved []string
}

// Call describes one plugin call: the connection it runs with and its identity.
type Call struct {
	// Binding is the connection; nil for a call without one.
	Binding *Binding
	// CorrelationID is passed to the plugin and tags every log line.
	CorrelationID string
	// Timeout is the action's own timeout_ms, if any; the host combines it with the manifest's
	// and the server's limits.
	Timeout time.Duration
}

// Report is what a call did: its duration, outbound requests and captured log lines.
type Report struct {
	Started  time.Time
	Duration time.Duration
	// Instantiated is true when the call paid for a new instance.
	Instantiated bool
	Outbound     []egress.Outbound
	Logs         []LogLine
	// LogsTruncated is true when the log cap dropped lines.
	LogsTruncated bool
}

// LogLine is one line a plugin logged (Extism log_* or WASI stdout/stderr).
type LogLine struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// callState is the capability set of the call in progress, found by the host imports in their
// context. It is created per call and never outlives it.
type callState struct {
	m        *Module
	call     *Call
	describe bool // plugboard_describe: every import answers denied
	deadline time.Time
	timeout  time.Duration
	grant    *egress.Grant
	budget   *egress.Budget

	mu       sync.Mutex
	report   Report
	logBytes int
}

type callKey struct{}

func withCall(ctx context.Context, cs *callState) context.Context {
	return context.WithValue(ctx, callKey{}, cs)
}

func callFrom(ctx context.Context) *callState {
	cs, _ := ctx.Value(callKey{}).(*callState)
	return cs
}

func (cs *callState) connectionID() string {
	if cs.call == nil || cs.call.Binding == nil {
		return ""
	}
	return cs.call.Binding.ID
}

func (cs *callState) recordOutbound(o egress.Outbound) {
	cs.mu.Lock()
	cs.report.Outbound = append(cs.report.Outbound, o)
	cs.mu.Unlock()
}

// common builds the fields every request document carries.
func (cs *callState) common() abi.Common {
	c := abi.Common{DeadlineUnixMS: cs.deadline.UnixMilli()}
	if cs.call != nil {
		c.CorrelationID = cs.call.CorrelationID
		if b := cs.call.Binding; b != nil {
			params := b.Params
			if params == nil {
				params = map[string]any{}
			}
			c.Connection = &abi.Connection{ID: b.ID, Params: params}
		}
	}
	return c
}

// buildGrant derives the plugboard_http grant of a call from the manifest and the binding.
func buildGrant(m *abi.Manifest, b *Binding) *egress.Grant {
	var params map[string]any
	if b != nil {
		params = b.Params
	}
	origins, err := abi.ExpandHosts(m.Hosts, params)
	if err != nil {
		origins = nil // a bad param value leaves the connector no origin to reach
	}
	g := &egress.Grant{ManifestOrigins: origins}
	if b == nil {
		return g
	}
	g.ConnectionOrigins = append([]string{}, b.Origins...)
	switch b.AuthType {
	case abi.AuthAPIKey:
		if m.Auth.APIKey != nil {
			g.Credential = &egress.Credential{Type: abi.AuthAPIKey, APIKey: b.Secrets["api_key"], APIKeyIn: m.Auth.APIKey}
		}
	case abi.AuthBasic:
		g.Credential = &egress.Credential{Type: abi.AuthBasic, Username: b.Secrets["username"], Password: b.Secrets["password"]}
	case abi.AuthOAuth2:
		g.Credential = &egress.Credential{Type: abi.AuthOAuth2, AccessToken: b.Secrets["access_token"]}
	}
	return g
}
