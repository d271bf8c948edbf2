// Package server is Plugboard's HTTP front end: the endpoints of API.md for connectors, actions
// and connections, bearer-token auth, correlation IDs, RFC 9457 problem details, request size
// caps, and the operational endpoints /healthz, /readyz and /metrics.
//
// Access control (auth.go, principal.go): every /v1 route is registered with a permission, and
// one table says which role holds which permission; API keys (apikeys.go) carry a role and
// optional connector and connection scopes, and the admin token is the built-in key key_admin.
// Mutating and denied calls go to the audit log (audit.go). [Server.Serve] serves the public
// listener and, with Options.SeparateAdmin, a management listener, optionally over TLS.
//
// Every error reaches clients through one mapping ([Server.fail]), so a sentinel error of
// registry or host always gets the same status and stable code.
package server
