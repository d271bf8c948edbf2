package natsstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plugboard/plugboard/registry/storage"
)

// cache is the in-memory copy of one key range of a bucket (every key starting with prefix),
// filled at Open and kept current by a KV watcher and by this store's own commits. Each entry
// keeps its revision, so a late watcher update never overwrites a newer value; a delete leaves
// a tombstone for the same reason. A key the cache does not hold is read from JetStream (a
// write another node acknowledged a moment ago may not have reached the watcher yet).
type cache struct {
	b      *bucket
	prefix string
	decode func(val []byte) (any, error)
	// complete makes a miss an absence, without reading JetStream: for keys that are usually
	// absent (canaries), so a call does not pay a round trip for a key that has no value. A
	// value set on another node a moment ago is seen once its watcher update arrives, which is
	// before any [Store.Watch] reports the change.
	complete bool

	mu        sync.RWMutex
	m         map[string]centry
	listeners map[*changeQueue]listener
}

// listener is one Watch of a cache: change names the Change of a key, and updates at or
// below after (the bucket's last revision when the Watch began) were committed before it.
type listener struct {
	change func(k string) storage.Change
	after  uint64
}

// changeQueue is the unbounded queue of changes of one Watch, so a slow fn never holds a
// cache watcher back and no change is dropped.
type changeQueue struct {
	mu     sync.Mutex
	q      []storage.Change
	signal chan struct{}
}

func (q *changeQueue) push(c storage.Change) {
	q.mu.Lock()
	q.q = append(q.q, c)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *changeQueue) take() []storage.Change {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.q
	q.q = nil
	return out
}

// notify reports a watcher update of k at revision rev to every Watch of this cache that
// began before it was committed.
func (c *cache) notify(k string, rev uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for q, l := range c.listeners {
		if rev > l.after {
			q.push(l.change(k))
		}
	}
}

type centry struct {
	v   any
	rev uint64
	del bool
}

// newCache registers a cache of b's keys under prefix; Open starts its watcher.
func (s *Store) newCache(b *bucket, prefix string, decode func([]byte) (any, error)) *cache {
	c := &cache{b: b, prefix: prefix, decode: decode, m: map[string]centry{}}
	b.caches = append(b.caches, c)
	return c
}

