package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry/storage"
)

// Errors of MCP server operations, mapped to problem codes by the server.
var (
	// ErrMCPServerNotFound: no MCP server has that name.
	ErrMCPServerNotFound = errors.New("MCP server not found")
	// ErrMCPServerExists: an MCP server of that name exists.
	ErrMCPServerExists = errors.New("MCP server already exists")
)

// mcpNameRE is the MCP server name rule, the connector name rule of ABI.md section 3: the name
// is a path segment of /mcp/{name} and a prefix of namespaced tool names.
var mcpNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)

// MCPServerSpec is the request to create an MCP server (API.md "MCP servers").
type MCPServerSpec struct {
	Name       string
	Connector  string
	Connection string
	// Tools is the allowlist; nil means every tool of the active version.
	Tools   []string
	Enabled bool
}

// MCPServerPatch changes an MCP server; nil fields are left as they are.
type MCPServerPatch struct {
	Enabled *bool
	// Tools replaces the allowlist; a pointer to nil means every tool again.
	Tools *[]string
}

// CreateMCPServer checks spec against the connector's active version and its connection and
// stores the server with a new bearer token, which it returns: the store keeps only its hash,
// so this is the one time it is shown.
func (r *Registry) CreateMCPServer(ctx context.Context, spec MCPServerSpec) (storage.MCPServer, string, error) {
	if !mcpNameRE.MatchString(spec.Name) {
		return storage.MCPServer{}, "", invalidf("name %q must match %s", spec.Name, mcpNameRE)
	}
	if err := r.checkMCPServer(ctx, spec.Connector, spec.Connection, spec.Tools); err != nil {
		return storage.MCPServer{}, "", err
	}
	tok, hash, err := newMCPToken()
	if err != nil {
		return storage.MCPServer{}, "", err
	}
	m := storage.MCPServer{Name: spec.Name, Connector: spec.Connector, Connection: spec.Connection,
		Tools: normTools(spec.Tools), Enabled: spec.Enabled, TokenHash: hash}
	if err := r.st.CreateMCPServer(ctx, m); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return storage.MCPServer{}, "", fmt.Errorf("%w: %s", ErrMCPServerExists, spec.Name)
		}
		return storage.MCPServer{}, "", err
	}
	m, err = r.st.MCPServer(ctx, spec.Name)
	return m, tok, err
}

// checkMCPServer checks that connector is active, that connection (when named) exists and is
// bound to it, that a connection is named when the connector needs one, and that every tool
// of the allowlist is an action of the active version.
func (r *Registry) checkMCPServer(ctx context.Context, connector, connection string, tools []string) error {
	if connector == "" {
		return invalidf("connector is required")
	}
	rt, err := r.servedRoute(ctx, connector)
	if err != nil {
		return err
	}
	v := rt.active
	man := v.Manifest()
	if connection != "" {
		c, err := r.GetConnection(ctx, connection)
		if err != nil {
			return err
		}
		if !slices.Contains(c.Connectors, connector) {
			return &BindError{Err: ErrConnectionNotAllowed, Connector: connector, Connection: connection, Allowed: c.Connectors}
		}
	} else if !man.HasAuthType(abi.AuthNone) {
		return &BindError{Err: ErrConnectionRequired, Connector: connector, AuthTypes: man.Auth.Types}
	}
	if man.Kind == abi.KindMCP {
		return nil // a hosted MCP server lists its tools itself, at run time
	}
	for _, t := range tools {
		if _, ok := man.Action(t); !ok {
			names := make([]string, len(man.Actions))
			for i, a := range man.Actions {
				names[i] = a.Name
			}
			return invalidf("tools: %q is not an action of %s %s (actions: %s)", t, connector, v.Info.Version, strings.Join(names, ", "))
		}
	}
	return nil
}

// normTools sorts and deduplicates an allowlist, keeping nil (every tool) apart from empty.
func normTools(tools []string) []string {
	if tools == nil {
		return nil
	}
	out := slices.Clone(tools)
	slices.Sort(out)
	return slices.Compact(out)
}

// MCPServer returns one MCP server; [ErrMCPServerNotFound] when there is none.
func (r *Registry) MCPServer(ctx context.Context, name string) (storage.MCPServer, error) {
	m, err := r.st.MCPServer(ctx, name)
	return m, mapMCPErr(err, name)
}

// MCPServers lists every MCP server in name order.
func (r *Registry) MCPServers(ctx context.Context) ([]storage.MCPServer, error) {
	return r.st.MCPServers(ctx)
}

// PatchMCPServer changes whether a server is enabled and its allowlist; a new allowlist is
// checked against the connector's active version.
func (r *Registry) PatchMCPServer(ctx context.Context, name string, p MCPServerPatch) (storage.MCPServer, error) {
	if p.Tools != nil {
		cur, err := r.MCPServer(ctx, name)
		if err != nil {
			return storage.MCPServer{}, err
		}
		if err := r.checkMCPServer(ctx, cur.Connector, cur.Connection, *p.Tools); err != nil {
			return storage.MCPServer{}, err
		}
	}
	m, err := r.st.UpdateMCPServer(ctx, name, func(m *storage.MCPServer) error {
		if p.Enabled != nil {
			m.Enabled = *p.Enabled
		}
		if p.Tools != nil {
			m.Tools = normTools(*p.Tools)
		}
		return nil
	})
	return m, mapMCPErr(err, name)
}

// RotateMCPToken gives a server a new bearer token and returns it; the old one stops working
// with the write.
func (r *Registry) RotateMCPToken(ctx context.Context, name string) (string, error) {
	tok, hash, err := newMCPToken()
	if err != nil {
		return "", err
	}
	_, err = r.st.UpdateMCPServer(ctx, name, func(m *storage.MCPServer) error {
		m.TokenHash = hash
		return nil
	})
	if err != nil {
		return "", mapMCPErr(err, name)
	}
	return tok, nil
}

// DeleteMCPServer removes an MCP server.
func (r *Registry) DeleteMCPServer(ctx context.Context, name string) error {
	return mapMCPErr(r.st.DeleteMCPServer(ctx, name), name)
}

// MCPServersUsing lists the names of the MCP servers that run with a connection, so deleting
// the connection can be refused while one does (API.md: 409).
func (r *Registry) MCPServersUsing(ctx context.Context, connection string) ([]string, error) {
	all, err := r.st.MCPServers(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range all {
		if m.Connection == connection {
			out = append(out, m.Name)
		}
	}
	return out, nil
}

// MCPTokenMatches reports in constant time whether token is the server's bearer token.
func MCPTokenMatches(m storage.MCPServer, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(hashMCPToken(token)), []byte(m.TokenHash)) == 1
}

// newMCPToken returns a new bearer token ("mcp_" and 32 random bytes in hex) and its hash.
func newMCPToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = "mcp_" + hex.EncodeToString(b[:])
	return token, hashMCPToken(token), nil
}

// hashMCPToken is the stored form of a token. The tokens are 256 random bits, so one SHA-256
// suffices (no salt or stretching: nothing to brute-force).
func hashMCPToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func mapMCPErr(err error, name string) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrMCPServerNotFound, name)
	}
	return err
}
