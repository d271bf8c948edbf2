package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plugboard/plugboard/registry/storage"
)

// Change kinds, under this package's names.
const (
	ChangeActive     = storage.ChangeActive
	ChangeCanary     = storage.ChangeCanary
	ChangeVersion    = storage.ChangeVersion
	ChangeAPIKey     = storage.ChangeAPIKey
	ChangeMCPServer  = storage.ChangeMCPServer
	ChangeConnection = storage.ChangeConnection
)

// cluster is the one-process implementation of [storage.Cluster]: a bbolt file has one
// process, so leases and heartbeats live in memory and vanish with it, and Watch reports what
// this Store commits.
type cluster struct {
	mu       sync.Mutex
	leases   map[string]lease
	nodes    map[string]nodeBeat
	watchers map[int]*watcher
	nextW    int
}

// watcher is one Watch's backlog: the changes committed and not yet passed to its fn, in
// commit order. A commit never waits for a watcher. Up to coalesceAt changes the backlog keeps
// every one; past that (a watcher stuck in a slow fn) a change to a record already waiting in
// the backlog is merged into it, so the backlog is bounded by the number of distinct records
// and the watcher still catches up: every change names a record to read again.
type watcher struct {
	mu      sync.Mutex
	pending []storage.Change
	wake    chan struct{} // capacity 1: a backlog is waiting
}

// coalesceAt is the backlog length past which a watcher's repeated changes are merged.
const coalesceAt = 1024

func (w *watcher) add(c storage.Change) {
	w.mu.Lock()
	merged := len(w.pending) >= coalesceAt && slices.Contains(w.pending, c)
	if !merged {
		w.pending = append(w.pending, c)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the backlog and empties it.
func (w *watcher) take() []storage.Change {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.pending
	w.pending = nil
	return out
}

type lease struct {
	holder string
	until  time.Time
}

type nodeBeat struct {
	n     storage.Node
	until time.Time
}

func (c *cluster) init() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leases == nil {
		c.leases, c.nodes, c.watchers = map[string]lease{}, map[string]nodeBeat{}, map[int]*watcher{}
	}
}

// TryLease implements [storage.Cluster].
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("store: lease %q for %q over %v: %w", name, holder, ttl, ErrInvalid)
	}
	if s.closed.Load() {
		return false, fmt.Errorf("store: %w", ErrClosed)
	}
	s.cl.init()
	now := s.now()
	s.cl.mu.Lock()
	defer s.cl.mu.Unlock()
	if l, ok := s.cl.leases[name]; ok && l.holder != holder && now.Before(l.until) {
		return false, nil
	}
	s.cl.leases[name] = lease{holder: holder, until: now.Add(ttl)}
	return true, nil
}

// ReleaseLease implements [storage.Cluster].
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if s.closed.Load() {
		return fmt.Errorf("store: %w", ErrClosed)
	}
	s.cl.init()
	s.cl.mu.Lock()
	defer s.cl.mu.Unlock()
	if l, ok := s.cl.leases[name]; ok && l.holder == holder {
		delete(s.cl.leases, name)
	}
	return nil
}

// Heartbeat implements [storage.Cluster].
func (s *Store) Heartbeat(ctx context.Context, n storage.Node, ttl time.Duration) error {
	if n.Name == "" || ttl <= 0 {
		return fmt.Errorf("store: heartbeat of node %q over %v: %w", n.Name, ttl, ErrInvalid)
	}
	if s.closed.Load() {
		return fmt.Errorf("store: %w", ErrClosed)
	}
	s.cl.init()
	now := s.now()
	n.LastSeenAt = now.UTC()
	n.Routes = cloneMap(n.Routes)
	s.cl.mu.Lock()
	s.cl.nodes[n.Name] = nodeBeat{n: n, until: now.Add(ttl)}
	s.cl.mu.Unlock()
	return nil
}

// Nodes implements [storage.Cluster].
func (s *Store) Nodes(ctx context.Context) ([]storage.Node, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("store: %w", ErrClosed)
	}
	s.cl.init()
	now := s.now()
	s.cl.mu.Lock()
	defer s.cl.mu.Unlock()
	var out []storage.Node
	for name, b := range s.cl.nodes {
		if !now.Before(b.until) {
			delete(s.cl.nodes, name)
			continue
		}
		n := b.n
		n.Routes = cloneMap(n.Routes)
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b storage.Node) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Leave implements [storage.Cluster].
func (s *Store) Leave(ctx context.Context, name string) error {
	if s.closed.Load() {
		return fmt.Errorf("store: %w", ErrClosed)
	}
	s.cl.init()
	s.cl.mu.Lock()
	delete(s.cl.nodes, name)
	s.cl.mu.Unlock()
	return nil
}

// Watch implements [storage.Cluster]: fn sees every change this Store commits from now on, in
// commit order, from one goroutine, until ctx ends. A slow fn holds no commit back: changes
// wait in the watcher's backlog (see [watcher]).
func (s *Store) Watch(ctx context.Context, fn func(storage.Change)) error {
	if s.closed.Load() {
		return fmt.Errorf("store: %w", ErrClosed)
	}
	s.cl.init()
	w := &watcher{wake: make(chan struct{}, 1)}
	s.cl.mu.Lock()
	id := s.cl.nextW
	s.cl.nextW++
	s.cl.watchers[id] = w
	s.cl.mu.Unlock()
	go func() {
		defer func() {
			s.cl.mu.Lock()
			delete(s.cl.watchers, id)
			s.cl.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			for _, c := range w.take() {
				if ctx.Err() != nil {
					return
				}
				fn(c)
			}
		}
	}()
	return nil
}

// notifyAfter reports the change to the watchers when err is nil, and returns err.
func (s *Store) notifyAfter(kind, key string, err error) error {
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	s.cl.init()
	s.cl.mu.Lock()
	defer s.cl.mu.Unlock()
	for _, w := range s.cl.watchers {
		w.add(storage.Change{Kind: kind, Key: key})
	}
	return err
}

// SetCanary implements [storage.Versions].
func (s *Store) SetCanary(ctx context.Context, name string, c *storage.Canary) error {
	if err := checkID("connector name", name); err != nil {
		return err
	}
	return s.notifyAfter(ChangeCanary, name, s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCanaries)
		if c == nil {
			if b.Get([]byte(name)) == nil {
				return errUnchanged
			}
			return b.Delete([]byte(name))
		}
		vb := tx.Bucket(bucketVersions).Bucket([]byte(name))
		if vb == nil || vb.Get([]byte(c.Version)) == nil {
			return fmt.Errorf("store: canary version %s@%s: %w", name, c.Version, ErrNotFound)
		}
		v, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), v)
	}))
}

// Canary implements [storage.Versions].
func (s *Store) Canary(ctx context.Context, name string) (*storage.Canary, error) {
	var out *storage.Canary
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, ok := get(tx.Bucket(bucketCanaries), []byte(name))
		if !ok {
			return nil
		}
		out = new(storage.Canary)
		if err := json.Unmarshal(v, out); err != nil {
			return fmt.Errorf("store: canary of %s: %w", name, err)
		}
		return nil
	})
	return out, err
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
