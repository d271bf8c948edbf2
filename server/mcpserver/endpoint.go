package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	http *mcp.StreamableHTTPHandler // sessions: initialize and the revisions up to 2025-11-25
	// stateless serves the stateless revision (2026-07-28 and later: server/discover and
	// per-request _meta, no session), which the SDK serves only without sessions.
	stateless *mcp.StreamableHTTPHandler

	mu    sync.Mutex        // one sync at a time
	key   string            // what the installed tools were built from
	tools map[string]string // installed tool name -> its fingerprint (tool JSON and target)
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
	e := &endpoint{h: h, name: name, srv: srv, tools: map[string]string{}}
	get := func(*http.Request) *mcp.Server { return srv }
	e.http = mcp.NewStreamableHTTPHandler(get,
		&mcp.StreamableHTTPOptions{SessionTimeout: h.opts.SessionTimeout, Logger: h.log, MaxRequestBodyBytes: h.opts.MaxRequestBytes})
	e.stateless = mcp.NewStreamableHTTPHandler(get,
		&mcp.StreamableHTTPOptions{Stateless: true, Logger: h.log, MaxRequestBodyBytes: h.opts.MaxRequestBytes})
	return e
}

// serve hands a request that passed authentication to the SDK: a POST's envelope is checked
// first, and the SDK's plain-text refusals become JSON-RPC errors (see wire.go). A request of
// the stateless revision (MCP-Protocol-Version 2026-07-28 or later, as its clients send from
// server/discover on) goes to the stateless handler, every other one to the session handler:
// a stateful handler would answer server/discover without listing the stateless revision
// and refuse the requests that follow, so a client that reads only the first answer (as
// mark3labs/mcp-go does) could not go on.
func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	version := e.protocolVersion(r)
	if r.Method == http.MethodPost {
		if werr := e.h.checkPOST(r, version); werr != nil {
			writeRPCError(w, werr)
			return
		}
	}
	g := &guardWriter{ResponseWriter: w}
	if version >= versionStateless && r.Header.Get("Mcp-Protocol-Version") != "" {
		e.stateless.ServeHTTP(g, r)
	} else {
		e.http.ServeHTTP(g, r)
	}
	g.finish()
}

// protocolVersion is a request's protocol revision as far as it is known: the
// MCP-Protocol-Version header, else the one its session negotiated, else "".
func (e *endpoint) protocolVersion(r *http.Request) string {
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" {
		return v
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		return ""
	}
	for s := range e.srv.Sessions() {
		if s.ID() == sid {
			if p := s.InitializeParams(); p != nil {
				return p.ProtocolVersion
			}
		}
	}
	return ""
}

func (e *endpoint) hasSessions() bool {
	for range e.srv.Sessions() {
		return true
	}
	return false
}

func (e *endpoint) closeSessions() {
	for s := range e.srv.Sessions() {
		_ = s.Close()
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
