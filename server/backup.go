package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// GET /v1/store/backup (admin only): a consistent snapshot of the whole store, streamed as a
// bbolt file (storage.Backuper) while the server keeps serving. Content-Length is the
// snapshot's exact size, so a client that gets fewer bytes knows the backup failed half-way.
// X-Plugboard-Master-Key-Id names the master key the connection secrets are sealed with: the
// snapshot holds them sealed only, and a restored server needs the same key file. Every backup
// is recorded in the audit log before its first byte is sent, and a backup cut short gets a
// second entry with status 500.
// codeBackupUnsupported: the store backend cannot be copied into one file (JetStream).
const codeBackupUnsupported = "backup_unsupported"

func (s *Server) backupStore(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := principalFrom(ctx)
	started := false
	name := "plugboard-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	b, ok := s.st.(storage.Backuper)
	if !ok {
		s.audit(ctx, auditEvent{actor: p.KeyID, role: p.Role, action: "GET /v1/store/backup", target: name, status: http.StatusNotImplemented})
		return newProblem(http.StatusNotImplemented, codeBackupUnsupported,
			"this namespace is kept in NATS JetStream, which this endpoint cannot copy into one file; back up its streams with NATS's tools (nats stream backup), or move it to bbolt with plugboard store migrate")
	}
	n, err := b.Backup(ctx, w, func(size int64) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("X-Plugboard-Master-Key-Id", s.reg.MasterKeyID())
		h.Set("Cache-Control", "no-store")
		// Recorded before the first byte goes out: a client holding the whole backup finds it
		// in the audit log (written after the body, the entry could come after its next read).
		s.audit(ctx, auditEvent{actor: p.KeyID, role: p.Role, action: "GET /v1/store/backup", target: name, status: http.StatusOK})
		w.WriteHeader(http.StatusOK)
		started = true
	})
	switch {
	case err != nil && started: // cut short: the body ends before its Content-Length; a second entry says so
		s.audit(ctx, auditEvent{actor: p.KeyID, role: p.Role, action: "GET /v1/store/backup", target: name, status: http.StatusInternalServerError})
	case err != nil:
		s.audit(ctx, auditEvent{actor: p.KeyID, role: p.Role, action: "GET /v1/store/backup", target: name, status: toProblem(err).Status})
	}
	if err != nil && started {
		s.log.Error("store backup failed half-way; the client got a short body", "err", err, "bytes", n, "correlation_id", correlationID(ctx))
		return nil
	}
	if err != nil {
		return err
	}
	s.log.Info("store backed up", "bytes", n, "actor", p.KeyID, "correlation_id", correlationID(ctx))
	return nil
}
