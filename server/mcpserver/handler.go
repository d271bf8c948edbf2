package mcpserver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// Invoker runs one action exactly as POST /v1/connectors/{name}/actions/{action} does.
type Invoker interface {
	// InvokeAction runs c. A failure the caller should see as a tool error is a *[CallError];
	// any other error becomes a JSON-RPC error.
	InvokeAction(ctx context.Context, c Call) (*Result, error)
}

// Call is one tools/call turned into an action call.
type Call struct {
	// Server is the MCP server's name, for metrics and logs.
	Server    string
	Connector string
	Action    string
	// Connection is the server's connection; "" for a connector with auth "none".
	Connection    string
	Input         json.RawMessage
	CorrelationID string
}

// Result is a call's output.
type Result struct {
	Output        json.RawMessage
	Version       string
	CorrelationID string
}

// CallError is a failed call as the HTTP API would report it (a problem document's fields). The
// MCP face reports it as an isError tool result.
type CallError struct {
	Status    int             `json:"status"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Source    string          `json:"source"`
	Errors    any             `json:"errors,omitempty"`
	Details   json.RawMessage `json:"details,omitempty"`
	Retryable bool            `json:"retryable,omitempty"`
	// CorrelationID is the call's correlation id.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// Error implements error.
func (e *CallError) Error() string { return e.Code + ": " + e.Message }

// Options configure a [Handler]. Registry and Invoker are required; every other zero value
// means the documented default.
type Options struct {
	// Registry holds the MCP server records and the connectors' active versions.
	Registry *registry.Registry
	// Invoker runs the actions behind managed servers' tools.
	Invoker Invoker
	// ToolError maps the error of a hosted server's call (a [registry.Registry.Prepare]
	// refusal or a host failure) to the error tools/call answers, given the call's
	// correlation id; nil means the package's own mapping of the host's and registry's errors.
	ToolError func(err error, correlationID string) error
	// Authorize reports whether a bearer token that is not the server's own opens rec (an
	// admin key, or a key whose role and scopes allow the server's connector and connection);
	// rec is nil for the /mcp namespace endpoint. nil means only servers' own tokens open.
	Authorize func(r *http.Request, token string, rec *storage.MCPServer) bool
	// PublicURL is the server's external base URL; "" means none is known. When set, its host
	// is an allowed Host and its origin an allowed Origin.
	PublicURL string
	// AllowedOrigins are further browser origins ("https://app.example.com") allowed to call.
	AllowedOrigins []string
	// CorrelationID returns the correlation id the HTTP middleware gave a request; nil means
	// the X-Correlation-ID request header as it came.
	CorrelationID func(context.Context) string
	// WriteError writes an HTTP error before the MCP transport is reached (401, 403, 404); nil
	// means plain text.
	WriteError func(w http.ResponseWriter, r *http.Request, status int, code, detail string)
	// Observe is told of every tools/call: server ("" for the namespace), tool, outcome ("ok"
	// or the error code) and duration; nil means nothing is recorded.
	Observe func(server, tool, outcome string, d time.Duration)
	// WatchInterval is how often connected servers are checked for a changed active version;
	// 0 means 250 ms. Requests check too, so this only bounds how late an idle session learns
	// of a hot swap.
	WatchInterval time.Duration
	// SessionKey signs the Streamable HTTP session ids (Mcp-Session-Id). Every node of a
	// cluster must have the same key, so a session opened on one node goes on on any other:
	// derive it from a secret they share with [SessionKeyFrom]. nil means a random key drawn
	// by [New]: sessions then work only on this process and end with it.
	SessionKey []byte
	// SessionLifetime is how long a session id is accepted after its initialize; a later
	// request with it is a 404, and the client starts a new session. No node keeps sessions,
	// so a session cannot end earlier for being idle. 0 means [DefaultSessionLifetime].
	SessionLifetime time.Duration
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
	// MaxRequestBytes caps a POST body; a larger one is a 413 JSON-RPC error. 0 means
	// [DefaultMaxRequestBytes].
	MaxRequestBytes int64
}

// Handler serves /mcp and /mcp/{name}. Create it with [New]; it is safe for concurrent use.
type Handler struct {
	opts     Options
	sessions *sessions
	public   *url.URL
	origins  map[string]bool
	log      *slog.Logger

	mu      sync.Mutex
	servers map[string]*endpoint
	ns      *endpoint
	closed  bool

	stop chan struct{}
	done chan struct{}
}

// New returns a Handler and starts its hot-swap watcher; [Handler.Close] stops it.
func New(opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.WatchInterval <= 0 {
		opts.WatchInterval = 250 * time.Millisecond
	}
	if opts.SessionLifetime <= 0 {
		opts.SessionLifetime = DefaultSessionLifetime
	}
	key := opts.SessionKey
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read does not fail
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	h := &Handler{opts: opts, log: opts.Logger, servers: map[string]*endpoint{}, origins: map[string]bool{},
		sessions: &sessions{key: key, lifetime: opts.SessionLifetime, now: time.Now},
		stop:     make(chan struct{}), done: make(chan struct{})}
	if u, err := url.Parse(opts.PublicURL); err == nil && u.Host != "" {
		h.public = u
		h.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	for _, o := range opts.AllowedOrigins {
		h.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	go h.watch()
	return h
}

// Close stops the watcher and closes every session.
func (h *Handler) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	eps := make([]*endpoint, 0, len(h.servers)+1)
	for _, e := range h.servers {
		eps = append(eps, e)
	}
	if h.ns != nil {
		eps = append(eps, h.ns)
	}
	h.servers, h.ns = map[string]*endpoint{}, nil
	h.mu.Unlock()
	close(h.stop)
	<-h.done
	for _, e := range eps {
		e.closeSessions()
	}
}

// Forget closes the sessions of a server that was deleted or disabled; its next request (once
// enabled again) starts afresh. The namespace endpoint is brought up to date too.
func (h *Handler) Forget(name string) {
	h.mu.Lock()
	e := h.servers[name]
	delete(h.servers, name)
	h.mu.Unlock()
	if e != nil {
		e.closeSessions()
	}
	h.Refresh(context.Background(), "")
}

// Refresh brings a server's tools up to date now (after its allowlist changed), sending
// notifications/tools/list_changed to its sessions when the list changed; the namespace
// endpoint is brought up to date too. Name "" refreshes only the namespace endpoint.
func (h *Handler) Refresh(ctx context.Context, name string) {
	if name != "" {
		h.refreshServer(ctx, name)
	}
	h.mu.Lock()
	ns := h.ns
	h.mu.Unlock()
	if ns != nil {
		h.syncNamespace(ctx, ns)
	}
}

func (h *Handler) refreshServer(ctx context.Context, name string) {
	h.mu.Lock()
	e := h.servers[name]
	h.mu.Unlock()
	if e == nil {
		return
	}
	rec, err := h.opts.Registry.MCPServer(ctx, name)
	switch {
	case errors.Is(err, registry.ErrMCPServerNotFound):
		e.closeStreams(nil) // deleted, maybe on another node
		return
	case err != nil:
		return
	case !rec.Enabled:
		e.closeStreams(nil)
		return
	}
	e.sync(ctx, []storage.MCPServer{rec})
	// A stream whose token was rotated out (maybe on another node) ends.
	e.closeStreams(func(s *stream) bool {
		return registry.MCPTokenMatches(rec, s.token) || (h.opts.Authorize != nil && h.opts.Authorize(s.r, s.token, &rec))
	})
}

// ServeHTTP serves /mcp (the namespace endpoint) and /mcp/{name}.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/mcp")
	name, slash := strings.CutPrefix(rest, "/")
	if !ok || (rest != "" && (!slash || name == "" || strings.Contains(name, "/"))) {
		h.fail(w, r, http.StatusNotFound, "not_found", "no MCP endpoint at "+r.URL.Path+": use /mcp/{name}")
		return
	}
	if detail := h.checkHostOrigin(r); detail != "" {
		h.fail(w, r, http.StatusForbidden, "forbidden", detail)
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	admin := token != "" && h.opts.Authorize != nil && h.opts.Authorize(r, token, nil)
	ctx := r.Context()
	var e *endpoint
	if name == "" {
		if !admin {
			h.unauthenticated(w, r, "the /mcp namespace endpoint needs the admin token or an admin key")
			return
		}
		e = h.namespace()
		if e == nil {
			h.fail(w, r, http.StatusServiceUnavailable, "closed", "the server is shutting down")
			return
		}
		h.syncNamespace(ctx, e)
	} else {
		rec, err := h.opts.Registry.MCPServer(ctx, name)
		switch {
		case errors.Is(err, registry.ErrMCPServerNotFound) && admin:
			h.fail(w, r, http.StatusNotFound, "mcp_server_not_found", "no MCP server named "+name)
			return
		case errors.Is(err, registry.ErrMCPServerNotFound):
			h.unauthenticated(w, r, "missing or wrong bearer token for MCP server "+name)
			return
		case err != nil:
			h.log.Error("reading an MCP server", "server", name, "err", err)
			h.fail(w, r, http.StatusInternalServerError, "internal", "reading the MCP server failed")
			return
		case !admin && !registry.MCPTokenMatches(rec, token) && (token == "" || h.opts.Authorize == nil || !h.opts.Authorize(r, token, &rec)):
			h.unauthenticated(w, r, "missing or wrong bearer token for MCP server "+name+": send Authorization: Bearer <the server's token>")
			return
		case !rec.Enabled:
			h.fail(w, r, http.StatusNotFound, "mcp_server_disabled", "MCP server "+name+" is disabled")
			return
		}
		if e = h.server(name); e == nil {
			h.fail(w, r, http.StatusServiceUnavailable, "closed", "the server is shutting down")
			return
		}
		e.sync(ctx, []storage.MCPServer{rec})
	}
	// The SDK hands tool handlers the request headers, not its context: carry the correlation
	// id there.
	if h.opts.CorrelationID != nil {
		if id := h.opts.CorrelationID(ctx); id != "" {
			r.Header.Set("X-Correlation-ID", id)
		}
	}
	e.serve(w, r, token)
}

func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="plugboard-mcp"`)
	h.fail(w, r, http.StatusUnauthorized, "unauthenticated", detail)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	if h.opts.WriteError != nil {
		h.opts.WriteError(w, r, status, code, detail)
		return
	}
	http.Error(w, code+": "+detail, status)
}

