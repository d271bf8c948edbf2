// Package storage is the contract between Plugboard and the backends that keep its durable
// state (DESIGN.md "Storage and scale"): the records, the errors and one small interface per
// kind of state. Two backends implement it: [boltstore] (one bbolt file, the embedded default)
// and [natsstore] (NATS JetStream, for several nodes). The conformance suite in [storagetest]
// states every promise of this package as a test and runs against both.
//
// Every method is safe for concurrent use. A write is durable when it returns nil: committed to
// disk (bbolt fsync) or acknowledged by the JetStream quorum. Every value returned is a copy the
// caller owns. Errors for the conditions below wrap the matching sentinel ([ErrNotFound] and
// the rest) so callers test them with [errors.Is], whatever backend runs.
//
// [boltstore]: https://pkg.go.dev/github.com/plugboard/plugboard/registry/storage/boltstore
// [natsstore]: https://pkg.go.dev/github.com/plugboard/plugboard/registry/storage/natsstore
// [storagetest]: https://pkg.go.dev/github.com/plugboard/plugboard/registry/storage/storagetest
package storage

import (
	"context"
	"io"
	"time"
)

// Blobs are plugin binaries, stored once by content address ([Digest]).
type Blobs interface {
	// PutBlob stores data under its digest and returns the digest; the same bytes again write
	// nothing.
	PutBlob(ctx context.Context, data []byte) (string, error)
	// Blob returns the bytes stored under digest, or [ErrNotFound].
	Blob(ctx context.Context, digest string) ([]byte, error)
}

// Versions are the uploaded versions of every connector and the active pointer of each.
type Versions interface {
	// PutVersion stores v; created is false when the same version with the same digest was
	// already stored (nothing written). The same version with another digest is
	// [ErrVersionExists].
	PutVersion(ctx context.Context, v Version) (created bool, err error)
	// Version returns one version, or [ErrNotFound].
	Version(ctx context.Context, name, version string) (Version, error)
	// Versions returns the versions of one connector in SemVer order, oldest first.
	Versions(ctx context.Context, name string) ([]Version, error)
	// Connectors returns the names of every connector with a stored version, sorted.
	Connectors(ctx context.Context) ([]string, error)
	// DeleteVersion removes a version ([ErrActive] for the active one) and its blob once no
	// version references it.
	DeleteVersion(ctx context.Context, name, version string) error
	// SetActive points the connector at a stored version.
	SetActive(ctx context.Context, name, version string) error
	// Active returns the connector's active version, or [ErrNotFound].
	Active(ctx context.Context, name string) (string, error)
	// ActiveAll returns every connector's active version.
	ActiveAll(ctx context.Context) (map[string]string, error)
	// SetCanary stores the connector's canary, or removes it when c is nil, so that every node
	// splits the connector's calls the same way. A canary is cleared by SetActive to another
	// version only when the caller says so: the two are written by one rollout, active first.
	SetCanary(ctx context.Context, name string, c *Canary) error
	// Canary returns the connector's canary, or nil (and no error) when it has none.
	Canary(ctx context.Context, name string) (*Canary, error)
}

// Connections hold credentials, sealed at rest, and the short-lived state of OAuth flows.
type Connections interface {
	CreateConnection(ctx context.Context, c Connection) error
	Connection(ctx context.Context, id string) (Connection, error)
	Connections(ctx context.Context) ([]Connection, error)
	// UpdateConnection applies fn to the stored connection and stores the result atomically:
	// two concurrent updates never lose one another (fn may run again on a conflict). Unbinding
	// a connector deletes that connector's timers on the connection.
	UpdateConnection(ctx context.Context, id string, fn func(*Connection) error) (Connection, error)
	DeleteConnection(ctx context.Context, id string) error
	// PutOAuthState stores the state of one authorization-code flow under key.
	PutOAuthState(ctx context.Context, key string, st OAuthState) error
	// TakeOAuthState returns and deletes the state under key, once: a second take is
	// [ErrNotFound], as is an expired state.
	TakeOAuthState(ctx context.Context, key string) (OAuthState, error)
	// MasterKeyID is the id of the master key new secrets are sealed with.
	MasterKeyID() string
	// RotateMasterKey re-seals every secret under a new master key (crash-safe) and returns
	// how many it re-sealed.
	RotateMasterKey(ctx context.Context) (rotated int, err error)
}

