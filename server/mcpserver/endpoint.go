package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// NamespaceSeparator joins a server's name and a tool's name on the /mcp namespace endpoint.
const NamespaceSeparator = "__"

// Meta keys Plugboard sets on tool results.
const (
	MetaCorrelationID = "dev.plugboard/correlation_id"
	MetaVersion       = "dev.plugboard/version"
	MetaError         = "dev.plugboard/error"
)

// endpoint is one MCP server of the SDK with its Streamable HTTP handler: a managed or hosted
// server, or the namespace endpoint (name "").
type endpoint struct {
	h    *Handler
	name string
	srv  *mcp.Server
	// http serves every POST: initialize (which gets a signed session id, session.go), the
	// requests of a session, which any node serves from the id alone, and the stateless
	// revision (2026-07-28 and later: server/discover and per-request _meta, no session). The
	// SDK's stateless handler keeps nothing between requests.
	http *mcp.StreamableHTTPHandler

	mu    sync.Mutex        // one sync at a time
	key   string            // what the installed tools were built from
	tools map[string]string // installed tool name -> its fingerprint (tool JSON and target)

	hmu      sync.RWMutex               // guards handlers; sync writes it, callTool reads it
	handlers map[string]mcp.ToolHandler // installed tool name -> what the SDK calls for it

	smu     sync.Mutex
	streams map[*stream]bool // the event streams open on this node
}

// stream is an event stream open on this node: a GET of a session (a session rebuilt from its
// id that lives as long as the request) or a subscriptions/listen POST of the stateless
// revision. notifications/tools/list_changed reach the client through it.
type stream struct {
	r      *http.Request // the request, for re-checking its bearer token
	token  string
	cancel context.CancelFunc
}

// track registers a long-lived request as a stream until the returned function is called; the
// request to serve is the returned one, which [endpoint.closeStreams] can end.
func (e *endpoint) track(r *http.Request, token string, deadline time.Time) (*http.Request, func()) {
	var ctx context.Context
	var cancel context.CancelFunc
	if deadline.IsZero() {
		ctx, cancel = context.WithCancel(r.Context())
	} else {
		ctx, cancel = context.WithDeadline(r.Context(), deadline)
	}
	r = r.WithContext(ctx)
	s := &stream{r: r, token: token, cancel: cancel}
	e.smu.Lock()
	e.streams[s] = true
	e.smu.Unlock()
	return r, func() {
		e.smu.Lock()
		delete(e.streams, s)
		e.smu.Unlock()
		cancel()
	}
}

func (h *Handler) newEndpoint(name string) *endpoint {
	implName := "plugboard"
	if name != "" {
		implName = "plugboard/" + name
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: implName, Title: "Plugboard", Version: "1"}, &mcp.ServerOptions{
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}},
		Logger:       h.log,
	})
	e := &endpoint{h: h, name: name, srv: srv, tools: map[string]string{},
		handlers: map[string]mcp.ToolHandler{}, streams: map[*stream]bool{}}
	e.http = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, Logger: h.log, MaxRequestBodyBytes: h.opts.MaxRequestBytes})
	return e
}

// serve hands a request that passed authentication to the SDK: a POST's envelope is checked
// first, and the SDK's plain-text refusals become JSON-RPC errors (see wire.go).
//
// Sessions (session.go): initialize answers a signed session id; a request that carries one
// is checked against it (a forged, altered, expired or foreign id is a 404, so the client
// starts a new session) and served without any state of this node, the id giving the
// protocol version when the request has no MCP-Protocol-Version header. A GET opens an event
// stream on this node for the session's notifications; a DELETE is refused with 405, since
// a session id stays valid on every node until it expires. A request of the stateless
// revision (MCP-Protocol-Version 2026-07-28 or later) needs no session.
func (e *endpoint) serve(w http.ResponseWriter, r *http.Request, token string) {
	header := r.Header.Get("Mcp-Protocol-Version")
	if header >= versionStateless {
		if r.Method == http.MethodPost {
			if _, _, werr := e.h.checkPOST(r, header); werr != nil {
				writeRPCError(w, werr)
				return
			}
			if isListen(r) {
				var done func()
				r, done = e.track(r, token, time.Time{})
				defer done()
			}
		}
		e.serveSDK(w, r, "")
		return
	}
	var claims *sessionClaims
	if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
		var err error
		if claims, err = e.h.sessions.check(sid, e.name, token); err != nil {
			writeRPCError(w, &wireError{status: http.StatusNotFound, code: CodeSessionNotFound,
				message: err.Error() + ": start a new session with initialize"})
			return
		}
		if header == "" {
			// A 2025-03-26 client sends no version header: the id says what it negotiated.
			r.Header.Set("Mcp-Protocol-Version", claims.Protocol)
		}
	}
	switch r.Method {
	case http.MethodPost:
		e.servePOST(w, r, token, r.Header.Get("Mcp-Protocol-Version"), claims)
	case http.MethodGet:
		e.serveStream(w, r, token, claims)
	case http.MethodDelete:
		w.Header().Set("Allow", "GET, POST")
		msg := "this server does not end sessions on DELETE: a session id is valid on every node until it expires (" +
			e.h.opts.SessionLifetime.String() + " after initialize); stop sending it, or start a new session with initialize"
		if claims == nil {
			msg = "DELETE needs the Mcp-Session-Id of a session, and this server does not end sessions on DELETE: stop sending the id"
		}
		writeRPCError(w, &wireError{status: http.StatusMethodNotAllowed, code: CodeInvalidRequest, message: msg})
	default:
		e.serveSDK(w, r, "") // the SDK answers 405
	}
}

