package storage

import "time"

// AuditEntry is one audited API call (API.md "Keys, audit and invocation logs"). It never holds
// a secret or a request body.
type AuditEntry struct {
	// Seq is the entry's position in the log, set by [Store.AppendAudit]; it is the paging cursor.
	Seq uint64 `json:"-"`
	// Time is when the call was decided; set to now by AppendAudit when zero.
	Time time.Time `json:"time"`
	// Actor is the caller's key id; "" when no key was recognised.
	Actor string `json:"actor"`
	// Role is the caller's role; "" when unauthenticated.
	Role string `json:"role"`
	// Action names what was asked, e.g. "POST /v1/connections".
	Action string `json:"action"`
	// Target names the resources concerned as space-separated "kind:id" parts, e.g.
	// "connector:github connection:gh-main"; "" when none.
	Target string `json:"target"`
	// Outcome is allowed, denied or error.
	Outcome string `json:"outcome"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
	// CorrelationID is the request's correlation id.
	CorrelationID string `json:"correlation_id"`
}

// AuditQuery selects audit entries, newest first. Zero fields select everything.
type AuditQuery struct {
	// Since keeps entries at or after this time.
	Since time.Time
	// Actor keeps entries of this key id.
	Actor string
	// Target keeps entries whose target is this string or has it as one of its parts.
	Target string
	// Before is a cursor from a previous page: only entries older than it are returned; 0 starts
	// at the newest.
	Before uint64
	// Limit caps the entries returned; 0 (or less) means 100.
	Limit int
}