// Keys are the API keys.
type Keys interface {
	CreateAPIKey(ctx context.Context, k APIKey) error
	APIKey(ctx context.Context, id string) (APIKey, error)
	APIKeys(ctx context.Context) ([]APIKey, error)
	DeleteAPIKey(ctx context.Context, id string) error
}

// MCPServers are the configured MCP servers.
type MCPServers interface {
	CreateMCPServer(ctx context.Context, m MCPServer) error
	MCPServer(ctx context.Context, name string) (MCPServer, error)
	MCPServers(ctx context.Context) ([]MCPServer, error)
	// UpdateMCPServer is an atomic read-modify-write, like [Connections.UpdateConnection].
	UpdateMCPServer(ctx context.Context, name string, fn func(*MCPServer) error) (MCPServer, error)
	DeleteMCPServer(ctx context.Context, name string) error
}

// Sources are trigger sources (pollers and webhook registrations), their subscriptions,
// cursors and sealed signing secrets.
type Sources interface {
	TriggerSecret(ctx context.Context, kind, id string) ([]byte, error)
	FindSource(ctx context.Context, key string) (Source, bool, error)
	GetSource(ctx context.Context, id string) (Source, error)
	Sources(ctx context.Context) ([]Source, error)
	// CreateSource stores a new source and, when sub is not nil, its first subscription, in one
	// commit.
	CreateSource(ctx context.Context, src Source, secret []byte, sub *Subscription, subSecret []byte) error
	// AddSubscription stores sub on its existing source and applies update to the source in
	// the same commit.
	AddSubscription(ctx context.Context, sub Subscription, secret []byte, update func(*Source)) error
	UpdateSource(ctx context.Context, id string, fn func(*Source)) (Source, error)
	DeleteSource(ctx context.Context, id string) error
	SourceByHookToken(ctx context.Context, token string) (Source, error)
	// GetSubscription returns a subscription and the receive time of its oldest pending event.
	GetSubscription(ctx context.Context, id string) (Subscription, time.Time, error)
	// Subscriptions lists the subscriptions of one source, or of every source when source is "".
	Subscriptions(ctx context.Context, source string) ([]SubscriptionView, error)
	// DeleteSubscription removes a subscription and its queue; it returns the subscription and
	// how many subscriptions its source has left.
	DeleteSubscription(ctx context.Context, id string) (Subscription, int, error)
	UpdateSubscription(ctx context.Context, id string, fn func(*Subscription)) (Subscription, error)
}

// Events are the event log of every source and the delivery queue of every subscription.
type Events interface {
	// CommitEvents appends the events a poll or webhook produced to the source's log, skipping
	// those whose ids it already holds, enqueues them on every subscription of the source and
	// applies update (the new cursor) to the source: all of it in one atomic commit, so a crash
	// keeps either all or none.
	CommitEvents(ctx context.Context, sourceID string, events []NewEvent, origin Origin, lim TriggerLimits, update func(*Source)) (CommitResult, error)
	// QueueHead returns the subscription and up to max of its first pending entries, due or
	// not (the pusher waits for the first one's NextAt), in sequence order. For a deleted
	// subscription it returns a zero Subscription and no error, which tells a pusher to stop.
	QueueHead(ctx context.Context, subID string, max int) (Subscription, []Pending, error)
	// RecordPush records push attempts: delivered, retried later, or failed for good.
	RecordPush(ctx context.Context, subID string, outcomes ...PushOutcome) error
	// LeaseEvents leases up to max pending events that are not leased, in sequence order, for
	// leaseFor; an unacknowledged lease expires and its events are leased again.
	LeaseEvents(ctx context.Context, subID string, max int, leaseFor time.Duration) ([]Pending, time.Time, error)
	// Ack removes the entries with those sequence numbers and returns how many it removed.
	Ack(ctx context.Context, subID string, seqs []uint64) (int, error)
	// Replay enqueues again the source's events received since since, up to maxQueue.
	Replay(ctx context.Context, subID string, since time.Time, maxQueue int) (int, error)
}

