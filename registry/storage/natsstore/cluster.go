package natsstore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// Leases and heartbeats live in the cluster bucket: lease.<name> and node.<name>, each value
// carrying its holder and expiry. A lease is taken by creating the key, renewed or taken over
// (once expired) by an update checked by its revision, so two nodes never both hold it. The
// bucket's MaxAge collects keys nobody renewed for clusterMaxAge. Expiry uses each node's
// clock: keep the nodes' clocks in sync (NTP) to well under the lease TTLs.

// clusterMaxAge is the cluster bucket's MaxAge: leases and heartbeats are renewed far more
// often, so only abandoned keys reach it.
const clusterMaxAge = 24 * time.Hour

type leaseRecord struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

type nodeRecord struct {
	Node  storage.Node `json:"node"`
	Until time.Time    `json:"until"`
}

// TryLease implements [storage.Cluster].
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("natsstore: lease %q for %q over %v: %w", name, holder, ttl, storage.ErrInvalid)
	}
	if ttl > clusterMaxAge {
		return false, fmt.Errorf("natsstore: lease %q: ttl %v is over %v: %w", name, ttl, clusterMaxAge, storage.ErrInvalid)
	}
	got := false
	_, err := s.update(ctx, s.cluster, func(t *txn) error {
		got = false
		now := s.now()
		var l leaseRecord
		found, err := t.getJSON(ctx, "lease."+enc(name), &l)
		if err != nil {
			return err
		}
		if found && l.Holder != holder && now.Before(l.Until) {
			return nil
		}
		got = true
		return t.putJSON("lease."+enc(name), leaseRecord{Holder: holder, Until: now.Add(ttl).UTC()})
	})
	if err != nil {
		return false, err
	}
	return got, nil
}

// ReleaseLease implements [storage.Cluster].
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := s.update(ctx, s.cluster, func(t *txn) error {
		var l leaseRecord
		found, err := t.getJSON(ctx, "lease."+enc(name), &l)
		if err != nil || !found || l.Holder != holder {
			return err
		}
		t.del("lease." + enc(name))
		return nil
	})
	return err
}

// Heartbeat implements [storage.Cluster].
func (s *Store) Heartbeat(ctx context.Context, n storage.Node, ttl time.Duration) error {
	if n.Name == "" || ttl <= 0 {
		return fmt.Errorf("natsstore: heartbeat of node %q over %v: %w", n.Name, ttl, storage.ErrInvalid)
	}
	now := s.now()
	n.LastSeenAt = now.UTC()
	n.Routes = maps.Clone(n.Routes)
	data, err := json.Marshal(nodeRecord{Node: n, Until: now.Add(ttl).UTC()})
	if err != nil {
		return err
	}
	_, err = s.update(ctx, s.cluster, func(t *txn) error {
		t.put("node."+enc(n.Name), data)
		return nil
	})
	return err
}

// Nodes implements [storage.Cluster].
func (s *Store) Nodes(ctx context.Context) ([]storage.Node, error) {
	es, err := s.scan(ctx, s.cluster, "node.>")
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []storage.Node
	for _, e := range es {
		var r nodeRecord
		if err := json.Unmarshal(e.val, &r); err != nil {
			return nil, s.corruptErr("heartbeat "+e.key, err)
		}
		if now.Before(r.Until) {
			out = append(out, r.Node)
		}
	}
	slices.SortFunc(out, func(a, b storage.Node) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Leave implements [storage.Cluster].
func (s *Store) Leave(ctx context.Context, name string) error {
	_, err := s.update(ctx, s.cluster, func(t *txn) error {
		e, err := t.get(ctx, "node."+enc(name))
		if err != nil || !e.exists {
			return err
		}
		t.del("node." + enc(name))
		return nil
	})
	return err
}