// servePOST serves a POST of the session revisions: initialize opens a session, every other
// message needs one (the lifecycle: nothing but ping, server/discover and per-request _meta
// comes before initialize).
func (e *endpoint) servePOST(w http.ResponseWriter, r *http.Request, token, version string, claims *sessionClaims) {
	body, msg, werr := e.h.checkPOST(r, version)
	if werr != nil {
		writeRPCError(w, werr)
		return
	}
	if claims != nil {
		if !e.callTool(w, r, msg, version) {
			e.serveSDK(w, r, "")
		}
		return
	}
	init, sessionless := peekSessionless(body)
	switch {
	case init != nil:
		sid, err := e.h.sessions.issue(e.name, token, negotiate(init.ProtocolVersion), init)
		if err != nil {
			e.h.log.Error("issuing an MCP session id", "err", err)
			writeRPCError(w, &wireError{status: http.StatusInternalServerError, code: CodeInternalError,
				message: "internal error: try again; the server log has the details"})
			return
		}
		e.serveSDK(w, r, sid)
	case sessionless:
		e.serveSDK(w, r, "")
	default:
		writeRPCError(w, &wireError{status: http.StatusBadRequest, id: firstID(body), code: CodeInvalidRequest,
			message: "this request has no Mcp-Session-Id: send initialize first and then the session id it answers in every request"})
	}
}

// serveSDK hands a request to the SDK's handler; sid, when not "", is the new session's id,
// sent with a successful answer to initialize.
func (e *endpoint) serveSDK(w http.ResponseWriter, r *http.Request, sid string) {
	g := &guardWriter{ResponseWriter: w, sessionID: sid}
	e.http.ServeHTTP(g, r)
	g.finish()
}

// peekSessionless looks at a POST body without a session: the initialize request's params
// when it is one, or whether it needs no session (ping, server/discover, or a request with
// per-request _meta of the stateless revision, which the SDK answers).
func peekSessionless(body []byte) (*mcp.InitializeParams, bool) {
	var msgs []json.RawMessage
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		_ = json.Unmarshal(t, &msgs)
	} else {
		msgs = []json.RawMessage{t}
	}
	for _, raw := range msgs {
		var m struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(raw, &m) != nil {
			return nil, false
		}
		switch m.Method {
		case "initialize":
			if len(msgs) != 1 {
				return nil, false // initialize is never part of a batch
			}
			var p mcp.InitializeParams
			if json.Unmarshal(m.Params, &p) != nil {
				return nil, true // the SDK answers the bad params
			}
			return &p, false
		case "ping", "server/discover":
			continue
		}
		var meta struct {
			Meta map[string]json.RawMessage `json:"_meta"`
		}
		if json.Unmarshal(m.Params, &meta) != nil || meta.Meta[mcp.MetaKeyProtocolVersion] == nil {
			return nil, false
		}
	}
	return nil, true
}

// firstID is the id of a single JSON-RPC request, or nil.
func firstID(body []byte) json.RawMessage {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &m) != nil || !validID(m.ID) {
		return nil
	}
	return m.ID
}

