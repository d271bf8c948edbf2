package host

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
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
	// Refresh, for an oauth2 connection, returns a fresh access token after the upstream
	// answered 401 to the current one (Secrets["access_token"]); plugboard_http then sends the
	// request once more with it, and later requests of the call use it. nil: a 401 is final.
	// Concurrent calls may call it concurrently; it must make one refresh for them all.
	Refresh func(ctx context.Context) (accessToken string, err error)
	// RateLimit is the connection's token bucket, shared by every call of the connection;
	// nil means no limit.
	RateLimit *RateLimit
}

// RateLimit is a connection's token bucket for outbound requests: PerSecond tokens a second,
// at most Burst held (0: PerSecond rounded up). Every request sent takes one; a request that
// finds the bucket empty gets a 429 from the host, with Retry-After, and is not sent.
type RateLimit = egress.RateLimit

// Resilience policy types of the egress engine, re-exported for the server's metrics and
// connection documents.
type (
	// PolicyStats is the resilience state of one connection: its token bucket, its circuit
	// breakers (one per origin) and its retry count.
	PolicyStats = egress.ConnectionStats
	// PolicyMetrics are the host's resilience counters and breaker states, without connection
	// ids.
	PolicyMetrics = egress.Metrics
	// PolicyCounter identifies one counter of PolicyMetrics.
	PolicyCounter = egress.CounterKey
	// RetryPolicy configures retries (a field of EgressConfig).
	RetryPolicy = egress.RetryPolicy
	// BreakerPolicy configures circuit breakers (a field of EgressConfig).
	BreakerPolicy = egress.BreakerPolicy
)

// Event names of PolicyCounter and breaker states of PolicyStats.
const (
	EventRetry           = egress.EventRetry
	EventRateLimited     = egress.EventRateLimited
	EventBreakerRejected = egress.EventBreakerRejected
	EventBreakerOpened   = egress.EventBreakerOpened
	BreakerClosed        = egress.BreakerClosed
	BreakerOpen          = egress.BreakerOpen
	BreakerHalfOpen      = egress.BreakerHalfOpen
)

// PolicyStats returns the resilience state of a connection: token bucket, circuit breakers,
// retries. The zero value when no call of the connection reached plugboard_http yet.
func (h *Host) PolicyStats(connection string) PolicyStats {
	return h.egress.ConnectionStats(connection)
}

// PolicyMetrics returns the host's resilience counters and breaker states.
func (h *Host) PolicyMetrics() PolicyMetrics { return h.egress.Metrics() }

// ForgetConnection drops the resilience state of a deleted connection.
func (h *Host) ForgetConnection(connection string) { h.egress.ForgetConnection(connection) }

// HostHTTPClient returns a client for requests Plugboard makes on its own behalf (OAuth2 token
// endpoints): same address checks as plugboard_http (--egress-allow opens private ranges), no
// proxy, no redirects followed, and a 30 s timeout.
func (h *Host) HostHTTPClient() *http.Client { return h.egress.HostClient(30 * time.Second) }

// Call describes one plugin call: the connection it runs with and its identity.
type Call struct {
	// Binding is the connection; nil for a call without one.
	Binding *Binding
	// CorrelationID is passed to the plugin and tags every log line.
	CorrelationID string
	// Timeout is the action's own timeout_ms, if any; the host combines it with the manifest's
	// and the server's limits.
	Timeout time.Duration
	// Idempotent says the action is annotated idempotent: plugboard_http may retry its
	// requests whatever their method, not only GET, HEAD, OPTIONS, PUT and DELETE.
	Idempotent bool
}

// Report is what a call did: its duration, outbound requests and captured log lines.
type Report struct {
	Started  time.Time
	Duration time.Duration
	// Instantiated is true when the call paid for a new instance.
	Instantiated bool
	// GuestTime is the wall time of the export call minus HostTime: the time the guest's own
	// code ran, including the WASI and Extism kernel functions it called (clock, random, log
	// lines, a guest's own sleep) but not instantiation or waiting for an instance. Wall time,
	// not CPU time: on a loaded machine it includes the time the goroutine was not scheduled.
	// Zero when the export was not reached.
	GuestTime time.Duration
	// HostTime is the wall time spent inside Plugboard's host imports (plugboard_http,
	// plugboard_kv, plugboard_timer, plugboard_credential) during the call, network waits and
	// retry backoffs included.
	HostTime time.Duration
	// MemoryBytes is the size of the instance's linear memories (the plugin's and the Extism
	// kernel's) when the call returned. Wasm memory never shrinks, so it is the instance's peak
	// since it started: an upper bound of this call's peak. Zero when no instance ran.
	MemoryBytes uint64
	// MemoryGrowth is how many bytes the call added to those memories (instantiation included
	// when the call paid for a new instance).
	MemoryGrowth uint64
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

	k         *kernel      // the Extism kernel of the instance serving the call
	hostNanos atomic.Int64 // time inside Plugboard's host imports (Report.HostTime)

	outputCap int64 // largest document the guest may write to the host, in bytes

	mu       sync.Mutex
	report   Report
	logBytes int
	overCap  *overCap // the document over outputCap that aborted the call
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
	g := &egress.Grant{ManifestOrigins: origins, Connector: m.Name}
	if b == nil {
		return g
	}
	g.ConnectionOrigins = append([]string{}, b.Origins...)
	g.Connection, g.RateLimit = b.ID, b.RateLimit
	switch b.AuthType {
	case abi.AuthAPIKey:
		if m.Auth.APIKey != nil {
			g.Credential = &egress.Credential{Type: abi.AuthAPIKey, APIKey: b.Secrets["api_key"], APIKeyIn: m.Auth.APIKey}
		}
	case abi.AuthBasic:
		g.Credential = &egress.Credential{Type: abi.AuthBasic, Username: b.Secrets["username"], Password: b.Secrets["password"]}
	case abi.AuthOAuth2:
		cred := &egress.Credential{Type: abi.AuthOAuth2, AccessToken: b.Secrets["access_token"]}
		if b.Refresh != nil {
			// The grant belongs to one call, whose imports run one at a time (a guest is
			// single-threaded): the token refreshed for one request serves the call's next ones.
			cred.Refresh = func(ctx context.Context) (string, error) {
				tok, err := b.Refresh(ctx)
				if err == nil && tok != "" {
					cred.AccessToken = tok
				}
				return tok, err
			}
		}
		g.Credential = cred
	}
	return g
}
