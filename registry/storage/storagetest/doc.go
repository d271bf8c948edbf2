// Package storagetest is the conformance suite of the storage contract: every promise that
// package storage makes in its doc comments, written as a test against its interfaces only, so
// that every backend (boltstore, natsstore) runs the same suite and is held to the same
// semantics.
//
// A backend runs it from one test:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store {
//			s, err := boltstore.Open(filepath.Join(t.TempDir(), "plugboard.db"), nil)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// A few promises are about what a store holds at rest, which no method shows: that secrets are
// sealed there, bound to their connection, with the key the store opens again. [RunAtRest]
// runs those, given a [Raw] view of the backend's files or streams that the backend supplies.
//
// Each case opens a fresh, empty store and closes it when the case ends. The suite uses the
// wall clock (a backend's clock need not be settable): time-based promises (lease and kv
// expiry, heartbeats, OAuth state lapse) are tested with short durations and by polling for
// the condition with a deadline, never by sleeping for a fixed time.
//
// The suite also pins a few behaviours that storage's doc comments leave implicit but that
// callers depend on; each such case says so in its name or comment (for example, QueueHead of
// a deleted subscription answers an empty subscription and no error, which is how the pusher
// learns to stop).
package storagetest
