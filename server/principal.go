package server

import (
	"context"
	"net/http"
	"slices"
)

// principal is the authenticated caller of a request: an API key or the admin token (the
// built-in key "key_admin").
//
// Issue 6 (triggers) and issue 7 (keys and roles) meet here. What a handler of a new route uses:
//
//   - the route's permission, given to handle (server.go) from the table in auth.go
//     (permSubscriptionsRead, permSubscriptionsManage, permEventsConsume, permInvocationsRead):
//     the role check and its audit happen before the handler runs;
//   - [Server.authorizeTarget](ctx, connector, connection) before acting on a connector and a
//     connection named in a request body or a stored record: nil, or the 403 forbidden problem
//     to return as is (it is audited as a denial because the answer is a 403);
//   - principalFrom(ctx).KeyID, stored as the owner of what the caller creates (subscriptions);
//   - p.owns(owner) before changing or consuming an owned record (admin: always), and
//     p.mayRead(owner) before showing one (admin and reader: always); answer 404 otherwise, so
//     ids of other keys' records are not confirmed;
//   - p.allowsTarget(connector, connection) (or allowsConnector / allowsConnection) to filter
//     lists, and in GET /invocations/{correlation_id} to answer 404 outside the scopes.
type principal struct {
	// KeyID identifies the key ("key_..."); the first admin key for the admin token.
	KeyID string
	// Name is the key's human name.
	Name string
	// Role is one of admin, author, connections, invoker, reader.
	Role string
	// Connectors and Connections narrow the key; nil means no narrowing.
	Connectors, Connections []string
}

// adminPrincipal is the caller holding the admin token.
var adminPrincipal = &principal{KeyID: adminKeyID, Name: "admin", Role: roleAdmin}

type principalKey struct{}

// withPrincipal returns ctx carrying p.
func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalFrom returns the request's caller; the admin for contexts without one (internal
// work such as the trigger scheduler).
func principalFrom(ctx context.Context) *principal {
	if p, ok := ctx.Value(principalKey{}).(*principal); ok && p != nil {
		return p
	}
	return adminPrincipal
}

// isAdmin reports whether p has the admin role.
func (p *principal) isAdmin() bool { return p.Role == roleAdmin }

// allowsConnector reports whether p's scopes include connector name.
func (p *principal) allowsConnector(name string) bool {
	return p.Connectors == nil || slices.Contains(p.Connectors, name)
}

// allowsConnection reports whether p's scopes include connection id ("" for calls without one).
func (p *principal) allowsConnection(id string) bool {
	return p.Connections == nil || id == "" || slices.Contains(p.Connections, id)
}

// allowsTarget reports whether p's scopes include connector and connection ("" for none); for
// filtering lists and for answers that must be 404 rather than 403 (invocation logs).
func (p *principal) allowsTarget(connector, connection string) bool {
	return (connector == "" || p.allowsConnector(connector)) && p.allowsConnection(connection)
}

// can reports whether p's role grants perm.
func (p *principal) can(perm permission) bool { return rolePermissions[p.Role][perm] }

// owns reports whether p may change or consume a record created by key ownerKeyID: admin
// always, any other key only its own records.
func (p *principal) owns(ownerKeyID string) bool {
	return p.isAdmin() || (ownerKeyID != "" && p.KeyID == ownerKeyID)
}

// mayRead reports whether p may see a record created by key ownerKeyID: admin and reader see
// every record (in their scopes), other roles only their own.
func (p *principal) mayRead(ownerKeyID string) bool {
	return p.Role == roleReader || p.owns(ownerKeyID)
}

// authorizeTarget returns nil when the caller's scopes include connector and connection (""
// for none), and otherwise the 403 forbidden problem naming what is out of scope. Handlers call
// it for targets named in a request body or a stored record; targets in the path are checked
// before the handler runs.
func (s *Server) authorizeTarget(ctx context.Context, connector, connection string) error {
	p := principalFrom(ctx)
	setAuditTarget(ctx, target(connector, connection))
	switch {
	case connector != "" && !p.allowsConnector(connector):
		return problemf(http.StatusForbidden, codeForbidden, "key %s is not scoped to connector %s", p.KeyID, connector)
	case !p.allowsConnection(connection):
		return problemf(http.StatusForbidden, codeForbidden, "key %s is not scoped to connection %s", p.KeyID, connection)
	}
	return nil
}

// target joins the audit target parts of a connector and a connection; empty ones are left out.
func target(connector, connection string) string {
	t := ""
	if connector != "" {
		t = "connector:" + connector
	}
	if connection != "" {
		if t != "" {
			t += " "
		}
		t += "connection:" + connection
	}
	return t
}
