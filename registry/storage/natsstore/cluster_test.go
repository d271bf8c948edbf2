package natsstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	bolt "go.etcd.io/bbolt"

	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/boltstore"
)

// Two Store values on one server are two nodes of one namespace.
func twoNodes(t *testing.T, opts *Options) (*Store, *Store) {
	t.Helper()
	ns := newNS(t)
	return ns.open(t, opts), ns.open(t, opts)
}

// Concurrent read-modify-writes of one connection from two nodes lose nothing: each is
// checked by the record's revision and runs again on a conflict.
func TestUpdateConnectionTwoNodesLosesNothing(t *testing.T) {
	a, b := twoNodes(t, nil)
	c := testConnection("shared")
	c.Params = json.RawMessage(`{"n":0}`)
	if err := a.CreateConnection(bg, c); err != nil {
		t.Fatal(err)
	}
	const perWorker, workers = 10, 3
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for _, s := range []*Store{a, b} {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perWorker {
					_, err := s.UpdateConnection(bg, "shared", func(c *Connection) error {
						var p struct{ N int }
						if err := json.Unmarshal(c.Params, &p); err != nil {
							return err
						}
						c.Params = json.RawMessage(fmt.Sprintf(`{"n":%d}`, p.N+1))
						return nil
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		var got Connection
		eventually(t, "both nodes see every increment", func() bool {
			got = must[Connection](t)(s.Connection(bg, "shared"))
			return string(got.Params) == fmt.Sprintf(`{"n":%d}`, 2*workers*perWorker)
		})
		if string(got.Secret) != string(c.Secret) {
			t.Fatalf("secret after the updates = %q", got.Secret)
		}
	}
}

// Of many nodes trying one lease at once exactly one gets it; it holds until released or
// expired, and the holder renews it.
func TestTryLeaseExclusiveAcrossNodes(t *testing.T) {
	clk := newClock()
	a, b := twoNodes(t, &Options{Now: clk.Now})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := range 8 {
		s := []*Store{a, b}[i%2]
		holder := fmt.Sprintf("node%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.TryLease(bg, "poll:src_1", holder, 10*time.Second)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, holder)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("winners %v, want exactly one", winners)
	}
	w := winners[0]
	other := "node-x"
	if ok := must[bool](t)(b.TryLease(bg, "poll:src_1", other, 10*time.Second)); ok {
		t.Fatal("another holder took an unexpired lease")
	}
	clk.Advance(8 * time.Second)
	if ok := must[bool](t)(a.TryLease(bg, "poll:src_1", w, 10*time.Second)); !ok {
		t.Fatal("the holder could not renew")
	}
	clk.Advance(8 * time.Second) // 16 s after the first take, 8 s after the renewal
	if ok := must[bool](t)(b.TryLease(bg, "poll:src_1", other, 10*time.Second)); ok {
		t.Fatal("the renewal did not hold")
	}
	clk.Advance(3 * time.Second)
	if ok := must[bool](t)(b.TryLease(bg, "poll:src_1", other, 10*time.Second)); !ok {
		t.Fatal("an expired lease was not taken over")
	}
	if err := a.ReleaseLease(bg, "poll:src_1", w); err != nil { // not the holder any more: nothing
		t.Fatal(err)
	}
	if ok := must[bool](t)(a.TryLease(bg, "poll:src_1", w, 10*time.Second)); ok {
		t.Fatal("a release by a former holder ended the new holder's lease")
	}
	if err := b.ReleaseLease(bg, "poll:src_1", other); err != nil {
		t.Fatal(err)
	}
	if ok := must[bool](t)(a.TryLease(bg, "poll:src_1", w, 10*time.Second)); !ok {
		t.Fatal("a released lease could not be taken")
	}
	if _, err := a.TryLease(bg, "", "h", time.Second); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("empty lease name: %v", err)
	}
}

func queueSource(t *testing.T, s *Store, subs ...string) {
	t.Helper()
	var list []Subscription
	for _, id := range subs {
		list = append(list, Subscription{ID: id, Delivery: Delivery{Type: "queue"}})
	}
	newSourceWithSubs(t, s, list...)
}

// Two nodes leasing from one queue at once never get the same event, and together lease
// every event once.
func TestLeaseEventsTwoNodesNeverTwice(t *testing.T) {
	a, b := twoNodes(t, nil)
	queueSource(t, a, "sub_q")
	var ids []string
	for i := range 40 {
		ids = append(ids, strconv.Itoa(i))
	}
	if _, err := a.CommitEvents(bg, "src_1", evs(ids...), Origin{}, TriggerLimits{}, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	leased := map[uint64]int{}
	var wg sync.WaitGroup
	for i := range 4 {
		s := []*Store{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, _, err := s.LeaseEvents(bg, "sub_q", 3, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, p := range got {
					leased[p.Entry.Seq]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(leased) != 40 {
		t.Fatalf("%d distinct events leased, want 40", len(leased))
	}
	for seq, n := range leased {
		if n != 1 {
			t.Errorf("event %d leased %d times", seq, n)
		}
	}
	// Acks from the other node remove them.
	var seqs []uint64
	for seq := range leased {
		seqs = append(seqs, seq)
	}
	if n := must[int](t)(b.Ack(bg, "sub_q", seqs)); n != 40 {
		t.Fatalf("acked %d, want 40", n)
	}
	sub, _, err := a.GetSubscription(bg, "sub_q")
	if err != nil || sub.Pending != 0 || sub.Delivered != 40 {
		t.Fatalf("subscription after acks: %+v, %v", sub, err)
	}
}

// CommitEvents from two nodes on one source: no seq is handed out twice, no event is lost, and
// an event id committed on both nodes is stored once.
func TestCommitEventsTwoNodesOneSource(t *testing.T) {
	a, b := twoNodes(t, nil)
	queueSource(t, a, "sub_a", "sub_b")
	const rounds = 12
	var wg sync.WaitGroup
	for n, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// Each node commits its own event and one both commit.
				batch := evs(fmt.Sprintf("own-%d-%d", n, r), fmt.Sprintf("both-%d", r))
				if _, err := s.CommitEvents(bg, "src_1", batch, Origin{}, TriggerLimits{}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	const want = 3 * rounds
	src := must[Source](t)(a.GetSource(bg, "src_1"))
	if src.NextSeq != want+1 || src.Events != want {
		t.Fatalf("source NextSeq %d, Events %d; want %d events", src.NextSeq, src.Events, want)
	}
	for _, sub := range []string{"sub_a", "sub_b"} {
		got, pend, err := b.QueueHead(bg, sub, 1000)
		if err != nil || got.Pending != want || len(pend) != want {
			t.Fatalf("%s: pending %d, queue %d, %v; want %d", sub, got.Pending, len(pend), err, want)
		}
		ids := map[string]bool{}
		for i, p := range pend {
			if p.Entry.Seq != uint64(i+1) || p.Event.Seq != p.Entry.Seq {
				t.Fatalf("%s: entry %d has seq %d (event %d)", sub, i, p.Entry.Seq, p.Event.Seq)
			}
			if ids[p.Event.SourceEventID] {
				t.Fatalf("%s: event id %s stored twice", sub, p.Event.SourceEventID)
			}
			ids[p.Event.SourceEventID] = true
		}
		for r := range rounds {
			for _, id := range []string{fmt.Sprintf("own-0-%d", r), fmt.Sprintf("own-1-%d", r), fmt.Sprintf("both-%d", r)} {
				if !ids[id] {
					t.Fatalf("%s: event %s lost", sub, id)
				}
			}
		}
	}
}

// A node that dies in the middle of a commit (part of its batch published, no commit
// message) leaves nothing of it: the batch is not applied, readers see the state before it,
// and the next commit gets the same seq numbers and completes.
func TestCommitEventsCrashMidBatch(t *testing.T) {
	s := openTest(t, nil)
	queueSource(t, s, "sub_q")
	cursor := "c1"
	if _, err := s.CommitEvents(bg, "src_1", evs("a"), Origin{}, TriggerLimits{}, func(src *Source) { src.Cursor = &cursor }); err != nil {
		t.Fatal(err)
	}
	st := must[*jsStreamState](t)(streamInfo(s, s.trig.stream))
	crash := func(bucket string) bool { return bucket == s.trig.name }
	s.crashMidBatch.Store(&crash)
	next := "c2"
	_, err := s.CommitEvents(bg, "src_1", evs("b", "c", "d"), Origin{}, TriggerLimits{}, func(src *Source) { src.Cursor = &next })
	if !errors.Is(err, errInjected) {
		t.Fatalf("commit with an injected crash: %v", err)
	}
	s.crashMidBatch.Store(nil)
	// A second node (a fresh connection) sees the committed state only.
	other := reopen(t, s, nil)
	src := must[Source](t)(other.GetSource(bg, "src_1"))
	if *src.Cursor != "c1" || src.NextSeq != 2 || src.Events != 1 {
		t.Fatalf("after the crash: cursor %s, NextSeq %d, Events %d; want the state before it", *src.Cursor, src.NextSeq, src.Events)
	}
	sub, pend, err := other.QueueHead(bg, "sub_q", 10)
	if err != nil || len(pend) != 1 || sub.Pending != 1 {
		t.Fatalf("after the crash: queue %d entries, pending %d, %v", len(pend), sub.Pending, err)
	}
	if after := must[*jsStreamState](t)(streamInfo(other, other.trig.stream)); after.LastSeq != st.LastSeq {
		t.Fatalf("the stream grew from seq %d to %d: part of the batch was stored", st.LastSeq, after.LastSeq)
	}
	// The poller commits again: the same events get seqs 2 to 4.
	res, err := other.CommitEvents(bg, "src_1", evs("b", "c", "d"), Origin{}, TriggerLimits{}, func(src *Source) { src.Cursor = &next })
	if err != nil || res.New != 3 {
		t.Fatalf("commit after the crash: %+v, %v", res, err)
	}
	_, pend, _ = other.QueueHead(bg, "sub_q", 10)
	if len(pend) != 4 || pend[3].Entry.Seq != 4 || pend[3].Event.SourceEventID != "d" {
		t.Fatalf("queue after the second commit: %+v", pend)
	}
}

type jsStreamState struct{ LastSeq, Msgs uint64 }

func streamInfo(s *Store, stream string) (*jsStreamState, error) {
	st, err := s.js.Stream(bg, stream)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(bg)
	if err != nil {
		return nil, err
	}
	return &jsStreamState{LastSeq: info.State.LastSeq, Msgs: info.State.Msgs}, nil
}

// Watch on one node reports the changes every node makes after it returns, and none made
// before.
func TestWatchReportsChangesOfEveryNode(t *testing.T) {
	a, b := twoNodes(t, nil)
	digest := must[string](t)(b.PutBlob(bg, []byte("wasm")))
	if _, err := b.PutVersion(bg, Version{Name: "gh", Version: "1.0.0", Digest: digest}); err != nil {
		t.Fatal(err)
	}
	// Writes that are still on their way to a's watchers when Watch is called (they lag, as
	// on a loaded node): they were committed before it, so they are not reported.
	a.holdWatchers.Lock()
	for i := range 20 {
		if err := b.CreateAPIKey(bg, APIKey{ID: fmt.Sprintf("key_before_%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := contextWithCancel()
	defer cancel()
	var mu sync.Mutex
	var got []storage.Change
	if err := a.Watch(ctx, func(c storage.Change) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	a.holdWatchers.Unlock()
	steps := []func() error{
		func() error {
			_, err := b.PutVersion(bg, Version{Name: "gh", Version: "1.1.0", Digest: digest})
			return err
		},
		func() error { return b.SetActive(bg, "gh", "1.1.0") },
		func() error { return b.SetCanary(bg, "gh", &storage.Canary{Version: "1.0.0", Percent: 10}) },
		func() error { return b.CreateAPIKey(bg, APIKey{ID: "key_1"}) },
		func() error { return b.DeleteAPIKey(bg, "key_1") },
		func() error { return b.CreateMCPServer(bg, MCPServer{Name: "m1"}) },
		func() error { return b.CreateConnection(bg, testConnection("conn.1")) },
		func() error { return a.DeleteConnection(bg, "conn.1") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := []storage.Change{
		{Kind: storage.ChangeVersion, Key: "gh@1.1.0"}, {Kind: storage.ChangeActive, Key: "gh"},
		{Kind: storage.ChangeCanary, Key: "gh"}, {Kind: storage.ChangeAPIKey, Key: "key_1"},
		{Kind: storage.ChangeAPIKey, Key: "key_1"}, {Kind: storage.ChangeMCPServer, Key: "m1"},
		{Kind: storage.ChangeConnection, Key: "conn.1"}, {Kind: storage.ChangeConnection, Key: "conn.1"},
	}
	eventually(t, "every change reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("change %+v not reported; got %+v", w, got)
		}
	}
	for _, c := range got {
		if strings.HasPrefix(c.Key, "key_before") || c.Key == "gh@1.0.0" {
			t.Errorf("a change from before Watch was reported: %+v", c)
		}
	}
}

// The records the request path reads are served from memory: a write on another node is read
// at once (a key the copy does not hold is read from JetStream), a delete elsewhere reaches
// the copy through the watcher, and once warm the reads answer with NATS down.
func TestCachedReadsAcrossNodes(t *testing.T) {
	ns := newNS(t)
	a, b := ns.open(t, nil), ns.open(t, nil)
	if err := b.CreateAPIKey(bg, APIKey{ID: "key_1", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	if k, err := a.APIKey(bg, "key_1"); err != nil || k.Role != "admin" { // right after the write: no wait
		t.Fatalf("a key written on another node: %+v, %v", k, err)
	}
	if err := b.CreateConnection(bg, testConnection("c1")); err != nil {
		t.Fatal(err)
	}
	must[Connection](t)(a.Connection(bg, "c1"))
	digest := must[string](t)(b.PutBlob(bg, []byte("wasm")))
	if _, err := b.PutVersion(bg, Version{Name: "gh", Version: "1.0.0", Digest: digest}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetActive(bg, "gh", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Active(bg, "gh"); err != nil || v != "1.0.0" {
		t.Fatalf("active set on another node: %q, %v", v, err)
	}
	if err := b.DeleteAPIKey(bg, "key_1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a revocation on another node reaches this one", func() bool {
		_, err := a.APIKey(bg, "key_1")
		return errors.Is(err, storage.ErrNotFound)
	})
	if err := a.CreateAPIKey(bg, APIKey{ID: "key_2"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b's copy holds key_2", func() bool { return len(must[[]APIKey](t)(b.APIKeys(bg))) == 1 })

	// NATS goes away: the warm reads still answer, from memory.
	srv := natsServerOf(t, ns)
	srv.Shutdown()
	srv.WaitForShutdown()
	if _, err := a.APIKey(bg, "key_2"); err != nil {
		t.Fatalf("a warm key read with NATS down: %v", err)
	}
	if _, err := a.Connection(bg, "c1"); err != nil {
		t.Fatalf("a warm connection read with NATS down: %v", err)
	}
	if v, err := a.Active(bg, "gh"); err != nil || v != "1.0.0" {
		t.Fatalf("a warm active read with NATS down: %q, %v", v, err)
	}
	if c, err := a.Canary(bg, "gh"); err != nil || c != nil {
		t.Fatalf("a canary read with NATS down: %v, %v", c, err)
	}
}

// natsServerOf finds the in-process server of a namespace (the one newNS started).
func natsServerOf(t *testing.T, ns testNS) *server.Server {
	t.Helper()
	srv, ok := servers.Load(ns.url)
	if !ok {
		t.Fatalf("no server for %s", ns.url)
	}
	return srv.(*server.Server)
}

// While NATS is down, Health names it and writes say the store is unreachable; when it comes
// back, the store recovers by itself. After Close, every method fails with ErrClosed.
func TestHealthUnreachableAndRecovery(t *testing.T) {
	ns := newNS(t)
	s := ns.open(t, nil) // 5 s per request: a write must fail well before, not wait for NATS
	if err := s.Health(bg); err != nil {
		t.Fatalf("Health: %v", err)
	}
	srv := natsServerOf(t, ns)
	o, _ := restartOpts.Load(ns.url)
	opts := o.(*server.Options)
	srv.Shutdown()
	srv.WaitForShutdown()
	eventually(t, "Health reports NATS down", func() bool {
		err := s.Health(bg)
		return err != nil && strings.Contains(err.Error(), ns.url)
	})
	start := time.Now()
	err := s.SetMeta(bg, "k", []byte("v"))
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("a write with NATS down: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a write with NATS down took %v to fail", d)
	}
	if errors.Is(err, storage.ErrClosed) {
		t.Fatalf("a write with NATS down says closed: %v", err)
	}
	restarted, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go restarted.Start()
	if !restarted.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not restart")
	}
	t.Cleanup(func() { restarted.Shutdown(); restarted.WaitForShutdown() })
	eventually(t, "Health recovers", func() bool { return s.Health(bg) == nil })
	eventually(t, "writes work again", func() bool { return s.SetMeta(bg, "k", []byte("v")) == nil })
	if v, err := s.Meta(bg, "k"); err != nil || string(v) != "v" {
		t.Fatalf("meta after recovery: %q, %v", v, err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Health":     s.Health(bg),
		"SetMeta":    s.SetMeta(bg, "k", nil),
		"APIKey":     errOf2(s.APIKey(bg, "x")),
		"Connection": errOf2(s.Connection(bg, "c")),
		"TryLease":   errOf2(s.TryLease(bg, "l", "h", time.Second)),
		"Watch":      s.Watch(bg, func(storage.Change) {}),
		"Audit":      errOf3(s.Audit(bg, AuditQuery{})),
	} {
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func errOf2[T any](_ T, err error) error         { return err }
func errOf3[T, U any](_ T, _ U, err error) error { return err }

// Heartbeats list the live nodes; an expired heartbeat and a node that left are not listed.
func TestHeartbeatNodes(t *testing.T) {
	clk := newClock()
	a, b := twoNodes(t, &Options{Now: clk.Now})
	if err := a.Heartbeat(bg, storage.Node{Name: "n2", Address: "127.0.0.1:2", Routes: map[string]string{"gh": "1.0.0"}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(bg, storage.Node{Name: "n1", Address: "127.0.0.1:1"}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	nodes := must[[]storage.Node](t)(a.Nodes(bg))
	if len(nodes) != 2 || nodes[0].Name != "n1" || nodes[1].Routes["gh"] != "1.0.0" || !nodes[1].LastSeenAt.Equal(clk.Now()) {
		t.Fatalf("nodes = %+v", nodes)
	}
	clk.Advance(11 * time.Second)
	if nodes := must[[]storage.Node](t)(b.Nodes(bg)); len(nodes) != 1 || nodes[0].Name != "n1" {
		t.Fatalf("after n2's heartbeat expired: %+v", nodes)
	}
	if err := a.Leave(bg, "n1"); err != nil {
		t.Fatal(err)
	}
	if nodes := must[[]storage.Node](t)(b.Nodes(bg)); len(nodes) != 0 {
		t.Fatalf("after n1 left: %+v", nodes)
	}
}

// A record that does not decode is counted and makes Health fail.
func TestCorruptRecordCounted(t *testing.T) {
	s := openTest(t, nil)
	if _, err := s.keys.kv.Put(bg, "key_bad", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watcher counts the damaged record", func() bool { return s.Corruptions() > 0 })
	eventually(t, "Health reports it", func() bool { return errors.Is(s.Health(bg), storage.ErrCorrupt) })
}

// A node started with another master key file than the namespace's secrets were sealed with
// is refused at Open, naming the key file.
func TestOpenRefusesAnotherKeyFile(t *testing.T) {
	ns := newNS(t)
	s := ns.open(t, nil)
	if err := s.CreateConnection(bg, testConnection("c1")); err != nil {
		t.Fatal(err)
	}
	other := ns
	other.keyFile = ns.keyFile + ".other"
	_, err := Open(bg, Options{URLs: ns.url, Prefix: ns.prefix, MasterKeyFile: other.keyFile, Logger: quietLog})
	if !errors.Is(err, storage.ErrUnknownKey) || !strings.Contains(err.Error(), other.keyFile) {
		t.Fatalf("Open with another key file: %v", err)
	}
	// The same file opens.
	ns.open(t, nil)
}

// A connection record written by bbolt, copied as it is into JetStream, opens here with the
// same key file: the record is the same document, sealed with the same additional data.
func TestConnectionRecordFromBboltOpens(t *testing.T) {
	ns := newNS(t)
	dir := t.TempDir()
	bs, err := boltstore.Open(filepath.Join(dir, "plugboard.db"), &boltstore.Options{MasterKeyFile: ns.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	c := testConnection("moved")
	if err := bs.CreateConnection(bg, c); err != nil {
		t.Fatal(err)
	}
	bs.Close()
	db, err := bolt.Open(filepath.Join(dir, "plugboard.db"), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	db.View(func(tx *bolt.Tx) error {
		data = append(data, tx.Bucket([]byte("connections")).Get([]byte("moved"))...)
		return nil
	})
	db.Close()
	if len(data) == 0 {
		t.Fatal("no record in the bbolt file")
	}
	s := ns.open(t, nil)
	if _, err := s.state.kv.Put(bg, connKey("moved"), data); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the copied record reaches the cache", func() bool {
		_, ok := s.cConns.lookup(enc("moved"))
		return ok
	})
	got, err := s.Connection(bg, "moved")
	if err != nil {
		t.Fatal(err)
	}
	sameConnection(t, got, must[Connection](t)(func() (Connection, error) {
		bs, err := boltstore.Open(filepath.Join(dir, "plugboard.db"), &boltstore.Options{MasterKeyFile: ns.keyFile})
		if err != nil {
			return Connection{}, err
		}
		defer bs.Close()
		return bs.Connection(bg, "moved")
	}()))
}
