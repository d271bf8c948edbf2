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
// Triggers (triggers.go, subscriptions.go, delivery.go, hooks.go): subscriptions with the same
// (connector, trigger, connection, params) share one source. A scheduler polls poll sources at
// their interval, renews webhook sources at renew_at and fires plugin timers; /hooks/{token}
// passes inbound webhooks to the plugin's receive step; push workers deliver each subscription's
// queue in order with Standard Webhooks signatures, and queue subscriptions are leased by
// long-polling pullers. All of it resumes from the store after a restart.
//
// Every error reaches clients through one mapping ([Server.fail]), so a sentinel error of
// registry or host always gets the same status and stable code.
//
// Diagnostics: every action call leaves an invocation record (GET /v1/invocations/{id}) and an
// X-Plugboard-Usage receipt (invocations.go); requests, guest calls and outbound requests are
// OpenTelemetry spans, exported when the OTEL_* variables ask for it ([TracerProviderFromEnv],
// telemetry.go); logs written with a request's context carry its correlation id and trace ids.
package server
