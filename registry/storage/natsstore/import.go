package natsstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/plugboard/plugboard/registry/storage"
)

var _ storage.Importer = (*Store)(nil)

// ImportSource implements [storage.Importer] for `plugboard store migrate`: it stores the
// source as dumped, with its event log (same seqs, so the same delivered event ids), ledger,
// subscriptions, queues and secrets, replacing what the namespace holds under those ids.
//
// A source's log and queues can pass JetStream's atomic batch limit, so the import is not one
// commit: the events, ledger, queues, secrets and subscription records are written first (in
// commits of deleteChunk keys), the source record and its indexes last. Until that last
// commit the source is not listed; a migration that stops half-way is run again (importing
// the same dump twice leaves one copy). Run it while no node serves the namespace.
func (s *Store) ImportSource(ctx context.Context, d storage.SourceDump) error {
	src := d.Source
	if err := checkID("source id", src.ID); err != nil {
		return err
	}
	if src.NextSeq == 0 {
		src.NextSeq = 1
	}
	type kv struct {
		key string
		val []byte
	}
	var puts []kv
	add := func(key string, v any) error {
		data, ok := v.([]byte)
		if !ok {
			var err error
			if data, err = json.Marshal(v); err != nil {
				return err
			}
		}
		puts = append(puts, kv{key, data})
		return nil
	}
	keep := map[string]bool{}
	first := src.NextSeq
	for _, e := range d.Events {
		if err := add(evKey(src.ID, e.Seq), e); err != nil {
			return err
		}
		if err := add(eidKey(src.ID, e.SourceEventID), []byte(strconv.FormatUint(e.Seq, 10))); err != nil {
			return err
		}
		first = min(first, e.Seq)
	}
	sealer := s.sealerNow()
	seal := func(kind, id string, secret []byte) error {
		if secret == nil {
			return nil
		}
		sealed, err := sealer.Seal(secret, []byte(kind+":"+id))
		if err != nil {
			return err
		}
		return add(secKey(kind, id), sealed)
	}
	if err := seal("src", src.ID, d.Secret); err != nil {
		return err
	}
	var subIDs []string
	for _, sd := range d.Subscriptions {
		sub := sd.Subscription
		if err := checkID("subscription id", sub.ID); err != nil {
			return err
		}
		sub.SourceID = src.ID
		subIDs = append(subIDs, sub.ID)
		for _, q := range sd.Queue {
			if err := add(qKey(sub.ID, q.Seq), q); err != nil {
				return err
			}
		}
		if err := seal("sub", sub.ID, sd.Secret); err != nil {
			return err
		}
		if err := add(subKey(sub.ID), sub); err != nil {
			return err
		}
	}
	for _, p := range puts {
		keep[p.key] = true
	}
	// What the namespace holds under these ids and the dump does not: deleted after.
	var stale []string
	filters := []string{"ev." + enc(src.ID) + ".>", "eid." + enc(src.ID) + ".>"}
	for _, id := range subIDs {
		filters = append(filters, "q."+enc(id)+".>")
	}
	for _, f := range filters {
		keys, err := s.listKeys(ctx, s.trig, f)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if !keep[k] {
				stale = append(stale, k)
			}
		}
	}
	for chunk := range slices.Chunk(puts, deleteChunk) {
		if _, err := s.update(ctx, s.trig, func(t *txn) error {
			for _, p := range chunk {
				t.put(p.key, p.val)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("natsstore: importing source %s (run the migration again): %w", src.ID, err)
		}
	}
	if err := s.deleteAll(ctx, stale); err != nil {
		return fmt.Errorf("natsstore: importing source %s (run the migration again): %w", src.ID, err)
	}
	_, err := s.update(ctx, s.trig, func(t *txn) error {
		if old, err := t.get(ctx, srcKey(src.ID)); err != nil {
			return err
		} else if old.exists {
			var rec srcRecord
			if err := json.Unmarshal(old.val, &rec); err == nil {
				if rec.Source.Key != src.Key {
					t.del(srcKeyIndex(rec.Source.Key))
				}
				if rec.Source.HookToken != "" && rec.Source.HookToken != src.HookToken {
					t.del("hook." + enc(rec.Source.HookToken))
				}
			}
		}
		idx, err := t.get(ctx, srcKeyIndex(src.Key))
		if err != nil {
			return err
		}
		if idx.exists && string(idx.val) != src.ID {
			return fmt.Errorf("natsstore: importing source %s: its key belongs to source %s here: %w", src.ID, idx.val, storage.ErrExists)
		}
		t.put(srcKeyIndex(src.Key), []byte(src.ID))
		if src.HookToken != "" {
			t.put("hook."+enc(src.HookToken), []byte(src.ID))
		}
		return t.putJSON(srcKey(src.ID), srcRecord{Source: src, Subs: subIDs, First: first})
	})
	if err != nil {
		return fmt.Errorf("natsstore: importing source %s (run the migration again): %w", src.ID, err)
	}
	return nil
}
