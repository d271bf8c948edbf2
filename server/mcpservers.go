package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/server/mcpserver"
)

// Problem codes of MCP server operations.
const (
	codeMCPServerNotFound = "mcp_server_not_found"
	codeMCPServerExists   = "mcp_server_exists"
)

// registerMCP adds the MCP routes (API.md "MCP servers"): CRUD under /v1/mcp-servers, and the
// MCP endpoints /mcp/{name} and /mcp, which authenticate with their own tokens.
func (s *Server) registerMCP(r *mux.Router, handle func(method, path string, perm permission, h handlerFunc)) {
	s.mcp = mcpserver.New(mcpserver.Options{
		Registry:      s.reg,
		Invoker:       mcpInvoker{s},
		ToolError:     mcpInvoker{s}.toolError,
		Authorize:     s.mcpAuthorize,
		PublicURL:     s.opts.PublicURL,
		SessionKey:    mcpserver.SessionKeyFrom(s.adminToken), // every node has the admin token: sessions move between nodes
		CorrelationID: correlationID,
		WriteError: func(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
			if status == http.StatusUnauthorized || status == http.StatusForbidden {
				name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/mcp"), "/")
				tgt := ""
				if name != "" {
					tgt = "mcp_server:" + name
				}
				s.audit(r.Context(), auditEvent{actor: keyIDOfSecret(bearerToken(r)), action: r.Method + " " + r.URL.Path, target: tgt, status: status})
			}
			writeProblem(w, r, newProblem(status, code, detail))
		},
		Observe: func(server, tool, outcome string, d time.Duration) {
			s.metrics.add("plugboard_mcp_tool_calls_total", labels("server", server, "tool", tool, "outcome", outcome), 1)
			s.metrics.observe("plugboard_mcp_tool_call_duration_seconds", labels("server", server), d)
		},
		Logger:          s.log,
		MaxRequestBytes: s.opts.MaxBodyBytes,
	})
	s.metrics.mu.Lock()
	s.metrics.help["plugboard_mcp_tool_calls_total"] = "MCP tools/call requests by MCP server (\"\" for the /mcp namespace), tool and outcome (ok or the error code)."
	s.metrics.help["plugboard_mcp_tool_call_duration_seconds"] = "MCP tools/call latency inside the MCP handler, by MCP server."
	s.metrics.mu.Unlock()

	handle(http.MethodPost, "/mcp-servers", permMCPServersManage, s.createMCPServer)
	handle(http.MethodGet, "/mcp-servers", permMCPServersRead, s.listMCPServers)
	handle(http.MethodGet, "/mcp-servers/{name}", permMCPServersRead, s.getMCPServer)
	handle(http.MethodPatch, "/mcp-servers/{name}", permMCPServersManage, s.patchMCPServer)
	handle(http.MethodPost, "/mcp-servers/{name}/rotate-token", permMCPServersManage, s.rotateMCPToken)
	handle(http.MethodDelete, "/mcp-servers/{name}", permMCPServersManage, s.deleteMCPServer)
	r.Handle("/mcp", s.limitKeys(s.mcp))
	r.Handle("/mcp/{name}", s.limitKeys(s.mcp))
}

// closeMCP closes the MCP sessions and stops the hot-swap watcher.
func (s *Server) closeMCP() {
	if s.mcp != nil {
		s.mcp.Close()
	}
}

// mcpInvoker runs MCP tools/call through the HTTP action path.
type mcpInvoker struct{ s *Server }

var _ mcpserver.Invoker = mcpInvoker{}

// toolError maps a failed tool call to the tool error MCP clients see, with the problem
// mapping of the HTTP API; an internal error is logged and named only by its correlation id.
func (a mcpInvoker) toolError(err error, cid string) error {
	p := toProblem(err)
	if p.Code == codeInternal {
		a.s.log.Error("MCP tool call failed", "err", err, "correlation_id", cid)
		return fmt.Errorf("internal error; the server log has the details under correlation id %s", cid)
	}
	ce := &mcpserver.CallError{Status: p.Status, Code: p.Code, Message: p.Detail, Source: p.Source,
		Details: p.Details, Retryable: p.Retryable, CorrelationID: cid}
	if len(p.Errors) > 0 {
		ce.Errors = p.Errors
	}
	return ce
}

// InvokeAction implements [mcpserver.Invoker] with [Server.runAction]; every problem except an
// internal error becomes a tool error.
func (a mcpInvoker) InvokeAction(ctx context.Context, c mcpserver.Call) (*mcpserver.Result, error) {
	cid := c.CorrelationID
	if cid == "" {
		cid = newCorrelationID()
	}
	res, err := a.s.runAction(ctx, actionCall{Connector: c.Connector, Action: c.Action, Connection: c.Connection, Input: c.Input, CorrelationID: cid})
	if err != nil {
		return nil, a.toolError(err, cid)
	}
	return &mcpserver.Result{Output: res.Output, Version: res.Version, CorrelationID: res.CorrelationID}, nil
}

// mcpServerRequest is the body of POST /v1/mcp-servers.
type mcpServerRequest struct {
	Name       string   `json:"name"`
	Connector  string   `json:"connector"`
	Connection string   `json:"connection,omitempty"`
	Tools      []string `json:"tools,omitempty"`
	// Enabled defaults to true.
	Enabled *bool `json:"enabled,omitempty"`
}

// mcpServerPatch is the body of PATCH /v1/mcp-servers/{name}; "tools": null means every tool.
type mcpServerPatch struct {
	Enabled *bool           `json:"enabled,omitempty"`
	Tools   json.RawMessage `json:"tools,omitempty"`
}