// Timers are the durable timers of the plugboard_timer import.
type Timers interface {
	SetTimer(ctx context.Context, t Timer) (string, error)
	CancelTimer(ctx context.Context, connector, connection, id string) error
	// DueTimers returns up to max timers due at now, earliest first.
	DueTimers(ctx context.Context, now time.Time, max int) ([]Timer, error)
	// DeleteTimer removes a timer; it is [ErrNotFound] when it is gone already, which is how
	// one of several nodes firing the same timer learns another took it.
	DeleteTimer(ctx context.Context, id string) error
}

// KV is the small per-(connector, connection) state of the plugboard_kv import.
type KV interface {
	KVGet(ctx context.Context, connector, connection, key string) (value []byte, found bool, err error)
	KVSet(ctx context.Context, connector, connection, key string, value []byte, ttl time.Duration) error
	KVDelete(ctx context.Context, connector, connection, key string) error
}

// Audit is the audit log.
type Audit interface {
	AppendAudit(ctx context.Context, e AuditEntry) error
	// Audit returns the entries q selects, newest first, and the cursor of the next page.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, uint64, error)
	PruneAudit(ctx context.Context, maxAge time.Duration, maxEntries int) (int, error)
}

// Invocations are the invocation logs, by correlation id.
type Invocations interface {
	PutInvocations(ctx context.Context, recs []Invocation) error
	Invocations(ctx context.Context, correlationID string) ([]Invocation, error)
	PruneInvocations(ctx context.Context, before time.Time, keep int) (int, error)
}

// Meta is a handful of named values the server keeps about itself.
type Meta interface {
	Meta(ctx context.Context, key string) ([]byte, error)
	SetMeta(ctx context.Context, key string, v []byte) error
}

// Cluster is how the nodes that share one backend divide work and see each other (API.md
// "Cluster"). bbolt implements it for the one process that can open its file: leases and
// heartbeats live in memory there, and Watch reports the changes made through that store.
type Cluster interface {
	// TryLease takes the lease name for holder until now+ttl, or renews it when holder holds
	// it already. It returns false (and no error) while another holder's lease has not expired.
	// Leases are how exactly one node polls a source, pushes a subscription, fires timers or
	// refreshes an OAuth token; their expiry is how another node takes over when one dies.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease ends holder's lease on name at once (nothing when holder does not hold it).
	ReleaseLease(ctx context.Context, name, holder string) error
	// Heartbeat records n as alive until now+ttl. Nodes calls it again at least every ttl/3.
	Heartbeat(ctx context.Context, n Node, ttl time.Duration) error
	// Nodes returns the nodes whose last heartbeat has not expired, sorted by name.
	Nodes(ctx context.Context) ([]Node, error)
	// Leave removes the node's heartbeat (a clean shutdown), so it leaves Nodes at once.
	Leave(ctx context.Context, name string) error
	// Watch calls fn, in commit order and from one goroutine, for every change to the state in
	// [Change] that any node makes from now on (this one included), until ctx ends. It returns
	// once the watch is established, so a change committed after it returns is reported. A
	// node that falls behind catches up; fn must be quick and may see a change twice.
	Watch(ctx context.Context, fn func(Change)) error
}

// Change kinds reported by [Cluster.Watch].
const (
	ChangeActive     = "active"     // Key: connector name; its active pointer changed
	ChangeCanary     = "canary"     // Key: connector name; its canary changed
	ChangeVersion    = "version"    // Key: "name@version"; stored or deleted
	ChangeAPIKey     = "apikey"     // Key: key id; created or deleted
	ChangeMCPServer  = "mcp"        // Key: server name; created, updated or deleted
	ChangeConnection = "connection" // Key: connection id; created, updated or deleted
)

