package storage

import "errors"

// Sentinel errors. Every error a [Store] method returns for one of these conditions wraps the
// matching sentinel (test with [errors.Is]) and adds what was looked for; none of them ever
// carries a secret.
var (
	// ErrNotFound: the blob, version, active pointer, connection, timer or meta key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a connection with that id already exists, or a timer id is taken in another scope.
	ErrExists = errors.New("already exists")
	// ErrVersionExists: the connector version is already stored with other bytes (another digest).
	ErrVersionExists = errors.New("version already exists with a different digest")
	// ErrActive: the version is the connector's active version and cannot be deleted.
	ErrActive = errors.New("version is active")
	// ErrTooLarge: a kv key, value or scope would pass its limit (ABI.md section 5).
	ErrTooLarge = errors.New("too large")
	// ErrTooMany: the (connector, connection) scope already has the maximum of pending timers.
	ErrTooMany = errors.New("too many pending timers")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrInvalid: an argument is malformed (empty id, bad digest, version that is not SemVer,
	// JSON field that is not valid JSON, time out of range). It is a caller bug, never a data
	// problem.
	ErrInvalid = errors.New("invalid argument")
	// ErrLocked: another process holds the data file's lock (another Plugboard may be running on
	// the same data directory).
	ErrLocked = errors.New("data file is locked")
	// ErrUnknownKey: a secret was sealed with a master key id the key file does not hold.
	ErrUnknownKey = errors.New("unknown master key id")
	// ErrDecrypt: a sealed secret failed to open with the key its id names: the key file holds
	// another key under that id, or the record was altered or moved to another connection.
	ErrDecrypt = errors.New("sealed secret does not open")
	// ErrCorrupt: the data file is damaged (cut short, a bad meta page, a failed consistency
	// check, or a page bbolt found not to be what it expected). The error is a *[CorruptError]
	// naming the file and the problem.
	ErrCorrupt = errors.New("data file is damaged")
	// ErrNoSpace: the file system refused a write for lack of space or quota (ENOSPC, EDQUOT).
	// The transaction was rolled back: nothing of it was written, and what was acknowledged
	// before is intact.
	ErrNoSpace = errors.New("no space left on the server's disk")
	// ErrUnavailable: the backend cannot be reached now (the NATS servers are down or
	// partitioned from this node). Nothing was written; the call may be retried.
	ErrUnavailable = errors.New("store unreachable")
)
