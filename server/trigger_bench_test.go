package server

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTriggerFanOut measures events per second from one poll source fanned out to 10 push
// subscribers on loopback: b.N items appear upstream at once, and the clock stops when every
// subscriber has acknowledged every item (2xx). It includes the wait for the next poll (the
// interval is 1 s), the polls (1,000 events a page), the commits, and 10 ordered push workers
// signing and POSTing each event. Run: go test -run '^$' -bench TriggerFanOut -benchtime 5000x ./server
func BenchmarkTriggerFanOut(b *testing.B) {
	const subscribers = 10
	f := newFeed(b)
	ts := triggerServer(b, f, nil)
	var delivered atomic.Int64
	for range subscribers {
		rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			delivered.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}))
		b.Cleanup(rc.Close)
		ts.subscribe("items", map[string]any{"page_size": 1000}, map[string]any{"type": "webhook", "url": rc.URL})
	}
	b.ResetTimer()
	start := time.Now()
	f.add(b.N)
	want := int64(b.N * subscribers)
	for delivered.Load() < want {
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("%d of %d deliveries after 10 minutes", delivered.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	b.ReportMetric(float64(want)/el.Seconds(), "deliveries/s")
}
