package store

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketMCPServers holds one JSON record per MCP server, keyed by name. It is created by the
// first write, so data files from before MCP servers existed open unchanged.
var bucketMCPServers = []byte("mcp_servers")

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

// CreateMCPServer stores a new MCP server; [ErrExists] when the name is taken.
func (s *Store) CreateMCPServer(ctx context.Context, m MCPServer) error {
	if err := checkID("MCP server name", m.Name); err != nil {
		return err
	}
	now := s.nowUTC()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	m.UpdatedAt = now
	return s.createRecord(ctx, bucketMCPServers, "MCP server", m.Name, m)
}

// MCPServer returns one MCP server; [ErrNotFound] when there is none of that name.
func (s *Store) MCPServer(ctx context.Context, name string) (MCPServer, error) {
	var m MCPServer
	err := s.view(ctx, func(tx *bolt.Tx) error { return getRecord(tx, bucketMCPServers, "MCP server", name, &m) })
	return m, err
}

// MCPServers lists every MCP server in name order.
func (s *Store) MCPServers(ctx context.Context) ([]MCPServer, error) {
	out, err := listRecords[MCPServer](s, ctx, bucketMCPServers)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// UpdateMCPServer applies fn to the stored MCP server in one transaction and returns the
// result; [ErrNotFound] when there is none of that name. fn may not change the name; an error
// from fn aborts the update and is returned as is.
func (s *Store) UpdateMCPServer(ctx context.Context, name string, fn func(*MCPServer) error) (MCPServer, error) {
	var m MCPServer
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if err := getRecord(tx, bucketMCPServers, "MCP server", name, &m); err != nil {
			return err
		}
		if err := fn(&m); err != nil {
			return err
		}
		m.Name = name
		m.UpdatedAt = s.nowUTC()
		nv, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketMCPServers).Put([]byte(name), nv)
	})
	return m, err
}

// DeleteMCPServer removes an MCP server; [ErrNotFound] when there is none of that name.
func (s *Store) DeleteMCPServer(ctx context.Context, name string) error {
	return s.deleteRecord(ctx, bucketMCPServers, "MCP server", name)
}
