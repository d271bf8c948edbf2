package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// A hosted MCP server is a plugin of manifest kind "mcp" that follows the Extism servlet
// convention of hyper-mcp and mcp.run: its describe export answers an MCP ListToolsResult and
// its call export takes an MCP CallToolRequest and answers a CallToolResult. Plugboard runs it
// like any connector version (pooled per connection, under the call deadline, with the egress
// allowlist and the connection's credentials injected by plugboard_http), and relays its
// results as they are.

// servletRequest is the input of the call export: the CallToolRequest of the convention plus
// Plugboard's common request fields (connection params, correlation id, deadline).
type servletRequest struct {
	Method string        `json:"method"`
	Params servletParams `json:"params"`
	abi.Common
}

type servletParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
}

// servletTools runs the describe export of a hosted server's version (without capabilities,
// like plugboard_describe) and returns its tools. Tools whose input schema is not an object
// schema are left out, since MCP requires one.
func (h *Handler) servletTools(ctx context.Context, rec storage.MCPServer, v *registry.Version) ([]toolDef, error) {
	out, err := v.ServletTools(ctx)
	if err != nil {
		return nil, err
	}
	var list struct {
		Tools []json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("%s wrote no ListToolsResult: %w", abi.ExportMCPDescribe, err)
	}
	defs := make([]toolDef, 0, len(list.Tools))
	for _, raw := range list.Tools {
		var t mcp.Tool
		if err := json.Unmarshal(raw, &t); err != nil || t.Name == "" {
			h.log.Warn("hosted MCP server lists a malformed tool", "server", rec.Name, "tool", string(raw))
			continue
		}
		if m, ok := t.InputSchema.(map[string]any); !ok || m["type"] != "object" {
			h.log.Warn("hosted MCP server lists a tool without an object input schema", "server", rec.Name, "tool", t.Name)
			continue
		}
		defs = append(defs, toolDef{tool: &t, target: rec.Connector + "\x00" + rec.Connection + "\x00" + t.Name,
			handler: h.servletHandler(rec, t.Name)})
	}
	return defs, nil
}

// servletHandler relays a tools/call to a hosted server's call export.
func (h *Handler) servletHandler(rec storage.MCPServer, tool string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		start := time.Now()
		cid := requestCorrelationID(req)
		res, err := h.callServlet(ctx, rec, tool, req.Params.Arguments, cid)
		outcome := "ok"
		defer func() { h.observe(rec.Name, toolName(req), outcome, time.Since(start)) }()
		if err != nil {
			var ce *CallError
			if errors.As(err, &ce) {
				ce.CorrelationID = cid
				outcome = ce.Code
				return errorResult(ce), nil
			}
			outcome = "protocol_error"
			return nil, err
		}
		if res.IsError {
			outcome = "tool_error"
		}
		if res.Meta == nil {
			res.Meta = mcp.Meta{}
		}
		res.Meta[MetaCorrelationID] = cid
		return res, nil
	}
}

// callServlet runs a tool of a hosted MCP server through the one guest-call path
// ([registry.Registry.Prepare]): the server's connection is bound and checked as for an action.
func (h *Handler) callServlet(ctx context.Context, rec storage.MCPServer, tool string, args json.RawMessage, cid string) (*mcp.CallToolResult, error) {
	call, err := h.opts.Registry.Prepare(ctx, registry.CallSpec{Connector: rec.Connector, Connection: rec.Connection, CorrelationID: cid})
	if err != nil {
		return nil, h.toolError(err, cid)
	}
	defer call.Release()
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage(`{}`)
	}
	out, _, err := call.Servlet(ctx, func(c abi.Common) any {
		return servletRequest{Method: "tools/call", Params: servletParams{Name: tool, Arguments: args}, Common: c}
	})
	if err != nil {
		return nil, h.toolError(err, cid)
	}
	var res mcp.CallToolResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, &CallError{Status: http.StatusBadGateway, Code: "plugin_failed", Source: "plugboard",
			Message: fmt.Sprintf("%s wrote no CallToolResult: %v", abi.ExportMCPCall, err)}
	}
	return &res, nil
}

// toolError maps a failed hosted-server call with [Options.ToolError], or without one, maps
// the host's and registry's sentinel errors to tool errors as the HTTP API maps them.
func (h *Handler) toolError(err error, cid string) error {
	if h.opts.ToolError != nil {
		return h.opts.ToolError(err, cid)
	}
	ce := &CallError{Source: "plugboard", Message: err.Error()}
	switch {
	case errors.Is(err, host.ErrTimeout):
		ce.Status, ce.Code = http.StatusGatewayTimeout, "timeout"
	case errors.Is(err, host.ErrPluginFailed):
		ce.Status, ce.Code = http.StatusBadGateway, "plugin_failed"
	case errors.Is(err, host.ErrBusy):
		ce.Status, ce.Code, ce.Retryable = http.StatusServiceUnavailable, "busy", true
	case errors.Is(err, registry.ErrConnectorNotFound):
		ce.Status, ce.Code = http.StatusNotFound, "connector_not_found"
	default:
		return err
	}
	return ce
}