// mcpServerDoc is an MCP server as the API shows it. Token is set only when it was just made.
type mcpServerDoc struct {
	Name       string `json:"name"`
	URL        string `json:"url"`
	Token      string `json:"token,omitempty"`
	Connector  string `json:"connector"`
	Connection string `json:"connection,omitempty"`
	// Tools are the tools served now: the allowlist, or every tool of the active version.
	Tools []string `json:"tools"`
	// AllTools is true when no allowlist is set (every tool, including those a later version
	// adds).
	AllTools      bool      `json:"all_tools"`
	Enabled       bool      `json:"enabled"`
	ActiveVersion string    `json:"active_version,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func (s *Server) mcpDoc(m storage.MCPServer, token string) mcpServerDoc {
	d := mcpServerDoc{Name: m.Name, URL: "/mcp/" + m.Name, Token: token, Connector: m.Connector, Connection: m.Connection,
		Tools: m.Tools, AllTools: m.Tools == nil, Enabled: m.Enabled, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	if v, err := s.reg.Resolve(context.Background(), m.Connector, ""); err == nil {
		d.ActiveVersion = v.Info.Version
		if d.AllTools {
			for _, a := range v.Manifest().Actions {
				d.Tools = append(d.Tools, a.Name)
			}
		}
	}
	if d.Tools == nil {
		d.Tools = []string{}
	}
	return d
}

// mcpProblem maps the registry's MCP server errors; others go to toProblem.
func mcpProblem(err error) error {
	switch {
	case errors.Is(err, registry.ErrMCPServerNotFound):
		return newProblem(http.StatusNotFound, codeMCPServerNotFound, err.Error())
	case errors.Is(err, registry.ErrMCPServerExists):
		return newProblem(http.StatusConflict, codeMCPServerExists, err.Error()+"; choose another name or DELETE it first")
	case errors.Is(err, registry.ErrConnectionNotAllowed):
		return newProblem(http.StatusForbidden, codeConnectionNotAllowed, err.Error())
	case errors.Is(err, registry.ErrConnectionRequired):
		return newProblem(http.StatusBadRequest, codeConnectionRequired, err.Error()+": add \"connection\": \"<id>\"")
	}
	return err
}

// POST /v1/mcp-servers
func (s *Server) createMCPServer(w http.ResponseWriter, r *http.Request) error {
	var req mcpServerRequest
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	if err := s.authorizeTarget(r.Context(), req.Connector, req.Connection); err != nil {
		return err
	}
	setAuditTarget(r.Context(), "mcp_server:"+req.Name+" "+target(req.Connector, req.Connection))
	enabled := req.Enabled == nil || *req.Enabled
	m, tok, err := s.reg.CreateMCPServer(r.Context(), registry.MCPServerSpec{Name: req.Name, Connector: req.Connector,
		Connection: req.Connection, Tools: req.Tools, Enabled: enabled})
	if err != nil {
		return mcpProblem(err)
	}
	s.mcp.Refresh(r.Context(), "")
	w.Header().Set("Location", "/v1/mcp-servers/"+m.Name)
	writeJSON(w, http.StatusCreated, s.mcpDoc(m, tok))
	return nil
}

// GET /v1/mcp-servers
func (s *Server) listMCPServers(w http.ResponseWriter, r *http.Request) error {
	all, err := s.reg.MCPServers(r.Context())
	if err != nil {
		return err
	}
	p := principalFrom(r.Context())
	docs := make([]mcpServerDoc, 0, len(all))
	for _, m := range all {
		if p.allowsConnector(m.Connector) && p.allowsConnection(m.Connection) {
			docs = append(docs, s.mcpDoc(m, ""))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"mcp_servers": docs})
	return nil
}

// GET /v1/mcp-servers/{name}
func (s *Server) getMCPServer(w http.ResponseWriter, r *http.Request) error {
	m, err := s.reg.MCPServer(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return mcpProblem(err)
	}
	writeJSON(w, http.StatusOK, s.mcpDoc(m, ""))
	return nil
}

// PATCH /v1/mcp-servers/{name}
func (s *Server) patchMCPServer(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	var req mcpServerPatch
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	p := registry.MCPServerPatch{Enabled: req.Enabled}
	if len(req.Tools) > 0 {
		var tools []string
		if string(req.Tools) != "null" {
			if err := decodeStrictProblem(req.Tools, &tools); err != nil {
				return err
			}
			if tools == nil {
				tools = []string{}
			}
		}
		p.Tools = &tools
	}
	m, err := s.reg.PatchMCPServer(r.Context(), name, p)
	if err != nil {
		return mcpProblem(err)
	}
	if !m.Enabled {
		s.mcp.Forget(name) // a disabled server answers 404 and keeps no session
	} else {
		s.mcp.Refresh(r.Context(), name)
	}
	writeJSON(w, http.StatusOK, s.mcpDoc(m, ""))
	return nil
}

// POST /v1/mcp-servers/{name}/rotate-token
func (s *Server) rotateMCPToken(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	tok, err := s.reg.RotateMCPToken(r.Context(), name)
	if err != nil {
		return mcpProblem(err)
	}
	s.mcp.Forget(name) // sessions opened with the old token end with it
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
	return nil
}

// DELETE /v1/mcp-servers/{name}
func (s *Server) deleteMCPServer(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	if err := s.reg.DeleteMCPServer(r.Context(), name); err != nil {
		return mcpProblem(err)
	}
	s.mcp.Forget(name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
