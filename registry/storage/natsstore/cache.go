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
	// negative makes a miss answered by JetStream authoritative until the watcher reports a
	// change: for keys that are usually absent (canaries), so a call does not read JetStream
	// for a key that has no value.
	negative bool

	mu sync.RWMutex
	m  map[string]centry
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
	if v, ok := c.lookup(k); ok {
		return v, true, nil
	}
	if c.negative {
		c.mu.RLock()
		e, known := c.m[k]
		c.mu.RUnlock()
		if known && e.del {
			return nil, false, nil
		}
	}
	e, err := s.get(ctx, c.b, c.prefix+k)
	if err != nil {
		return nil, false, err
	}
	if !e.exists {
		if c.negative {
			s.applyCache(c, k, nil, e.rev, true)
		}
		return nil, false, nil
	}
	v, err := c.decode(e.val)
	if err != nil {
		return nil, false, s.corruptErr(c.b.name+" "+c.prefix+k, err)
	}
	s.applyCache(c, k, e.val, e.rev, false)
	return v, true, nil
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
	s.cCanary.negative = true
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
					s.applyCache(c, k, e.Value(), e.Revision(), e.Operation() != jetstream.KeyValuePut)
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

// Watch implements [storage.Cluster]: a KV watcher (updates only) over every key range a
// [storage.Change] names, merged into one goroutine that calls fn until ctx ends. It returns
// once the watchers are established.
func (s *Store) Watch(ctx context.Context, fn func(storage.Change)) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	type src struct {
		b      *bucket
		filter string
		kind   string
		key    func(k string) string
	}
	strip := func(p string) func(string) string {
		return func(k string) string { return dec(strings.TrimPrefix(k, p)) }
	}
	srcs := []src{
		{s.versions, "active.>", storage.ChangeActive, strip("active.")},
		{s.versions, "canary.>", storage.ChangeCanary, strip("canary.")},
		{s.versions, "v.>", storage.ChangeVersion, func(k string) string {
			name, ver, _ := strings.Cut(strings.TrimPrefix(k, "v."), ".")
			return dec(name) + "@" + dec(ver)
		}},
		{s.keys, ">", storage.ChangeAPIKey, strip("")},
		{s.mcp, ">", storage.ChangeMCPServer, strip("")},
		{s.state, "conn.>", storage.ChangeConnection, strip("conn.")},
	}
	wctx, cancel := context.WithCancel(ctx)
	merged := make(chan storage.Change, 256)
	var wg sync.WaitGroup
	for _, sc := range srcs {
		w, err := sc.b.kv.Watch(wctx, sc.filter, jetstream.UpdatesOnly())
		if err != nil {
			cancel()
			wg.Wait()
			return s.netErr("watching "+sc.b.name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case e, ok := <-w.Updates():
					if !ok {
						return
					}
					if e == nil {
						continue
					}
					select {
					case merged <- storage.Change{Kind: sc.kind, Key: sc.key(e.Key())}:
					case <-wctx.Done():
						return
					}
				}
			}
		}()
	}
	go func() {
		for {
			select {
			case <-wctx.Done():
				wg.Wait()
				return
			case c := <-merged:
				fn(c)
			}
		}
	}()
	go func() {
		<-wctx.Done()
		cancel()
	}()
	return nil
}
