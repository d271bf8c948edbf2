package storagetest

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// clusterCases are the promises of [storage.Cluster]: leases, heartbeats and watches, seen from
// one store (several nodes of one backend are that backend's own tests).
var clusterCases = []testCase{
	{"a lease is exclusive, renewed by its holder and released", func(t *testing.T, st storage.Store) {
		if got := must[bool](t, "TryLease a")(st.TryLease(ctx(t), "poll/src_1", "node-a", time.Minute)); !got {
			t.Fatal("node-a did not get a free lease")
		}
		if got := must[bool](t, "TryLease b")(st.TryLease(ctx(t), "poll/src_1", "node-b", time.Minute)); got {
			t.Fatal("node-b got a lease node-a holds")
		}
		if got := must[bool](t, "renew a")(st.TryLease(ctx(t), "poll/src_1", "node-a", time.Minute)); !got {
			t.Fatal("node-a could not renew its lease")
		}
		if got := must[bool](t, "TryLease b other")(st.TryLease(ctx(t), "poll/src_2", "node-b", time.Minute)); !got {
			t.Fatal("node-b did not get another, free lease")
		}
		ok(t, st.ReleaseLease(ctx(t), "poll/src_1", "node-b"), "ReleaseLease by a non-holder")
		if got := must[bool](t, "TryLease b")(st.TryLease(ctx(t), "poll/src_1", "node-b", time.Minute)); got {
			t.Fatal("a release by a node that does not hold the lease ended it")
		}
		ok(t, st.ReleaseLease(ctx(t), "poll/src_1", "node-a"), "ReleaseLease")
		if got := must[bool](t, "TryLease b")(st.TryLease(ctx(t), "poll/src_1", "node-b", time.Minute)); !got {
			t.Fatal("node-b did not get the lease node-a released")
		}
		ok(t, st.ReleaseLease(ctx(t), "poll/never", "node-a"), "ReleaseLease of a lease nobody holds")
	}},
	{"another holder takes a lease over once it expires", func(t *testing.T, st storage.Store) {
		if got := must[bool](t, "TryLease a")(st.TryLease(ctx(t), "timers", "node-a", shortTTL)); !got {
			t.Fatal("node-a did not get a free lease")
		}
		if got := must[bool](t, "TryLease b")(st.TryLease(ctx(t), "timers", "node-b", time.Minute)); got {
			t.Fatal("node-b got the lease before it expired")
		}
		waitFor(t, expiryWait, "node-b takes the expired lease over", func() (bool, string) {
			got, err := st.TryLease(ctx(t), "timers", "node-b", time.Minute)
			ok(t, err, "TryLease")
			return got, "refused"
		})
		if got := must[bool](t, "TryLease a")(st.TryLease(ctx(t), "timers", "node-a", shortTTL)); got {
			t.Fatal("node-a got back the lease node-b took over")
		}
	}},
	{"concurrent holders: exactly one gets a lease", func(t *testing.T, st storage.Store) {
		var won atomic.Int32
		var failed atomic.Value
		parallel(8, func(i int) {
			got, err := st.TryLease(ctx(t), "oauth/c1", fmt.Sprintf("node-%d", i), time.Minute)
			if err != nil {
				failed.Store(err)
			}
			if got {
				won.Add(1)
			}
		})
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("TryLease: %v", err)
		}
		if won.Load() != 1 {
			t.Fatalf("%d holders got the lease, want exactly 1", won.Load())
		}
	}},
	{"Heartbeat and Nodes: expiry and Leave", func(t *testing.T, st storage.Store) {
		if nodes := must[[]storage.Node](t, "Nodes")(st.Nodes(ctx(t))); len(nodes) != 0 {
			t.Fatalf("Nodes of a new store = %+v", nodes)
		}
		started := time.Now().UTC().Truncate(time.Second)
		b := storage.Node{Name: "node-b", Address: "10.0.0.2:8080", StartedAt: started, Version: "v1.2.3", Sources: 3, Routes: map[string]string{"github": "1.1.0"}}
		ok(t, st.Heartbeat(ctx(t), b, time.Minute), "Heartbeat node-b")
		ok(t, st.Heartbeat(ctx(t), storage.Node{Name: "node-a", Address: "10.0.0.1:8080", StartedAt: started}, time.Minute), "Heartbeat node-a")
		ok(t, st.Heartbeat(ctx(t), storage.Node{Name: "node-c", Address: "10.0.0.3:8080", StartedAt: started}, shortTTL), "Heartbeat node-c")
		nodes := must[[]storage.Node](t, "Nodes")(st.Nodes(ctx(t)))
		if names := nodeNames(nodes); !slices.Equal(names, []string{"node-a", "node-b", "node-c"}) {
			t.Fatalf("Nodes = %v, want [node-a node-b node-c] (sorted by name)", names)
		}
		got := nodes[1]
		if got.Address != b.Address || !got.StartedAt.Equal(started) || got.Version != b.Version || got.Sources != 3 || !maps.Equal(got.Routes, b.Routes) {
			t.Fatalf("node-b = %+v, want %+v", got, b)
		}
		if got.LastSeenAt.IsZero() || time.Since(got.LastSeenAt) > time.Minute {
			t.Fatalf("LastSeenAt = %v, want the heartbeat's time", got.LastSeenAt)
		}
		waitFor(t, expiryWait, "node-c's heartbeat expires", func() (bool, string) {
			names := nodeNames(must[[]storage.Node](t, "Nodes")(st.Nodes(ctx(t))))
			return slices.Equal(names, []string{"node-a", "node-b"}), fmt.Sprint(names)
		})
		b.Sources = 5
		ok(t, st.Heartbeat(ctx(t), b, time.Minute), "a second Heartbeat")
		nodes = must[[]storage.Node](t, "Nodes")(st.Nodes(ctx(t)))
		if len(nodes) != 2 || nodes[1].Sources != 5 {
			t.Fatalf("after a second heartbeat: %+v, want node-b with 5 sources", nodes)
		}
		ok(t, st.Leave(ctx(t), "node-a"), "Leave")
		if names := nodeNames(must[[]storage.Node](t, "Nodes")(st.Nodes(ctx(t)))); !slices.Equal(names, []string{"node-b"}) {
			t.Fatalf("Nodes after node-a left = %v", names)
		}
	}},
	{"Watch reports every change kind made after it returns", func(t *testing.T, st storage.Store) {
		// Changes before the watch need not be reported; make some so a backend that replays
		// history is still correct, but do not wait for them.
		putVersion(t, st, "github", "1.0.0", []byte("v1"))
		w := startWatch(t, st)
		putVersion(t, st, "github", "1.1.0", []byte("v1.1"))
		w.wait(t, storage.Change{Kind: storage.ChangeVersion, Key: "github@1.1.0"})
		ok(t, st.SetActive(ctx(t), "github", "1.0.0"), "SetActive")
		w.wait(t, storage.Change{Kind: storage.ChangeActive, Key: "github"})
		ok(t, st.SetCanary(ctx(t), "github", &storage.Canary{Version: "1.1.0", Percent: 10}), "SetCanary")
		w.wait(t, storage.Change{Kind: storage.ChangeCanary, Key: "github"})
		ok(t, st.SetCanary(ctx(t), "github", nil), "SetCanary nil")
		w.waitN(t, storage.Change{Kind: storage.ChangeCanary, Key: "github"}, 2)
		ok(t, st.DeleteVersion(ctx(t), "github", "1.1.0"), "DeleteVersion")
		w.waitN(t, storage.Change{Kind: storage.ChangeVersion, Key: "github@1.1.0"}, 2)

		ok(t, st.CreateAPIKey(ctx(t), storage.APIKey{ID: "key_w", Role: "reader"}), "CreateAPIKey")
		w.wait(t, storage.Change{Kind: storage.ChangeAPIKey, Key: "key_w"})
		ok(t, st.DeleteAPIKey(ctx(t), "key_w"), "DeleteAPIKey")
		w.waitN(t, storage.Change{Kind: storage.ChangeAPIKey, Key: "key_w"}, 2)

		ok(t, st.CreateMCPServer(ctx(t), storage.MCPServer{Name: "gh", Connector: "github"}), "CreateMCPServer")
		w.wait(t, storage.Change{Kind: storage.ChangeMCPServer, Key: "gh"})
		_, err := st.UpdateMCPServer(ctx(t), "gh", func(m *storage.MCPServer) error { m.Enabled = true; return nil })
		ok(t, err, "UpdateMCPServer")
		w.waitN(t, storage.Change{Kind: storage.ChangeMCPServer, Key: "gh"}, 2)
		ok(t, st.DeleteMCPServer(ctx(t), "gh"), "DeleteMCPServer")
		w.waitN(t, storage.Change{Kind: storage.ChangeMCPServer, Key: "gh"}, 3)

		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github")), "CreateConnection")
		w.wait(t, storage.Change{Kind: storage.ChangeConnection, Key: "c1"})
		_, err = st.UpdateConnection(ctx(t), "c1", func(c *storage.Connection) error { c.Status = "needs_reauth"; return nil })
		ok(t, err, "UpdateConnection")
		w.waitN(t, storage.Change{Kind: storage.ChangeConnection, Key: "c1"}, 2)
		ok(t, st.DeleteConnection(ctx(t), "c1"), "DeleteConnection")
		w.waitN(t, storage.Change{Kind: storage.ChangeConnection, Key: "c1"}, 3)
		w.checkOneGoroutine(t)
	}},
	{"Watch reports one record's changes in commit order", func(t *testing.T, st storage.Store) {
		for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
			putVersion(t, st, "github", v, []byte(v))
		}
		w := startWatch(t, st)
		var seen []string
		var mu sync.Mutex
		// A second watch reads the record again at each change, as the registry does: the
		// last value it reads must be the last one written.
		wctx, cancel := contextWithCancel(t)
		defer cancel()
		ok(t, st.Watch(wctx, func(c storage.Change) {
			if c.Kind != storage.ChangeActive {
				return
			}
			v, err := st.Active(wctx, c.Key)
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, v)
			mu.Unlock()
		}), "Watch")
		for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.0.0"} {
			ok(t, st.SetActive(ctx(t), "github", v), "SetActive %s", v)
		}
		w.waitN(t, storage.Change{Kind: storage.ChangeActive, Key: "github"}, 4)
		waitFor(t, 5*time.Second, "the re-reading watcher sees the last value", func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) > 0 && seen[len(seen)-1] == "1.0.0", fmt.Sprint(seen)
		})
	}},
	{"a watcher that falls behind catches up", func(t *testing.T, st storage.Store) {
		release := make(chan struct{})
		var mu sync.Mutex
		got := map[string]bool{}
		wctx, cancel := contextWithCancel(t)
		defer cancel()
		ok(t, st.Watch(wctx, func(c storage.Change) {
			<-release // a slow watcher: nothing is read until every change is made
			mu.Lock()
			got[c.Kind+"/"+c.Key] = true
			mu.Unlock()
		}), "Watch")
		const n = 1200 // more than a small fixed buffer holds
		for i := range n {
			ok(t, st.CreateAPIKey(ctx(t), storage.APIKey{ID: fmt.Sprintf("key_%04d", i), Role: "reader"}), "CreateAPIKey %d", i)
		}
		close(release)
		waitFor(t, 10*time.Second, "the slow watcher sees every change", func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			for i := range n {
				if !got[fmt.Sprintf("%s/key_%04d", storage.ChangeAPIKey, i)] {
					return false, fmt.Sprintf("%d of %d seen; key_%04d missing", len(got), n, i)
				}
			}
			return true, ""
		})
	}},
}

