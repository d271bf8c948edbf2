package server

import (
	"context"
	"slices"
)

// principal is the authenticated caller of a request: an API key (issue 7) or the admin token.
//
// Issue 6 (triggers) and issue 7 (keys and roles) meet here: subscription handlers record
// principal.KeyID as a subscription's owner and narrow by scopes; the key machinery fills it in.
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
var adminPrincipal = &principal{KeyID: "key_admin", Name: "admin", Role: "admin"}

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
func (p *principal) isAdmin() bool { return p.Role == "admin" }

// allowsConnector reports whether p's scopes include connector name.
func (p *principal) allowsConnector(name string) bool {
	return p.Connectors == nil || slices.Contains(p.Connectors, name)
}

// allowsConnection reports whether p's scopes include connection id ("" for calls without one).
func (p *principal) allowsConnection(id string) bool {
	return p.Connections == nil || id == "" || slices.Contains(p.Connections, id)
}
