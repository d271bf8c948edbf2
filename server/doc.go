// Package server is Plugboard's HTTP front end: the endpoints of API.md for connectors, actions
// and connections, bearer-token auth, correlation IDs, RFC 9457 problem details, request size
// caps, and the operational endpoints /healthz, /readyz and /metrics.
//
// Every error reaches clients through one mapping ([Server.fail]), so a sentinel error of
// registry or host always gets the same status and stable code.
//
// Diagnostics: every action call leaves an invocation record (GET /v1/invocations/{id}) and an
// X-Plugboard-Usage receipt (invocations.go); requests, guest calls and outbound requests are
// OpenTelemetry spans, exported when the OTEL_* variables ask for it ([TracerProviderFromEnv],
// telemetry.go); logs written with a request's context carry its correlation id and trace ids.
package server
