package natsstore

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/boltstore"
)

// The benchmarks run the same operations on both backends in one run: warm reads of what the
// request path needs (served from memory here, from the bbolt file there) and CommitEvents (a
// JetStream atomic batch here, one fsynced transaction there).

func benchStores(b *testing.B) map[string]storage.Store {
	b.Helper()
	bs, err := boltstore.Open(filepath.Join(b.TempDir(), "plugboard.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bs.Close() })
	return map[string]storage.Store{"bbolt": bs, "nats": openTest(b, nil)}
}

// BenchmarkWarmReads measures the reads every action call makes: its API key, its connection
// (secret opened) and the connector's active version.
func BenchmarkWarmReads(b *testing.B) {
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			if err := s.CreateAPIKey(bg, APIKey{ID: "key_1", Role: "invoker"}); err != nil {
				b.Fatal(err)
			}
			if err := s.CreateConnection(bg, testConnection("gh-main")); err != nil {
				b.Fatal(err)
			}
			d, err := s.PutBlob(bg, []byte("wasm"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.PutVersion(bg, Version{Name: "github", Version: "1.0.0", Digest: d}); err != nil {
				b.Fatal(err)
			}
			if err := s.SetActive(bg, "github", "1.0.0"); err != nil {
				b.Fatal(err)
			}
			b.Run("APIKey", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.APIKey(bg, "key_1"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("Connection", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.Connection(bg, "gh-main"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("Active", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.Active(bg, "github"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkCommitEvents measures one poll's commit: 5 new events, 2 subscriptions, the cursor.
func BenchmarkCommitEvents(b *testing.B) {
	for name, s := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			src := Source{ID: "src_1", Key: "k1", Kind: SourcePoll, Status: SourceActive, TriggerRef: TriggerRef{Connector: "c", Trigger: "t"}}
			sub := Subscription{ID: "sub_a", SourceID: "src_1", Delivery: Delivery{Type: "queue"}}
			if err := s.CreateSource(bg, src, nil, &sub, nil); err != nil {
				b.Fatal(err)
			}
			if err := s.AddSubscription(bg, Subscription{ID: "sub_b", SourceID: "src_1", Delivery: Delivery{Type: "queue"}}, nil, nil); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			n := 0
			for i := 0; b.Loop(); i++ {
				ids := make([]string, 5)
				for j := range ids {
					ids[j] = fmt.Sprintf("e%d-%d", i, j)
				}
				cursor := fmt.Sprint(i)
				if _, err := s.CommitEvents(bg, "src_1", evs(ids...), Origin{}, TriggerLimits{MaxEvents: 1000}, func(s *Source) { s.Cursor = &cursor }); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "commits/s")
		})
	}
}
