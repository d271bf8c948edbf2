package storage

import "time"

// MCPServer is a stored MCP server (API.md "MCP servers"): a connector's actions served as MCP
// tools with one connection. Nothing in it is secret: the bearer token is kept only as its
// SHA-256 hash.
type MCPServer struct {
	// Name is the server's name, unique in the store; its endpoint is /mcp/{Name}.
	Name string `json:"name"`
	// Connector is the connector whose actions (or, for a hosted MCP server, whose own tools)
	// the server serves.
	Connector string `json:"connector"`
	// Connection is the connection every call runs with; "" for a connector with auth "none".
	Connection string `json:"connection,omitempty"`
	// Tools is the allowlist of tool names; nil means every tool of the active version.
	Tools []string `json:"tools,omitempty"`
	// Enabled: a disabled server answers 404.
	Enabled bool `json:"enabled"`
	// TokenHash is "sha256:" and the hex SHA-256 of the bearer token.
	TokenHash string `json:"token_hash"`
	// CreatedAt is set to now by [Store.CreateMCPServer] when zero.
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is set to now by every write.
	UpdatedAt time.Time `json:"updated_at"`
}