// serveStream serves a GET: the session's event stream on this node, for as long as the client
// holds it or the session lasts. It carries notifications/tools/list_changed after a hot swap
// or an allowlist change. Events carry no id and cannot be resumed (no node keeps them): a
// client whose stream broke opens a new one, on any node, and re-lists tools if it may have
// missed a change.
func (e *endpoint) serveStream(w http.ResponseWriter, r *http.Request, token string, claims *sessionClaims) {
	if claims == nil {
		writeRPCError(w, &wireError{status: http.StatusBadRequest, code: CodeInvalidRequest,
			message: "GET opens a session's event stream: send the Mcp-Session-Id that initialize answered"})
		return
	}
	if !acceptsStream(r.Header.Values("Accept")) {
		writeRPCError(w, &wireError{status: http.StatusNotAcceptable, code: CodeInvalidRequest,
			message: "send Accept: text/event-stream to open the session's event stream"})
		return
	}
	if r.Header.Get("Last-Event-ID") != "" {
		// Nothing was sent with an id, so there is nothing to resume: open a fresh stream.
		r.Header.Del("Last-Event-ID")
	}
	r, done := e.track(r, token, e.h.sessions.expires(claims))
	defer done()
	t := &mcp.StreamableServerTransport{SessionID: r.Header.Get("Mcp-Session-Id")}
	ss, err := e.srv.Connect(r.Context(), t, &mcp.ServerSessionOptions{State: claims.state()})
	if err != nil {
		e.h.log.Error("opening an MCP event stream", "server", e.name, "err", err)
		writeRPCError(w, &wireError{status: http.StatusInternalServerError, code: CodeInternalError,
			message: "internal error: try again; the server log has the details"})
		return
	}
	defer ss.Close()
	g := &guardWriter{ResponseWriter: w}
	t.ServeHTTP(g, r)
	g.finish()
}

// acceptsStream reports whether an Accept header allows an event stream.
func acceptsStream(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			base, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "text/event-stream", "text/*", "*/*":
				return true
			}
		}
	}
	return false
}

// hasSessions reports whether a session is connected on this node: an event stream, or a
// request being served.
func (e *endpoint) hasSessions() bool {
	for range e.srv.Sessions() {
		return true
	}
	return false
}

// isListen reports whether a POST (its body checked and put back) is a subscriptions/listen
// request, which holds its response open as an event stream.
func isListen(r *http.Request) bool {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		Method string `json:"method"`
	}
	return json.Unmarshal(body, &m) == nil && m.Method == "subscriptions/listen"
}

func (e *endpoint) closeSessions() {
	for s := range e.srv.Sessions() {
		_ = s.Close()
	}
}

// closeStreams ends the event streams whose bearer token no longer opens the endpoint (a
// rotated token, a revoked key), or all of them when keep is nil (the server was deleted or
// disabled on some node). Requests are checked on their own; this ends the streams that make
// none.
func (e *endpoint) closeStreams(keep func(s *stream) bool) {
	e.smu.Lock()
	var end []*stream
	for s := range e.streams {
		end = append(end, s)
	}
	e.smu.Unlock()
	for _, s := range end {
		if keep == nil || !keep(s) {
			s.cancel()
		}
	}
}

// toolDef is one tool to install with what it calls.
type toolDef struct {
	tool    *mcp.Tool
	target  string // connector, connection and the tool's own name: a change needs a new handler
	handler mcp.ToolHandler
}

