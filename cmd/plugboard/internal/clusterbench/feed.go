package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// feed is the trig plugin's upstream (plugins/testdata/trig): GET /items?latest=1 answers
// {"latest": N}; GET /items?after=N&limit=K answers {"items": [{"n", "id", "type", "time",
// "data"}...], "more": bool}. The plugin's cursor is the highest n it saw.
type feed struct {
	srv *http.Server
	url string

	mu    sync.Mutex
	times []time.Time // production time of item n at index n-1
}

func startFeed() (*feed, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &feed{url: "http://" + l.Addr().String()}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(l)
	return f, nil
}

// produce appends an item every interval until the returned stop is called (idempotent).
func (f *feed) produce(every time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tk.C:
				f.mu.Lock()
				f.times = append(f.times, time.Now())
				f.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}

// count is how many items exist.
func (f *feed) count() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.times))
}

// firstAfter is the number of the first item produced after at and its production time,
// waiting for it to exist.
func (f *feed) firstAfter(at time.Time) (int64, time.Time) {
	for {
		f.mu.Lock()
		i, _ := slices.BinarySearchFunc(f.times, at, func(a, b time.Time) int { return a.Compare(b) })
		if i < len(f.times) {
			t := f.times[i]
			f.mu.Unlock()
			return int64(i + 1), t
		}
		f.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *feed) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/items" && q.Get("latest") != "":
		json.NewEncoder(w).Encode(map[string]int64{"latest": int64(len(f.times))})
	case r.URL.Path == "/items":
		after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
		limit, _ := strconv.Atoi(q.Get("limit"))
		type item struct {
			N    int64           `json:"n"`
			ID   string          `json:"id"`
			Type string          `json:"type"`
			Time string          `json:"time"`
			Data json.RawMessage `json:"data"`
		}
		page := []item{}
		more := false
		for n := max(after, 0) + 1; n <= int64(len(f.times)); n++ {
			if len(page) == limit {
				more = true
				break
			}
			page = append(page, item{N: n, ID: fmt.Sprintf("item-%d", n), Type: "created",
				Time: f.times[n-1].UTC().Format(time.RFC3339Nano), Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))})
		}
		json.NewEncoder(w).Encode(map[string]any{"items": page, "more": more})
	default:
		http.NotFound(w, r)
	}
}

// puller is the queue subscription's consumer: it long-polls GET .../events on the nodes
// that are up, one after the other (a round-robin client, as behind a load balancer), acks
// every batch, and records when each item was first pulled and under which event ids.
type puller struct {
	nodes []*node
	sub   string

	mu       sync.Mutex
	firstAt  map[int64]time.Time
	ids      map[int64][]string // distinct event ids each item was delivered with
	problems []string
}

func newPuller(nodes []*node, sub string) *puller {
	return &puller{nodes: nodes, sub: sub, firstAt: map[int64]time.Time{}, ids: map[int64][]string{}}
}

func (p *puller) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		var base string
		for k := range p.nodes {
			if u := p.nodes[(i+k)%len(p.nodes)].url(); u != "" {
				base = u
				break
			}
		}
		if base == "" {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var page struct {
			Events []struct {
				ID            string `json:"id"`
				SourceEventID string `json:"source_event_id"`
			} `json:"events"`
		}
		code, out, err := call(ctx, "GET", base+"/v1/subscriptions/"+p.sub+"/events?max=100&wait_s=1", nil)
		if err != nil || code != 200 || json.Unmarshal(out, &page) != nil {
			if err == nil && code != 200 && !strings.Contains(string(out), "store_unavailable") {
				p.problem("pull from %s: %d %s", base, code, out)
			}
			time.Sleep(20 * time.Millisecond) // a node just killed: the next one
			continue
		}
		if len(page.Events) == 0 {
			continue
		}
		at := time.Now()
		var ids []string
		p.mu.Lock()
		for _, ev := range page.Events {
			n, err := strconv.ParseInt(strings.TrimPrefix(ev.SourceEventID, "item-"), 10, 64)
			if err != nil {
				p.problems = append(p.problems, fmt.Sprintf("event %s: source_event_id %q", ev.ID, ev.SourceEventID))
				continue
			}
			if _, ok := p.firstAt[n]; !ok {
				p.firstAt[n] = at
			}
			if !slices.Contains(p.ids[n], ev.ID) {
				p.ids[n] = append(p.ids[n], ev.ID)
			}
			ids = append(ids, ev.ID)
		}
		p.mu.Unlock()
		code, out, err = call(ctx, "POST", base+"/v1/subscriptions/"+p.sub+"/events/ack", map[string]any{"ids": ids})
		if err == nil && code != 200 {
			p.problem("ack on %s: %d %s", base, code, out)
		}
	}
}

func (p *puller) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.problems) < 20 {
		p.problems = append(p.problems, fmt.Sprintf(format, args...))
	}
}

// pulledAt is when item n was first pulled, and whether it was.
func (p *puller) pulledAt(n int64) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.firstAt[n]
	return t, ok
}

// check is how many items of (base, final] were never pulled, and how many were pulled under
// more than one event id.
func (p *puller) check(base, final int64) (missing, twoIDs int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := base + 1; n <= final; n++ {
		if _, ok := p.firstAt[n]; !ok {
			missing++
		}
		if len(p.ids[n]) > 1 {
			twoIDs++
		}
	}
	return missing, twoIDs
}
