package natsstore

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/boltstore"
)

// A source exported from bbolt imports with its log, ledger, queues, counters and secrets;
// importing it twice leaves one copy, and the source works as if it had been created here.
func TestImportSourceFromBbolt(t *testing.T) {
	ns := newNS(t)
	bs, err := boltstore.Open(filepath.Join(t.TempDir(), "plugboard.db"), &boltstore.Options{MasterKeyFile: ns.keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	src := Source{ID: "src_1", Key: "k1", Kind: SourceWebhook, Status: SourceActive, HookToken: "tok", TriggerRef: TriggerRef{Connector: "c", Trigger: "tr"}}
	first := Subscription{ID: "sub_a", SourceID: "src_1", Delivery: Delivery{Type: "queue"}}
	if err := bs.CreateSource(bg, src, []byte("source-secret"), &first, []byte("whsec_a")); err != nil {
		t.Fatal(err)
	}
	if err := bs.AddSubscription(bg, Subscription{ID: "sub_b", SourceID: "src_1"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	cursor := "c9"
	if _, err := bs.CommitEvents(bg, "src_1", evs("e1", "e2", "e3"), Origin{}, TriggerLimits{}, func(s *Source) { s.Cursor = &cursor }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bs.LeaseEvents(bg, "sub_a", 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Ack(bg, "sub_b", []uint64{1, 2}); err != nil {
		t.Fatal(err)
	}
	var dumps []storage.SourceDump
	if err := bs.ExportSources(bg, func(d storage.SourceDump) error { dumps = append(dumps, d); return nil }); err != nil {
		t.Fatal(err)
	}
	s := ns.open(t, nil)
	for range 2 {
		for _, d := range dumps {
			if err := s.ImportSource(bg, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if srcs := must[[]Source](t)(s.Sources(bg)); len(srcs) != 1 || *srcs[0].Cursor != "c9" || srcs[0].NextSeq != 4 || srcs[0].Events != 3 {
		t.Fatalf("sources after two imports: %+v", srcs)
	}
	if got := must[Source](t)(s.SourceByHookToken(bg, "tok")); got.ID != "src_1" {
		t.Fatalf("hook token: %+v", got)
	}
	for kind, want := range map[string]string{"src:src_1": "source-secret", "sub:sub_a": "whsec_a"} {
		k, id := kind[:3], kind[4:]
		if got, err := s.TriggerSecret(bg, k, id); err != nil || string(got) != want {
			t.Fatalf("secret %s: %q, %v", kind, got, err)
		}
	}
	subA, pendA := must2(t)(s.QueueHead(bg, "sub_a", 10))
	if len(pendA) != 3 || subA.Pending != 3 || pendA[0].Entry.Attempts != 1 || pendA[0].Entry.LeaseUntil.IsZero() {
		t.Fatalf("sub_a: pending %d, queue %+v", subA.Pending, pendA)
	}
	subB, pendB := must2(t)(s.QueueHead(bg, "sub_b", 10))
	if len(pendB) != 1 || pendB[0].Entry.Seq != 3 || subB.Delivered != 2 {
		t.Fatalf("sub_b: %+v, queue %+v", subB, pendB)
	}
	// The ledger came along: e2 again is no new event; e4 gets seq 4 on both queues.
	res, err := s.CommitEvents(bg, "src_1", evs("e2", "e4"), Origin{}, TriggerLimits{}, nil)
	if err != nil || res.New != 1 {
		t.Fatalf("commit after import: %+v, %v", res, err)
	}
	_, pendB = must2(t)(s.QueueHead(bg, "sub_b", 10))
	if len(pendB) != 2 || pendB[1].Entry.Seq != 4 {
		t.Fatalf("sub_b after a commit: %+v", pendB)
	}
	if _, _, err := s.DeleteSubscription(bg, "sub_a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DeleteSubscription(bg, "sub_b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSource(bg, "src_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSource(bg, "src_1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func must2(t *testing.T) func(Subscription, []Pending, error) (Subscription, []Pending) {
	return func(s Subscription, p []Pending, err error) (Subscription, []Pending) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s, p
	}
}

// Reads marked WithFresh go to JetStream: they see a write made behind the watcher's back at
// once.
func TestFreshReadsBypassTheCopy(t *testing.T) {
	s := openTest(t, nil)
	if err := s.CreateConnection(bg, testConnection("c1")); err != nil {
		t.Fatal(err)
	}
	rec := rawRecord(t, s, "c1")
	rec.Status = "refreshed"
	s.stop() // stop the watchers: the copy now only changes by this node's own writes
	s.watchers.Wait()
	if _, err := s.state.kv.Put(bg, connKey("c1"), must[[]byte](t)(jsonMarshal(rec))); err != nil {
		t.Fatal(err)
	}
	if c := must[Connection](t)(s.Connection(bg, "c1")); c.Status != "ready" {
		t.Fatalf("the copy changed without a watcher: %q", c.Status)
	}
	if c := must[Connection](t)(s.Connection(storage.WithFresh(bg), "c1")); c.Status != "refreshed" {
		t.Fatalf("a fresh read: %q", c.Status)
	}
	if cs := must[[]Connection](t)(s.Connections(storage.WithFresh(bg))); len(cs) != 1 || cs[0].Status != "refreshed" {
		t.Fatalf("a fresh list: %+v", cs)
	}
}