// checkHostOrigin returns why a request is refused, or "" (MCP transports, "Security
// Warning": validate Origin; DNS rebinding protection).
func (h *Handler) checkHostOrigin(r *http.Request) string {
	if h.public != nil && !strings.EqualFold(r.Host, h.public.Host) && !isLoopbackHost(r.Host) {
		return "Host " + r.Host + " is not this server's (" + h.public.Host + ")"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "Origin " + origin + " is not allowed"
	}
	if strings.EqualFold(u.Host, r.Host) || h.origins[strings.ToLower(u.Scheme+"://"+u.Host)] {
		return ""
	}
	return "Origin " + origin + " is not allowed"
}

// isLoopbackHost reports whether a Host header names a loopback address or localhost.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// server returns the endpoint of a managed server, creating it on first use; nil once closed.
func (h *Handler) server(name string) *endpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	e := h.servers[name]
	if e == nil {
		e = h.newEndpoint(name)
		h.servers[name] = e
	}
	return e
}

// namespace returns the namespace endpoint, creating it on first use; nil once closed.
func (h *Handler) namespace() *endpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	if h.ns == nil {
		h.ns = h.newEndpoint("")
	}
	return h.ns
}

// syncNamespace installs every enabled server's tools on the namespace endpoint.
func (h *Handler) syncNamespace(ctx context.Context, e *endpoint) {
	all, err := h.opts.Registry.MCPServers(ctx)
	if err != nil {
		h.log.Warn("listing MCP servers", "err", err)
		return
	}
	enabled := all[:0]
	for _, m := range all {
		if m.Enabled {
			enabled = append(enabled, m)
		}
	}
	e.sync(ctx, enabled)
}

// watch brings connected endpoints up to date with their connectors' active versions, so a
// session that makes no request still gets notifications/tools/list_changed after a hot swap.
func (h *Handler) watch() {
	defer close(h.done)
	t := time.NewTicker(h.opts.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		names := make([]string, 0, len(h.servers))
		for n, e := range h.servers {
			if e.hasSessions() {
				names = append(names, n)
			}
		}
		ns := h.ns
		h.mu.Unlock()
		ctx := context.Background()
		for _, n := range names {
			h.refreshServer(ctx, n)
		}
		if ns != nil && ns.hasSessions() {
			h.syncNamespace(ctx, ns)
			ns.closeStreams(func(s *stream) bool { return h.opts.Authorize != nil && h.opts.Authorize(s.r, s.token, nil) })
		}
	}
}
