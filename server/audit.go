package server

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// Audit log (API.md "Keys, audit and invocation logs"): every mutating /v1 call (except action
// calls and event pulls and acks, see audited) and every denied call (401, 403) is appended to the store before the answer is complete. Entries name
// the route template as the action and "kind:id" parts as the target; request bodies are never
// recorded, so no secret reaches the log.

// Default audit retention (Options.AuditRetention, Options.AuditMaxEntries).
const (
	defaultAuditRetention  = 90 * 24 * time.Hour
	defaultAuditMaxEntries = 1_000_000
	auditPruneInterval     = 10 * time.Minute
)

// auditEvent is what a request contributes to its audit entry.
type auditEvent struct {
	actor, role, action, target string
	status                      int
}

// auditTarget is the mutable target of the request being handled, so handlers can name what
// their body addressed (setAuditTarget).
type auditTarget struct {
	mu     sync.Mutex
	target string
}

type auditTargetKey struct{}

func withAuditTarget(ctx context.Context) (context.Context, *auditTarget) {
	t := &auditTarget{}
	return context.WithValue(ctx, auditTargetKey{}, t), t
}

// setAuditTarget sets the target recorded for the request of ctx (space-separated "kind:id"
// parts, e.g. "connector:github connection:gh-main"); a no-op outside a /v1 route.
func setAuditTarget(ctx context.Context, target string) {
	if t, ok := ctx.Value(auditTargetKey{}).(*auditTarget); ok && target != "" {
		t.mu.Lock()
		t.target = target
		t.mu.Unlock()
	}
}

func (t *auditTarget) get() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.target
}

// outcome maps a status to the audit outcome.
func outcome(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "denied"
	case status >= 400:
		return "error"
	}
	return "allowed"
}

// audit appends one entry; a failure is logged, never shown to the caller.
func (s *Server) audit(ctx context.Context, e auditEvent) {
	err := s.st.AppendAudit(context.WithoutCancel(ctx), storage.AuditEntry{Actor: e.actor, Role: e.role, Action: e.action,
		Target: e.target, Outcome: outcome(e.status), Status: e.status, CorrelationID: correlationID(ctx)})
	if err != nil {
		s.log.Error("appending to the audit log", "err", err, "correlation_id", correlationID(ctx))
	}
}

// audited reports whether a call to a route with this permission, method and status goes to
// the audit log: every denial, and every mutating call except the data plane (action calls,
// event pulls and acks), which the invocation log records instead: auditing them would put a
// disk flush on every action call, which costs about a millisecond and a half all told.
func audited(perm permission, method string, status int) bool {
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return true
	}
	if perm == permActionsInvoke || perm == permEventsConsume {
		return false
	}
	return method != http.MethodGet && method != http.MethodHead
}

// auditEntryDoc is an audit entry as GET /v1/audit shows it.
type auditEntryDoc struct {
	Time          time.Time `json:"time"`
	Actor         string    `json:"actor"`
	Role          string    `json:"role"`
	Action        string    `json:"action"`
	Target        string    `json:"target"`
	Outcome       string    `json:"outcome"`
	Status        int       `json:"status"`
	CorrelationID string    `json:"correlation_id"`
}

// GET /v1/audit?since=&actor=&target=&limit=&cursor= : newest first; "next" is the cursor of
// the next (older) page, null on the last page.
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var aq storage.AuditQuery
	aq.Actor, aq.Target = q.Get("actor"), q.Get("target")
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			if d, derr := time.ParseDuration(v); derr == nil && d > 0 {
				t, err = time.Now().Add(-d), nil
			}
		}
		if err != nil {
			return problemf(http.StatusBadRequest, codeInvalidRequest, "since: want an RFC 3339 time or a duration such as 24h, got %q", v)
		}
		aq.Since = t
	}
	aq.Limit = 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return problemf(http.StatusBadRequest, codeInvalidRequest, "limit: want 1 to 1000, got %q", v)
		}
		aq.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return problemf(http.StatusBadRequest, codeInvalidRequest, "cursor: pass the \"next\" value of the previous page, got %q", v)
		}
		aq.Before = n
	}
	entries, next, err := s.st.Audit(r.Context(), aq)
	if err != nil {
		return err
	}
	docs := make([]auditEntryDoc, len(entries))
	for i, e := range entries {
		docs[i] = auditEntryDoc{Time: e.Time, Actor: e.Actor, Role: e.Role, Action: e.Action, Target: e.Target,
			Outcome: e.Outcome, Status: e.Status, CorrelationID: e.CorrelationID}
	}
	var nextDoc *string
	if next != 0 {
		n := strconv.FormatUint(next, 10)
		nextDoc = &n
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": docs, "next": nextDoc})
	return nil
}

// pruneAudit applies the audit retention now and then every auditPruneInterval until stop is
// closed.
func (s *Server) pruneAudit(stop <-chan struct{}) {
	t := time.NewTicker(auditPruneInterval)
	defer t.Stop()
	for {
		n, err := s.st.PruneAudit(context.Background(), s.opts.AuditRetention, s.opts.AuditMaxEntries)
		if err != nil {
			s.log.Warn("pruning the audit log", "err", err)
		} else if n > 0 {
			s.log.Info("pruned the audit log", "removed", n)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