func nodeNames(ns []storage.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// watch records what one Watch reports.
type watch struct {
	mu       sync.Mutex
	seen     []storage.Change
	inFn     atomic.Int32
	overlaps atomic.Int32
}

// startWatch starts a Watch that ends with t.
func startWatch(t *testing.T, st storage.Store) *watch {
	t.Helper()
	w := &watch{}
	ok(t, st.Watch(ctx(t), func(c storage.Change) {
		if w.inFn.Add(1) > 1 {
			w.overlaps.Add(1)
		}
		defer w.inFn.Add(-1)
		w.mu.Lock()
		w.seen = append(w.seen, c)
		w.mu.Unlock()
	}), "Watch")
	return w
}

func (w *watch) count(c storage.Change) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.seen {
		if s == c {
			n++
		}
	}
	return n
}

// wait waits until c was reported at least once.
func (w *watch) wait(t *testing.T, c storage.Change) { t.Helper(); w.waitN(t, c, 1) }

// waitN waits until c was reported at least n times: n changes to one record are n reports
// (a watcher may see a change twice, never miss one).
func (w *watch) waitN(t *testing.T, c storage.Change, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("Watch reports %s %q %d times", c.Kind, c.Key, n), func() (bool, string) {
		got := w.count(c)
		return got >= n, fmt.Sprintf("%d times", got)
	})
}

// checkOneGoroutine fails t when fn ever ran twice at once.
func (w *watch) checkOneGoroutine(t *testing.T) {
	t.Helper()
	if n := w.overlaps.Load(); n > 0 {
		t.Fatalf("Watch ran fn concurrently %d times; it must call fn from one goroutine", n)
	}
}