// sync installs the tools of recs (one record for a server, every enabled one for the
// namespace) when what they are built from changed. Adding and removing tools makes the SDK
// send notifications/tools/list_changed to the sessions (once per burst of changes).
func (e *endpoint) sync(ctx context.Context, recs []storage.MCPServer) {
	type source struct {
		rec storage.MCPServer
		v   *registry.Version
	}
	srcs := make([]source, 0, len(recs))
	var key strings.Builder
	for _, rec := range recs {
		v, err := e.h.opts.Registry.Resolve(ctx, rec.Connector, "")
		if err != nil {
			v = nil // the connector has no active version: no tools
		}
		srcs = append(srcs, source{rec, v})
		key.WriteString(rec.Name + "\x00" + rec.Connector + "\x00" + rec.Connection + "\x00" + strings.Join(rec.Tools, ",") + "\x00")
		if rec.Tools == nil {
			key.WriteString("*")
		}
		if v != nil {
			key.WriteString(v.Info.Version + "\x00" + v.Info.Digest)
		}
		key.WriteString("\x01")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if key.String() == e.key {
		return
	}
	want := map[string]toolDef{}
	complete := true
	for _, s := range srcs {
		if s.v == nil {
			continue
		}
		var defs []toolDef
		if s.v.Manifest().Kind == abi.KindMCP {
			var err error
			if defs, err = e.h.servletTools(ctx, s.rec, s.v); err != nil {
				e.h.log.Warn("listing a hosted MCP server's tools", "server", s.rec.Name, "connector", s.rec.Connector, "version", s.v.Info.Version, "err", err)
				complete = false // try again on the next request
				continue
			}
		} else {
			defs = e.actionTools(s.rec, s.v)
		}
		for _, d := range defs {
			if s.rec.Tools != nil && !containsString(s.rec.Tools, d.tool.Name) {
				continue
			}
			if e.name == "" {
				d.tool.Name = s.rec.Name + NamespaceSeparator + d.tool.Name
			}
			want[d.tool.Name] = d
		}
	}
	var gone []string
	for name := range e.tools {
		if _, ok := want[name]; !ok {
			gone = append(gone, name)
			delete(e.tools, name)
		}
	}
	if len(gone) > 0 {
		sort.Strings(gone)
		e.srv.RemoveTools(gone...)
		e.hmu.Lock()
		for _, name := range gone {
			delete(e.handlers, name)
		}
		e.hmu.Unlock()
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := want[n]
		j, err := json.Marshal(d.tool)
		if err != nil {
			continue
		}
		fp := string(j) + "\x00" + d.target
		if e.tools[n] == fp {
			continue
		}
		e.srv.AddTool(d.tool, d.handler)
		e.tools[n] = fp
		e.hmu.Lock()
		e.handlers[n] = d.handler
		e.hmu.Unlock()
	}
	if complete {
		e.key = key.String()
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// actionTools are the tools of a connector version: one per action, named as the action.
func (e *endpoint) actionTools(rec storage.MCPServer, v *registry.Version) []toolDef {
	man := v.Manifest()
	out := make([]toolDef, 0, len(man.Actions))
	for _, a := range man.Actions {
		out = append(out, toolDef{
			tool:    ToolFromAction(a),
			target:  rec.Connector + "\x00" + rec.Connection + "\x00" + a.Name,
			handler: e.actionHandler(rec, a.Name),
		})
	}
	return out
}

// ToolFromAction is the MCP tool of a manifest action (API.md "MCP servers"): name,
// description, inputSchema = input_schema, outputSchema = output_schema, and the annotations.
// destructiveHint is always set, since MCP's default for it (true) is not the manifest's.
func ToolFromAction(a abi.Action) *mcp.Tool {
	t := &mcp.Tool{Name: a.Name, Title: a.Title, Description: a.Description, InputSchema: json.RawMessage(a.InputSchema)}
	if len(a.OutputSchema) > 0 {
		t.OutputSchema = json.RawMessage(a.OutputSchema)
	}
	var ann abi.Annotations
	if a.Annotations != nil {
		ann = *a.Annotations
	}
	destructive := ann.Destructive
	t.Annotations = &mcp.ToolAnnotations{ReadOnlyHint: ann.ReadOnly, IdempotentHint: ann.Idempotent, DestructiveHint: &destructive}
	return t
}

// actionHandler runs one action of rec's connector for tools/call.
func (e *endpoint) actionHandler(rec storage.MCPServer, action string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := time.Now()
		var args json.RawMessage
		if req.Params != nil {
			args = req.Params.Arguments
		}
		res, err := e.h.opts.Invoker.InvokeAction(ctx, Call{Server: rec.Name, Connector: rec.Connector, Action: action,
			Connection: rec.Connection, Input: args, CorrelationID: requestCorrelationID(req)})
		outcome := "ok"
		defer func() { e.h.observe(e.name, toolName(req), outcome, time.Since(start)) }()
		if err != nil {
			var ce *CallError
			if errors.As(err, &ce) {
				outcome = ce.Code
				return errorResult(ce), nil
			}
			outcome = "protocol_error"
			return nil, err
		}
		return &mcp.CallToolResult{
			Content:           []mcp.Content{&mcp.TextContent{Text: string(compact(res.Output))}},
			StructuredContent: res.Output,
			Meta:              mcp.Meta{MetaCorrelationID: res.CorrelationID, MetaVersion: res.Version},
		}, nil
	}
}

func toolName(req *mcp.CallToolRequest) string {
	if req.Params == nil {
		return ""
	}
	return req.Params.Name
}

func (h *Handler) observe(server, tool, outcome string, d time.Duration) {
	if h.opts.Observe != nil {
		h.opts.Observe(server, tool, outcome, d)
	}
}

// requestCorrelationID is the correlation id [Handler.ServeHTTP] put in the request headers.
func requestCorrelationID(req *mcp.CallToolRequest) string {
	if req.Extra != nil && req.Extra.Header != nil {
		return req.Extra.Header.Get("X-Correlation-ID")
	}
	return ""
}

// errorResult is a failed call as an isError tool result: the text is the error document as
// JSON ({"error": {"code", "message", "source", ...}}) so a model reads the code and message,
// and _meta carries the same object. There is no structuredContent: a client validates it
// against the tool's outputSchema even on errors.
func errorResult(ce *CallError) *mcp.CallToolResult {
	doc, _ := json.Marshal(map[string]any{"error": ce})
	return &mcp.CallToolResult{
		IsError: true,
		Content: []mcp.Content{&mcp.TextContent{Text: string(doc)}},
		Meta:    mcp.Meta{MetaError: ce, MetaCorrelationID: ce.CorrelationID},
	}
}

func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}
