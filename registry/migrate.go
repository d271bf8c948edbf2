package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// MigrateReport counts what [Migrate] copied and what the destination held already.
type MigrateReport struct {
	// Copied and Kept count records by kind ("blobs", "versions", "connections", ...): written
	// to the destination, and found there already (left as they are).
	Copied, Kept map[string]int
}

func (r *MigrateReport) count(kind string, copied bool) {
	if copied {
		r.Copied[kind]++
	} else {
		r.Kept[kind]++
	}
}

// Migrate copies a namespace from one store into another (`plugboard store migrate`, bbolt to
// JetStream): plugin blobs and versions with the active pointers and canaries, connections
// with their secrets (opened with the source's master key, sealed again with the
// destination's), API keys, MCP servers, timers, kv entries, trigger sources with their
// cursors, event logs, subscriptions and queues, and the audit log. Invocation logs
// (diagnostics kept for a day) and pending OAuth consents (minutes) are not copied.
//
// It is idempotent: a record the destination holds already is kept, a trigger source is
// replaced by its copy, audit entries newer than the destination's newest are appended, so
// running it again after a failure, or twice, copies nothing twice. Both stores must be
// quiet: stop every server on them first. progress, when not nil, is called after each kind
// with what was done.
func Migrate(ctx context.Context, from, to storage.Store, progress func(kind string, copied, kept int)) (MigrateReport, error) {
	rep := MigrateReport{Copied: map[string]int{}, Kept: map[string]int{}}
	exp, ok := from.(storage.Exporter)
	if !ok {
		return rep, fmt.Errorf("registry: the source store cannot be read out for a migration (it is not a bbolt store)")
	}
	imp, ok := to.(storage.Importer)
	if !ok {
		return rep, fmt.Errorf("registry: the destination store cannot take a migration (it is not a JetStream store)")
	}
	steps := []struct {
		kind string
		run  func() error
	}{
		{"versions", func() error { return migrateVersions(ctx, from, to, &rep) }},
		{"connections", func() error { return migrateConnections(ctx, from, to, &rep) }},
		{"api_keys", func() error { return migrateKeys(ctx, from, to, &rep) }},
		{"mcp_servers", func() error { return migrateMCP(ctx, from, to, &rep) }},
		{"timers", func() error { return migrateTimers(ctx, from, to, &rep) }},
		{"kv", func() error { return migrateKV(ctx, exp, to, &rep) }},
		{"sources", func() error {
			return exp.ExportSources(ctx, func(d storage.SourceDump) error {
				if err := imp.ImportSource(ctx, d); err != nil {
					return fmt.Errorf("trigger source %s: %w", d.Source.ID, err)
				}
				rep.count("sources", true)
				rep.Copied["events"] += len(d.Events)
				rep.Copied["subscriptions"] += len(d.Subscriptions)
				return nil
			})
		}},
		{"audit", func() error { return migrateAudit(ctx, from, to, &rep) }},
	}
	for _, st := range steps {
		if err := st.run(); err != nil {
			return rep, fmt.Errorf("migrating %s: %w", st.kind, err)
		}
		if progress != nil {
			progress(st.kind, rep.Copied[st.kind], rep.Kept[st.kind])
		}
	}
	return rep, nil
}

func migrateVersions(ctx context.Context, from, to storage.Store, rep *MigrateReport) error {
	names, err := from.Connectors(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		vs, err := from.Versions(ctx, name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if _, err := to.Blob(ctx, v.Digest); errors.Is(err, storage.ErrNotFound) {
				data, err := from.Blob(ctx, v.Digest)
				if err != nil {
					return fmt.Errorf("blob of %s %s: %w", name, v.Version, err)
				}
				if _, err := to.PutBlob(ctx, data); err != nil {
					return err
				}
				rep.count("blobs", true)
			} else if err != nil {
				return err
			} else {
				rep.count("blobs", false)
			}
			created, err := to.PutVersion(ctx, v)
			if err != nil {
				return fmt.Errorf("%s %s: %w", name, v.Version, err)
			}
			rep.count("versions", created)
		}
		if act, err := from.Active(ctx, name); err == nil {
			if err := to.SetActive(ctx, name, act); err != nil {
				return err
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		c, err := from.Canary(ctx, name)
		if err != nil {
			return err
		}
		if err := to.SetCanary(ctx, name, c); err != nil {
			return err
		}
	}
	return nil
}

func migrateConnections(ctx context.Context, from, to storage.Store, rep *MigrateReport) error {
	cs, err := from.Connections(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		err := to.CreateConnection(ctx, c)
		if err != nil && !errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("connection %s: %w", c.ID, err)
		}
		rep.count("connections", err == nil)
	}
	return nil
}

func migrateKeys(ctx context.Context, from, to storage.Store, rep *MigrateReport) error {
	ks, err := from.APIKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range ks {
		err := to.CreateAPIKey(ctx, k)
		if err != nil && !errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("API key %s: %w", k.ID, err)
		}
		rep.count("api_keys", err == nil)
	}
	return nil
}

func migrateMCP(ctx context.Context, from, to storage.Store, rep *MigrateReport) error {
	ms, err := from.MCPServers(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := to.CreateMCPServer(ctx, m)
		if err != nil && !errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("MCP server %s: %w", m.Name, err)
		}
		rep.count("mcp_servers", err == nil)
	}
	return nil
}

func migrateTimers(ctx context.Context, from, to storage.Store, rep *MigrateReport) error {
	ts, err := from.DueTimers(ctx, time.Unix(1<<40, 0), math.MaxInt32)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if _, err := to.SetTimer(ctx, t); err != nil { // the same id replaces: idempotent
			return fmt.Errorf("timer %s: %w", t.ID, err)
		}
		rep.count("timers", true)
	}
	return nil
}

func migrateKV(ctx context.Context, exp storage.Exporter, to storage.Store, rep *MigrateReport) error {
	return exp.KVEntries(ctx, func(e storage.KVEntry) error {
		var ttl time.Duration
		if !e.ExpiresAt.IsZero() {
			if ttl = time.Until(e.ExpiresAt); ttl <= 0 {
				return nil
			}
		}
		if err := to.KVSet(ctx, e.Connector, e.Connection, e.Key, e.Value, ttl); err != nil {
			return fmt.Errorf("kv %s/%s %q: %w", e.Connector, e.Connection, e.Key, err)
		}
		rep.count("kv", true)
		return nil
	})
}

// migrateAudit appends the source's entries newer than the destination's newest, oldest
// first.
func migrateAudit(ctx context.Context, from, to storage.Store, rep *MigrateReport) error {
	var after time.Time
	if newest, _, err := to.Audit(ctx, storage.AuditQuery{Limit: 1}); err != nil {
		return err
	} else if len(newest) > 0 {
		after = newest[0].Time
	}
	var all []storage.AuditEntry
	var cursor uint64
	for {
		page, next, err := from.Audit(ctx, storage.AuditQuery{Before: cursor, Limit: 1000})
		if err != nil {
			return err
		}
		for _, e := range page {
			if e.Time.After(after) {
				all = append(all, e)
			}
		}
		if next == 0 || len(page) == 0 || (len(page) > 0 && !page[len(page)-1].Time.After(after)) {
			break
		}
		cursor = next
	}
	slices.Reverse(all)
	for _, e := range all {
		if err := to.AppendAudit(ctx, e); err != nil {
			return err
		}
		rep.count("audit", true)
	}
	return nil
}
