// Package trigger is Plugboard's trigger engine (API.md "Subscriptions", "Cluster"): the
// scheduler of poll sources, webhook renewals and plugin timers, the push workers of webhook
// deliveries, the wake-ups of long-polling pullers, and the start and stop of sources when
// subscriptions come and go.
//
// An [Engine] is built from its dependencies ([Deps]: the store, the one prepared-call path of
// the registry, the logger, metrics, tracing and the push client) and its [Options]. It owns
// no HTTP routes: package server maps requests to the methods here ([Engine.Subscribe],
// [Engine.DeleteSubscription], [Engine.Pull], [Engine.Replay], [Engine.Receive]) and their
// errors to problem documents.
//
// # Schedules
//
// A poll source is polled at the shortest interval of its subscriptions, never below the
// trigger's min_interval_s. Its schedule lives in the store (Source.NextPollAt, and
// Source.PollIntervalS, the interval it was computed from), where every node's scheduler reads
// it at each Options.Tick. A subscription joining, leaving or changing its interval
// ([Engine.Subscribe], [Engine.DeleteSubscription], [Engine.SetInterval]) recomputes it at
// once, on whichever node it is made, and the node polling the source follows at its next
// Tick. Writers that race (two such changes, or one and a poll that began before it) each
// check the subscriptions again after writing, so the last write is always made with the last
// set of subscriptions (schedule.go).
//
// # Several nodes on one store
//
// Every node of a cluster runs an Engine over the same store, and the leases of
// [storage.Cluster] divide the work; the holder of a lease is the engine's NodeName:
//
//   - "source:<id>": the node that polls a poll source, and renews, subscribes or
//     unsubscribes a webhook source. A node takes a source when it is due and nobody holds
//     it, and keeps it (renewing the lease every third of Options.LeaseTTL) while the source
//     exists. Before committing a poll it renews the lease once more, and commits nothing when
//     another node took the source meanwhile, so a stale poller cannot move the cursor. A
//     dead node's sources are taken by the others once its leases expire.
//   - "push:<subscription id>": the node that pushes a push subscription. Retry state lives in
//     the store (QueueHead, RecordPush), so a new holder continues where the old one stopped.
//   - "timers": the one node that fires plugin timers.
//
// Inbound webhooks (/hooks/{token}) and queue pulls and acks need no lease: CommitEvents and
// LeaseEvents are atomic in the store, so any node serves them.
//
// Timers are fired first and deleted after the plugin answered (at least once): a crash (or a
// lost lease) between the two fires the timer again on the next holder, and nothing is lost.
// The window is one plugin call; the holder renews its lease right before each firing so that
// a node that lost the lease does not fire.
//
// With bbolt (one process) the leases live in memory and are always granted to the one
// engine, so a single node behaves as before leases existed.
package trigger
