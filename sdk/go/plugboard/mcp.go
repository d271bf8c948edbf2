package plugboard

import (
	"context"
	"encoding/json"
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

// SetMCPServerEnabled turns an MCP server on or off with PATCH /v1/mcp-servers/{name}.
func (c *Client) SetMCPServerEnabled(ctx context.Context, name string, enabled bool) (MCPServer, error) {
	var out MCPServer
	p, err := pathf("/v1/mcp-servers/%s", name)
	if err == nil {
		_, err = c.call(ctx, http.MethodPatch, p, nil, map[string]bool{"enabled": enabled}, &out)
	}
	return out, err
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
