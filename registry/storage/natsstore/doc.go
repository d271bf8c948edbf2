// Package natsstore keeps Plugboard's state in NATS JetStream, so several nodes share one
// namespace (API.md "Cluster"). It implements every interface of [storage] with bbolt's
// semantics and errors (boltstore is the reference; its tests run here too, port_*_test.go).
//
// # Layout
//
// Every name starts with the prefix ([Options.Prefix], "plugboard" by default):
//
//	<p>_versions     KV  v.<name>.<version>, active.<name>, canary.<name>, ref.<digest>, g.<name>
//	<p>_state        KV  conn.<id>, t.<timer>, tscope.<conn>.<connector>, kv.<conn>.<connector>.<key>,
//	                     kvs.<conn>.<connector>, oauth.<key>, meta.<key>, keycheck.<kid>
//	<p>_trig         KV  src.<id>, srckey.<hash>, hook.<token>, sub.<id>, ev.<src>.<seq>,
//	                     eid.<src>.<hash>, q.<sub>.<seq>, sec.src.<id>, sec.sub.<id> (triggers.go)
//	<p>_apikeys      KV  <key id>
//	<p>_mcp          KV  <server name>
//	<p>_cluster      KV  lease.<name>, node.<name> (MaxAge 24 h)
//	<p>_blobs        object store, one object per plugin blob, named by digest
//	<p>_audit        stream, one message per audit entry (its sequence is the entry's Seq)
//	<p>_invocations  stream, <p>.inv.<correlation id>, the record's time in a header
//
// Names taken from callers are one key token each: [A-Za-z0-9_-] as is, any other byte as
// '=' and two hex digits, "" as "=". Records are the JSON documents bbolt stores, and secrets
// are sealed with the same additional data, so a record copied from a bbolt file opens here
// with the same master key file.
//
// # Consistency
//
// Every write is one transaction over one KV bucket (txn.go): it reads what it depends on,
// recording each key's revision, then publishes its puts and deletes as one JetStream atomic
// batch (nats-server 2.12 or later) in which every key it read carries
// Nats-Expected-Last-Subject-Sequence. The stream applies all of the batch or nothing, and
// refuses it when one of those keys changed since it was read; the transaction then runs again
// on fresh reads. So a write is atomic across keys (a node killed mid-commit leaves nothing of
// it: an uncommitted batch is abandoned) and read-modify-writes never lose one another.
// Groups of keys are guarded by one key each writer of the group rewrites: a connector's
// g.<name>, a source's src.<id>, a subscription's sub.<id>, a timer or kv scope's record.
// This replaces the lock-and-redo-record design of the brief: there is no lock to expire and
// no redo record to replay, because JetStream itself makes the multi-key write atomic.
//
// Reads use direct gets, which never see a partly applied batch. Multi-key reads of the
// trigger state read the guard first, then list the range; a batch that changed the range
// after the guard was read also rewrote the guard, so a transaction built on that read fails
// and runs again.
//
// The limit: an atomic batch holds at most 1000 messages (nats-server max_batch_size), so one
// CommitEvents writes at most about 1000 / (2 + subscriptions) events. Deleting a source's log
// or a subscription's queue, and importing a source, go in several commits after (or before)
// the one commit that makes them unreachable (or reachable).
//
// # Memory
//
// The records the request path reads on every call (versions, active pointers, canaries, API
// keys, MCP servers, connections, and timers for DueTimers) are kept in memory, filled at Open
// and kept current by KV watchers and by this node's own commits (applied before the method
// returns), each entry with its revision so a late update never overwrites a newer one. A key
// the copy does not hold is read from JetStream (canaries excepted: a missing canary is
// absent). A value another node changed a moment ago is seen once the watcher delivers it,
// normally within a millisecond: reads that must see it at once (a re-read after taking a
// lease, an API read right after a write elsewhere) pass [storage.WithFresh] and go to
// JetStream. [Store.Watch] reports a change after the copy holds it, so a watcher that reads
// the record again sees the change.
//
// # Clocks
//
// Leases, heartbeats, OAuth state and kv expiry compare against each node's clock
// ([Options.Now]): keep the nodes' clocks in sync to well under the lease TTLs.
package natsstore
