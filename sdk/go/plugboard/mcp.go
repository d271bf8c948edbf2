package plugboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// MCPServer is an MCP server as the API shows it (API.md "MCP servers"). Token is set only in
// the answers that make one (create, rotate-token).
type MCPServer struct {
	Name          string    `json:"name"`
	URL           string    `json:"url"`
	Token         string    `json:"token,omitempty"`
	Connector     string    `json:"connector"`
	Connection    string    `json:"connection,omitempty"`
	Tools         []string  `json:"tools"`
	AllTools      bool      `json:"all_tools"`
	Enabled       bool      `json:"enabled"`
	ActiveVersion string    `json:"active_version,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the raw document beside the decoded fields.
func (m *MCPServer) UnmarshalJSON(data []byte) error {
	type plain MCPServer
	return keepRaw(data, (*plain)(m), &m.Raw)
}

// MCPServerRequest is the body of POST /v1/mcp-servers; nil Tools means every tool.
type MCPServerRequest struct {
	Name       string   `json:"name"`
	Connector  string   `json:"connector"`
	Connection string   `json:"connection,omitempty"`
	Tools      []string `json:"tools,omitempty"`
	Enabled    *bool    `json:"enabled,omitempty"`
}

// CreateMCPServer creates an MCP server with POST /v1/mcp-servers; the answer holds its token.
func (c *Client) CreateMCPServer(ctx context.Context, req MCPServerRequest) (MCPServer, error) {
	var out MCPServer
	_, err := c.call(ctx, http.MethodPost, "/v1/mcp-servers", nil, req, &out)
	return out, err
}

// ListMCPServers lists the MCP servers with GET /v1/mcp-servers.
func (c *Client) ListMCPServers(ctx context.Context) ([]MCPServer, error) {
	return list[MCPServer](ctx, c, "/v1/mcp-servers", "mcp_servers")
}

// GetMCPServer reads one MCP server with GET /v1/mcp-servers/{name} (never its token).
func (c *Client) GetMCPServer(ctx context.Context, name string) (MCPServer, error) {
	var out MCPServer
	p, err := pathf("/v1/mcp-servers/%s", name)
	if err == nil {
		_, err = c.call(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}

// MCPServerPatch is the body of PATCH /v1/mcp-servers/{name}. A nil field is left unchanged.
type MCPServerPatch struct {
	// Enabled turns the server on or off; a disabled server answers 404.
	Enabled *bool
	// Tools sets the tool allowlist; AllTools drops it (every action of the connector,
	// including those a later version adds). Setting both is an error.
	Tools    []string
	AllTools bool
}

// MarshalJSON sends the fields that are set: "tools": null for AllTools.
func (p MCPServerPatch) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if p.Enabled != nil {
		m["enabled"] = *p.Enabled
	}
	switch {
	case p.AllTools && p.Tools != nil:
		return nil, errors.New("MCPServerPatch: set Tools or AllTools, not both")
	case p.AllTools:
		m["tools"] = nil
	case p.Tools != nil:
		m["tools"] = p.Tools
	}
	return json.Marshal(m)
}

// UpdateMCPServer enables or disables an MCP server or changes its tools with PATCH
// /v1/mcp-servers/{name}, and returns it; connected clients are told when the tools change.
func (c *Client) UpdateMCPServer(ctx context.Context, name string, patch MCPServerPatch) (MCPServer, error) {
	var out MCPServer
	p, err := pathf("/v1/mcp-servers/%s", name)
	if err == nil {
		_, err = c.call(ctx, http.MethodPatch, p, nil, patch, &out)
	}
	return out, err
}

// SetMCPServerEnabled turns an MCP server on or off with PATCH /v1/mcp-servers/{name}, as
// [Client.UpdateMCPServer] with only Enabled.
func (c *Client) SetMCPServerEnabled(ctx context.Context, name string, enabled bool) (MCPServer, error) {
	return c.UpdateMCPServer(ctx, name, MCPServerPatch{Enabled: &enabled})
}

// RotateMCPToken gives an MCP server a new token with POST /v1/mcp-servers/{name}/rotate-token.
func (c *Client) RotateMCPToken(ctx context.Context, name string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	p, err := pathf("/v1/mcp-servers/%s/rotate-token", name)
	if err == nil {
		_, err = c.call(ctx, http.MethodPost, p, nil, nil, &out)
	}
	return out.Token, err
}

// DeleteMCPServer deletes an MCP server with DELETE /v1/mcp-servers/{name}.
func (c *Client) DeleteMCPServer(ctx context.Context, name string) error {
	p, err := pathf("/v1/mcp-servers/%s", name)
	if err == nil {
		_, err = c.call(ctx, http.MethodDelete, p, nil, nil, nil)
	}
	return err
}