// Change names one changed record; the watcher reads the record again to learn its state.
type Change struct {
	Kind string
	Key  string
}

// Canary is a connector's stored canary: the version that takes Percent of the calls that
// name no version, and when to abort it.
type Canary struct {
	Version      string  `json:"version"`
	Percent      int     `json:"percent"`
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	MinCalls     int     `json:"min_calls,omitempty"`
}

// Node is one Plugboard process of a namespace, as its heartbeat describes it.
type Node struct {
	Name       string    `json:"name"`
	Address    string    `json:"address"`
	StartedAt  time.Time `json:"started_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	// Version is the Plugboard build the node runs.
	Version string `json:"version"`
	// Sources is how many trigger sources the node polls now.
	Sources int `json:"sources"`
	// Routes is what the node serves: connector name to its route as the registry writes it
	// (the active version, and the canary when there is one).
	Routes map[string]string `json:"routes,omitempty"`
}

// Store is every kind of state, as one backend provides it.
type Store interface {
	Blobs
	Versions
	Connections
	Keys
	MCPServers
	Sources
	Events
	Timers
	KV
	Audit
	Invocations
	Meta
	Cluster
	// Health reports whether the backend can serve reads and writes now: nil, or an error
	// that says what is unreachable or damaged.
	Health(ctx context.Context) error
	// Corruptions counts the operations that found stored data damaged since the backend
	// opened; the server stays unready once it is above zero.
	Corruptions() int64
	// Close releases the backend. Methods called afterwards fail with [ErrClosed].
	Close() error
}

// Backuper is implemented by backends that can write a consistent copy of everything they
// hold as one file (bbolt). It is optional: a JetStream namespace is backed up with NATS's own
// tools.
type Backuper interface {
	// Backup writes the copy to w, calling size with its length before the first byte, and
	// returns how many bytes it wrote.
	Backup(ctx context.Context, w io.Writer, size func(int64)) (int64, error)
}

type freshKey struct{}

// WithFresh marks reads made with ctx as needing the latest committed state: a backend that
// serves some reads from a copy kept current by watches (JetStream) reads the source instead.
// Use it where a read must see a write another node acknowledged a moment ago, such as the
// re-read after taking a lease; the request path does without it.
func WithFresh(ctx context.Context) context.Context { return context.WithValue(ctx, freshKey{}, true) }

// IsFresh reports whether ctx was marked by [WithFresh].
func IsFresh(ctx context.Context) bool { v, _ := ctx.Value(freshKey{}).(bool); return v }

// Exporter is implemented by backends whose whole state can be read out, for `plugboard
// store migrate` (bbolt to JetStream): what the interfaces above cannot list. The rest of a
// migration goes through them.
type Exporter interface {
	// ExportSources calls fn with every trigger source and all it holds, one source at a time
	// from one consistent read.
	ExportSources(ctx context.Context, fn func(SourceDump) error) error
	// KVEntries calls fn with every kv entry that has not expired.
	KVEntries(ctx context.Context, fn func(KVEntry) error) error
}

// Importer is implemented by backends a migration writes into.
type Importer interface {
	// ImportSource stores the source as dumped, replacing what the destination holds under its
	// id, so importing the same dump twice leaves one copy: its cursor, event log (with its
	// sequence numbers and so the delivered event ids), subscriptions with their counters,
	// queues and secrets.
	ImportSource(ctx context.Context, d SourceDump) error
}

// SourceDump is one trigger source with everything it holds.
type SourceDump struct {
	Source Source
	// Secret is the source's signing secret in the clear (nil when it has none).
	Secret        []byte
	Events        []StoredEvent
	Subscriptions []SubscriptionDump
}

// SubscriptionDump is one subscription with its secret and its queue.
type SubscriptionDump struct {
	Subscription Subscription
	// Secret is the subscription's signing secret in the clear (nil when it has none).
	Secret []byte
	Queue  []QueueEntry
}

// KVEntry is one kv entry; ExpiresAt is zero when it does not expire.
type KVEntry struct {
	Connector, Connection, Key string
	Value                      []byte
	ExpiresAt                  time.Time
}
