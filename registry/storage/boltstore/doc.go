// Package store is Plugboard's durable state, kept in one bbolt file in the data directory:
// plugin blobs, connector versions and their active pointers, connections (with their secrets
// sealed), the plugboard_kv entries and plugboard_timer timers of plugins, invocation log
// records, and small settings.
//
// The registry is its only caller, and the store stays generic: it never interprets manifests,
// params or credentials beyond the fields its types name. The registry reaches storage through
// its own narrow interfaces, so another backend (NATS JetStream, DESIGN.md) can replace this one.
//
// # Guarantees
//
//   - Every write is one bbolt transaction, fsynced before the method returns ("Nothing
//     acknowledged is lost"). A method that finds nothing to change writes nothing.
//   - Every value returned is a copy the caller owns; nothing aliases bbolt's memory map.
//   - Every method that touches the file takes a context first and checks it before its
//     transaction begins; a transaction, once begun, runs to its end.
//   - Errors wrap the sentinels of errors.go ([ErrNotFound], [ErrExists], ...) and never carry
//     a secret.
//   - One process at a time: [Open] takes the file's lock, waiting at most
//     [Options.LockTimeout], and fails with [ErrLocked] naming the file when another Plugboard
//     holds it.
//
// # Secrets
//
// [Connection.Secret] is plaintext only in memory. Before it is written it is sealed by a
// [Sealer]: AES-256-GCM under the active master key, a random 12-byte nonce, and
// "plugboard/connection/<id>" as additional data, so a sealed secret moved into another
// connection's record does not open. The record keeps the sealed document
// {"kid","nonce","ct"}: the key id beside the ciphertext is what lets the master key rotate
// ([Store.RotateMasterKey]) without a format change.
//
// The master key file ([Options.MasterKeyFile], master.key beside the data file by default) is
// {"active":"k1","keys":{"k1":"<base64 of 32 bytes>"}}, mode 0600. Open creates it when absent
// and refuses it when group or others can access it or it is malformed. For every key it has
// seen, the data file keeps a key check (a constant sealed with that key); Open verifies them, so
// a key file that belongs to another data directory, or a lost one, is reported at start instead
// of at the first secret read, and a new key is never generated over secrets it cannot open.
//
// # Bucket layout
//
//	store          "format" -> "1" (data format version)
//	               "keycheck/<kid>" -> sealed constant, one per master key that may have sealed data
//	meta           <key> -> <value>                        Meta, SetMeta
//	blobs          "sha256:<hex>" -> plugin bytes          PutBlob, Blob
//	blob_refs      lp(digest) lp(name) version -> ""       which versions use a blob
//	versions       <name> -> bucket: <version> -> JSON     PutVersion, Versions, DeleteVersion
//	active         <name> -> <version>                     SetActive, Active, ActiveAll
//	connections    <id> -> JSON, "secret" sealed           CreateConnection, Connection, ...
//	kv             scope -> bucket:                        KVGet, KVSet, KVDelete
//	                 "t" -> scope size (uint64 BE)
//	                 "k"<key> -> expiry (UnixNano BE, 0 = none) + value
//	timers         <id> -> JSON                            SetTimer, DeleteTimer
//	timers_due     fire time (8 bytes) + id -> ""          DueTimers, in fire-time order
//	timers_scope   scope + id -> ""                        per-scope count, cascade on delete
//	api_keys       <key id> -> JSON (secret as SHA-256)    CreateAPIKey, APIKey, DeleteAPIKey
//	audit          sequence (8 bytes BE) -> JSON entry     AppendAudit, Audit, PruneAudit (a prefix)
//	trig_sources   <source id> -> JSON                     CreateSource, UpdateSource, Sources
//	trig_source_keys <source key> -> source id             FindSource (subscriptions share sources)
//	trig_hooks     <hook token> -> source id               SourceByHookToken (/hooks/{token})
//	trig_subs      <subscription id> -> JSON               AddSubscription, Subscriptions, ...
//	trig_source_subs lp(source) subscription id -> ""      a source's subscribers
//	trig_events    lp(source) seq (8 bytes BE) -> JSON     the source's event log, CommitEvents
//	trig_event_ids lp(source) event id -> seq              the deduplication ledger
//	trig_queue     lp(subscription) seq -> JSON            pending deliveries: QueueHead, LeaseEvents, Ack
//	trig_secrets   "src:" or "sub:" + id -> sealed         webhook and signing secrets, TriggerSecret
//	invocations    lp(correlation id) time seq -> JSON      PutInvocations, Invocations
//	invocations_by_time  time seq -> invocations key       PruneInvocations; sequence = count
//	               (both created at the first write; see invocations.go)
//
// A poll's cursor, its new events, their ledger entries and every subscriber's queue entries
// commit in one transaction ([Store.CommitEvents]). Events are stored once per source; queues
// hold sequence numbers, so the delivered id derived from (subscription, seq) is stable across
// retries, restarts and replays. The log is pruned beyond its bound, never under a pending entry.
//
// lp(s) is s prefixed by its length as a uvarint. A scope is lp(connection) lp(connector):
// connection first, so [Store.DeleteConnection] finds the kv scopes and timers of every
// connector with one prefix seek. Fire times are big-endian UnixNano with the sign bit flipped,
// so byte order is time order. JSON records are self-describing and carry their own keys.
package boltstore
