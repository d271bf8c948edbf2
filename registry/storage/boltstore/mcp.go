package boltstore

import (
	"context"
	"encoding/json"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// bucketMCPServers holds one JSON record per MCP server, keyed by name. It is created by the
// first write, so data files from before MCP servers existed open unchanged.
var bucketMCPServers = []byte("mcp_servers")

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
	return s.notifyAfter(ChangeMCPServer, m.Name, s.createRecord(ctx, bucketMCPServers, "MCP server", m.Name, m))
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
	if err := s.notifyAfter(ChangeMCPServer, name, err); err != nil {
		return MCPServer{}, err
	}
	return m, nil
}

// DeleteMCPServer removes an MCP server; [ErrNotFound] when there is none of that name.
func (s *Store) DeleteMCPServer(ctx context.Context, name string) error {
	return s.notifyAfter(ChangeMCPServer, name, s.deleteRecord(ctx, bucketMCPServers, "MCP server", name))
}
