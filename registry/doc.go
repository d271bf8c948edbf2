// Package registry is Plugboard's durable state and the live set of connector versions.
//
// It stores plugin blobs content-addressed, keeps every version, and holds the route of each
// connector: the active version and an optional canary. [Registry.SetActive] provisions the new
// versions (compile, first instance, describe again), then replaces the route atomically, then
// drains the versions it no longer names, so a failure at any step leaves the old route serving.
// A call holds a lease on the version it started on (see [Registry.Prepare]), so a swap fails
// no call and every call finishes on a version that was routed when it started.
//
// Every guest call, of whatever kind (HTTP action, MCP tool, hosted MCP server, poll, webhook,
// timer), starts with [Registry.Prepare] (call.go): it leases the version, checks what the call
// names (action, trigger) against that version's manifest, binds the connection and checks that
// it names the connector and does not wait for consent again. The [Prepared] call runs the
// export and counts its outcome for the canary statistics. No other path runs guest code, so
// these rules cannot be forgotten by one kind of call.
//
// A rollout that brings in a version asking for more than the active one (hosts, auth types,
// reveal capabilities) needs the operator's approval ([ReviewCapabilities]); a canary takes a
// share of the calls with per-side statistics and an optional automatic abort (canary.go).
// Memory is bounded ([Retention]): idle instances are closed, and versions neither routed nor
// recently pinned are unloaded; their blobs stay stored.
//
// Connections hold credentials sealed with AES-256-GCM (package store); they are opened only to
// build a [host.Binding] for a call and never leave the host.
package registry
