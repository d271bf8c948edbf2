package storage

import "time"

// MaxInvocationsPerID bounds the records [Store.Invocations] returns for one correlation id
// (the newest ones).
const MaxInvocationsPerID = 64

// Invocation is one stored invocation log record.
type Invocation struct {
	// CorrelationID is the call's correlation id; it need not be unique.
	CorrelationID string
	// Time orders the records and drives their expiry: the call's start.
	Time time.Time
	// Document is the record as the server wrote it (JSON); the store does not interpret it.
	Document []byte
}

// MaxPruneBatch is the most records one [Store.PruneInvocations] deletes, so a large prune
// does not hold the write lock for long: call it again while it returns MaxPruneBatch.
const MaxPruneBatch = 4096