func decodeJSON[T any](val []byte) (any, error) {
	var v T
	if err := json.Unmarshal(val, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// apply records a value (or a delete) at rev unless the cache holds a newer revision.
func (s *Store) applyCache(c *cache, k string, val []byte, rev uint64, del bool) {
	var v any
	if !del {
		var err error
		if v, err = c.decode(val); err != nil {
			s.corruptErr(c.b.name+" "+c.prefix+k, err)
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok && old.rev >= rev && (rev != 0 || del) {
		return
	}
	c.m[k] = centry{v: v, rev: rev, del: del}
}

// lookup returns the cached value of k, if the cache holds one.
func (c *cache) lookup(k string) (any, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.m[k]
	if !ok || e.del {
		return nil, false
	}
	return e.v, true
}

// all returns every cached value, in key order.
func (c *cache) all() []any {
	c.mu.RLock()
	defer c.mu.RUnlock()
	keys := make([]string, 0, len(c.m))
	for k, e := range c.m {
		if !e.del {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = c.m[k].v
	}
	return out
}

// entries returns every cached key (without the prefix) and value.
func (c *cache) entries() map[string]any {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]any, len(c.m))
	for k, e := range c.m {
		if !e.del {
			out[k] = e.v
		}
	}
	return out
}

// cached returns the value of k from the cache, or from JetStream when the cache does not
// hold it (and then remembers it).
func (s *Store) cached(ctx context.Context, c *cache, k string) (any, bool, error) {
	if err := s.check(ctx); err != nil {
		return nil, false, err
	}
	fresh := storage.IsFresh(ctx)
	if v, ok := c.lookup(k); ok && !fresh {
		return v, true, nil
	}
	if c.complete && !fresh {
		return nil, false, nil
	}
	e, err := s.get(ctx, c.b, c.prefix+k)
	if err != nil || !e.exists {
		return nil, false, err
	}
	v, err := c.decode(e.val)
	if err != nil {
		return nil, false, s.corruptErr(c.b.name+" "+c.prefix+k, err)
	}
	s.applyCache(c, k, e.val, e.rev, false)
	return v, true, nil
}

// values returns every value of the cache's range, in key order (by the encoded key): from
// memory, or read from JetStream when ctx is marked [storage.WithFresh].
func (s *Store) values(ctx context.Context, c *cache) ([]any, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if !storage.IsFresh(ctx) {
		return c.all(), nil
	}
	m, err := s.freshEntries(ctx, c)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out, nil
}

// rangeEntries is entries, read from JetStream when ctx is marked [storage.WithFresh].
func (s *Store) rangeEntries(ctx context.Context, c *cache) (map[string]any, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if !storage.IsFresh(ctx) {
		return c.entries(), nil
	}
	return s.freshEntries(ctx, c)
}

// freshEntries scans the cache's range in JetStream, refreshing the cache on the way.
func (s *Store) freshEntries(ctx context.Context, c *cache) (map[string]any, error) {
	es, err := s.scan(ctx, c.b, c.prefix+">")
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(es))
	for _, e := range es {
		k := strings.TrimPrefix(e.key, c.prefix)
		v, err := c.decode(e.val)
		if err != nil {
			return nil, s.corruptErr(c.b.name+" "+e.key, err)
		}
		s.applyCache(c, k, e.val, e.rev, false)
		out[k] = v
	}
	return out, nil
}

// applyOwn makes the caches reflect a committed transaction before the method returns.
func (s *Store) applyOwn(t *txn) {
	for _, c := range t.b.caches {
		for _, w := range t.writes {
			if k, ok := strings.CutPrefix(w.key, c.prefix); ok {
				s.applyCache(c, k, w.val, w.rev, w.del)
			}
		}
	}
}

// startCaches creates the caches and starts their watchers, returning once each holds the
// bucket's current contents.
func (s *Store) startCaches() error {
	s.cVersions = s.newCache(s.versions, "v.", decodeJSON[versionRecord])
	s.cActive = s.newCache(s.versions, "active.", func(b []byte) (any, error) { return string(b), nil })
	s.cCanary = s.newCache(s.versions, "canary.", decodeJSON[storage.Canary])
	s.cCanary.complete = true
	s.cKeys = s.newCache(s.keys, "", decodeJSON[storage.APIKey])
	s.cMCP = s.newCache(s.mcp, "", decodeJSON[storage.MCPServer])
	s.cConns = s.newCache(s.state, "conn.", decodeJSON[connectionRecord])
	s.cTimers = s.newCache(s.state, "t.", decodeJSON[timerRecord])
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	for _, c := range []*cache{s.cVersions, s.cActive, s.cCanary, s.cKeys, s.cMCP, s.cConns, s.cTimers} {
		w, err := c.b.kv.Watch(ctx, c.prefix+">")
		if err != nil {
			cancel()
			return fmt.Errorf("natsstore: watching %s %s> on %s: %w", c.b.name, c.prefix, s.urls, err)
		}
		ready := make(chan struct{})
		s.watchers.Add(1)
		go func() {
			defer s.watchers.Done()
			defer w.Stop()
			initial := true
			for {
				select {
				case <-ctx.Done():
					return
				case e, ok := <-w.Updates():
					if !ok {
						return
					}
					if e == nil {
						if initial {
							initial = false
							close(ready)
						}
						continue
					}
					k := strings.TrimPrefix(e.Key(), c.prefix)
					s.holdWatchers.RLock()
					s.applyCache(c, k, e.Value(), e.Revision(), e.Operation() != jetstream.KeyValuePut)
					if !initial {
						c.notify(k, e.Revision())
					}
					s.holdWatchers.RUnlock()
				}
			}
		}()
		select {
		case <-ready:
		case <-ctx.Done():
		}
	}
	return nil
}

// Watch implements [storage.Cluster]. The changes come from the watchers that keep the
// in-memory copies, after the copy holds the change: fn reading the record again sees it (or
// a newer state). Changes are queued without bound for fn, called from one goroutine until
// ctx ends. A change committed after Watch returns is reported: the watchers run from Open on.
func (s *Store) Watch(ctx context.Context, fn func(storage.Change)) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	strip := func(kind string) func(string) storage.Change {
		return func(k string) storage.Change { return storage.Change{Kind: kind, Key: dec(k)} }
	}
	srcs := map[*cache]func(string) storage.Change{
		s.cActive: strip(storage.ChangeActive),
		s.cCanary: strip(storage.ChangeCanary),
		s.cVersions: func(k string) storage.Change {
			name, ver, _ := strings.Cut(k, ".")
			return storage.Change{Kind: storage.ChangeVersion, Key: dec(name) + "@" + dec(ver)}
		},
		s.cKeys:  strip(storage.ChangeAPIKey),
		s.cMCP:   strip(storage.ChangeMCPServer),
		s.cConns: strip(storage.ChangeConnection),
	}
	// A change another node committed before now may still be on its way to this node's
	// watchers; the buckets' last revisions tell it from the changes to report.
	last := map[*bucket]uint64{}
	for c := range srcs {
		if _, ok := last[c.b]; ok {
			continue
		}
		st, err := s.js.Stream(ctx, c.b.stream)
		if err != nil {
			return s.netErr("reading the last revision of "+c.b.name, err)
		}
		last[c.b] = st.CachedInfo().State.LastSeq
	}
	q := &changeQueue{signal: make(chan struct{}, 1)}
	for c, change := range srcs {
		c.mu.Lock()
		if c.listeners == nil {
			c.listeners = map[*changeQueue]listener{}
		}
		c.listeners[q] = listener{change: change, after: last[c.b]}
		c.mu.Unlock()
	}
	go func() {
		defer func() {
			for c := range srcs {
				c.mu.Lock()
				delete(c.listeners, q)
				c.mu.Unlock()
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-q.signal:
				for _, c := range q.take() {
					if ctx.Err() != nil {
						return
					}
					fn(c)
				}
			}
		}
	}()
	return nil
}
