// Package mcpserver serves Plugboard's MCP endpoints (API.md "MCP servers") with the official
// MCP Go SDK and its Streamable HTTP handler.
//
// Every managed MCP server (a stored record: connector, connection, tool allowlist, enabled,
// token hash) gets one [mcp.Server] and one [mcp.StreamableHTTPHandler], created on its first
// request, so a session of one server is never reachable through another. Its tools are
// generated from the connector's active manifest, one per allowed action: name, title,
// description, inputSchema, outputSchema and the annotations readOnlyHint, idempotentHint and
// destructiveHint. A tools/call goes through the same path as POST
// /v1/connectors/{name}/actions/{action} ([Invoker]): version resolution, connection binding,
// input validation, the call under a lease, metrics and the correlation id. A result carries
// the action's output as structuredContent and a JSON text copy; a failed call (the plugin's
// error, invalid arguments, a timeout) is an isError result whose text and _meta carry the
// error code and message; only what is not a tool's failure (an unknown tool, an internal
// error) is a JSON-RPC error.
//
// A plugin of manifest kind "mcp" is a hosted MCP server (an Extism "servlet" as hyper-mcp and
// mcp.run run them): its tools come from its describe export and calls go to its call export,
// in the same sandbox and with the same connection as actions.
//
// Hot swap: each request, and a watcher every [Options.WatchInterval], compares the version
// and allowlist a server's tools were built from with the current ones; when they differ the
// tools are replaced, and the SDK sends notifications/tools/list_changed to every session.
// Calls in flight hold their lease and finish on the old version.
//
// /mcp is the namespace endpoint: every enabled server's tools, named server__tool, for the
// admin token.
//
// Requests are checked before the SDK sees them: the Host header (the SDK refuses a non-loopback
// Host on a loopback listener; with a public URL, Host must be that URL's host or a loopback
// name) and the Origin header (absent, or the request's own host, or the public URL's origin,
// or one of [Options.AllowedOrigins]), as the MCP transport specification asks against DNS
// rebinding; then the bearer token; then whether the server is enabled.
//
// Protocol revisions: every revision the SDK knows is served. initialize negotiates the
// client's version when it is one up to 2025-11-25, else 2025-11-25 (the newest the handshake
// can reach), over a session (Mcp-Session-Id). A request with MCP-Protocol-Version 2026-07-28
// or later (server/discover, then requests carrying their version in _meta) is served without
// a session, so server/discover lists the stateless revision and the requests after it work.
//
// Sessions on several nodes (API.md "Cluster": a session opened on one node keeps working when
// its next request lands on another, with no sticky routing). No node keeps a session table:
// the session id is a token signed with HMAC-SHA256 under [Options.SessionKey] (the server
// derives it from the admin token, which every node has, with [SessionKeyFrom]) that carries
// the MCP server's name, the negotiated protocol version, the client's name, version and
// capabilities, the opening time and a keyed fingerprint of the bearer token (session.go).
// Every POST is served by the SDK's stateless handler, except a session's tools/call, which
// Plugboard dispatches itself (toolcall.go: the same handler, the same result, answered as
// application/json, at about twice the SDK's rate); a node that never saw the session checks
// the id and takes the protocol version from it. The id is refused with 404 and
// JSON-RPC error -32001, whose message names the reason, when it was altered or issued by
// another cluster (another key), belongs to another endpoint, comes with another bearer
// token, or is older than [Options.SessionLifetime] (24 hours by default: an id cannot be
// renewed, and idleness cannot be tracked without shared state); an MCP client then starts a
// new session. The bearer token and whether the server is enabled are still checked against
// the store on every request, so a rotated token or a disabled server is refused on every
// node from the next request on. DELETE is answered 405 (the transport allows a server to
// refuse it): ending a session on every node would need a shared table of ended ids, read on
// every request, and the id of a session bound to its token is of no use to anyone else.
//
// Server-to-client messages: a GET opens the session's event stream on the node it reaches,
// with a session rebuilt from the id for as long as the request lasts (the stateless
// revision's subscriptions/listen is the same, as a POST). notifications/tools/list_changed
// goes to the streams open on each node, whichever node made the change, because each node's
// watcher reads the server record and the active versions from the shared store. Streams are
// not resumable: events carry no id, since no other node could replay them, so a client whose
// node died opens a new stream on another one and should list tools again, as a missed
// notification cannot be sent again. The watcher also ends the streams of a server that was
// disabled or deleted, and those whose token no longer opens it, on every node. The server
// sends no requests to the client (sampling, elicitation, roots), so nothing else needs the
// stream.
//
// Malformed input (wire.go): before the SDK reads a POST, its Content-Type (415), Accept (406),
// size ([Options.MaxRequestBytes], 413) and JSON-RPC envelope are checked, and a refusal is a
// JSON-RPC error response (application/json; id null where the request's id is unknown):
// -32700 for a body that is not JSON, -32600 for JSON that is not a JSON-RPC 2.0 message (a
// wrong jsonrpc, no method, an id that is not a string or an integer, a batch where the
// revision has none: 2025-06-18 and later), -32601 for an unknown method, -32602 for params of
// the wrong type. The SDK's own plain-text refusals are turned into JSON-RPC errors too
// (-32001 for an unknown session); no message names a Go type or package.
package mcpserver
