// Command clusterbench measures Plugboard on NATS JetStream (issue 12, BENCHMARKS.md
// "Cluster"): an in-process nats-server with JetStream on a free loopback port, real
// `plugboard serve` processes on loopback sharing it (the same master key file and admin
// token, each its own data directory for the compilation cache), one more node on bbolt for
// comparison, and vegeta as the client. `make bench-cluster` runs it:
//
//	go run ./cmd/plugboard/internal/clusterbench -bin bin/plugboard -plugin bin/testplugins/anymanifest.wasm -trig bin/testplugins/trig.wasm -vegeta $(go env GOPATH)/bin/vegeta
//
// It measures, in one run:
//
//  1. the warm action call (the anymanifest test plugin's echo) on one node on bbolt against
//     one node on JetStream, with the same vegeta settings: a constant rate for the latency
//     quantiles, then -rate=0 with a fixed number of workers for the throughput;
//  2. the throughput of 1, 2 and 3 JetStream nodes behind a round-robin client (a vegeta
//     targets file naming the same request on each node; vegeta cycles targets in order);
//  3. swap propagation on 3 nodes: the answer time of PUT /v1/connectors/anymanifest/active,
//     which answers once every live node serves the version, and the time until the last node
//     answers echo with it (every node polled meanwhile), over -swaps swaps between 1.0.0 and
//     2.0.0;
//  4. poller failover: the trig plugin polling a feed in this program every second for a
//     queue subscription; the node polling the source (GET /v1/cluster "sources") is killed
//     with SIGKILL, and the program times until another node reports the source and until the
//     first item produced after the kill is pulled from the queue; -failovers times, the
//     killed node restarted between runs.
//
// -bbolt-only measures part 1 on bbolt alone (no nats-server). The program exits 1 when a call
// failed, a swap was refused, a call started after a swap's answer ran the old version, or an
// item of the feed was lost.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
)

const token = "pba_clusterbench"

// config is the command line.
type config struct {
	bin, plugin, trig, vegeta string
	rate                      int
	duration, warmup          time.Duration
	workers                   int
	swaps, failovers          int
	bboltOnly, keep           bool
	parts                     string
}

// part says whether part k is to run.
func (c config) part(k int) bool {
	return slices.Contains(strings.Split(c.parts, ","), strconv.Itoa(k))
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/plugboard", "the plugboard binary")
	flag.StringVar(&c.plugin, "plugin", "bin/testplugins/anymanifest.wasm", "the anymanifest test plugin")
	flag.StringVar(&c.trig, "trig", "bin/testplugins/trig.wasm", "the trig test plugin")
	flag.StringVar(&c.vegeta, "vegeta", "vegeta", "the vegeta binary")
	flag.IntVar(&c.rate, "rate", 200, "requests per second of the latency runs")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "length of each measured vegeta run")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "vegeta warm-up of each node before it is measured")
	flag.IntVar(&c.workers, "workers", 8, "vegeta workers of the throughput runs (-rate=0 -max-workers)")
	flag.IntVar(&c.swaps, "swaps", 20, "swaps of the propagation run")
	flag.IntVar(&c.failovers, "failovers", 3, "kills of the polling node")
	flag.BoolVar(&c.bboltOnly, "bbolt-only", false, "measure the bbolt node of part 1 only, without nats-server")
	flag.StringVar(&c.parts, "parts", "1,2,3,4", "the parts to run, comma-separated")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (node logs, vegeta results) and print its path")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	for _, f := range []string{c.bin, c.plugin, c.trig} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%v (run `make build` first)", err)
		}
	}
	if _, err := exec.LookPath(c.vegeta); err != nil {
		return fmt.Errorf("vegeta: %v (`make bench-cluster` installs it)", err)
	}
	tmp, err := os.MkdirTemp("", "plugboard-clusterbench-")
	if err != nil {
		return err
	}
	if c.keep {
		fmt.Println("temporary directory (kept):", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	began := time.Now()
	b := &bench{config: c, tmp: tmp}
	defer b.stopAll()
	if err := b.startNodes(); err != nil {
		return err
	}
	if err := b.upload(ctx); err != nil {
		return err
	}
	fmt.Printf("%s, %d cores; nodes: %s\n", began.UTC().Format("2006-01-02 15:04 UTC"), numCPU(), b.describe())

	parts := []func(context.Context) error{b.warmCalls}
	if !c.bboltOnly {
		parts = append(parts, b.throughput, b.swapPropagation, b.failover)
	}
	for k, p := range parts {
		if c.part(k + 1) {
			if err := p(ctx); err != nil {
				return err
			}
		}
	}
	fmt.Printf("\nwhole run: %s\n", time.Since(began).Round(time.Second))
	if len(b.problems) > 0 {
		return errors.New(strings.Join(b.problems, "; "))
	}
	if c.bboltOnly {
		fmt.Println("OK: no failed call.")
	} else {
		fmt.Println("OK: no failed call, every swap served everywhere on its answer, no item lost.")
	}
	return nil
}

// bench is one run: the processes and the problems found.
type bench struct {
	config
	tmp      string
	stopNATS func()
	natsURL  string
	bolt     *node
	nodes    []*node // on JetStream
	problems []string
	wasm     map[string][]byte // anymanifest by version
}

func (b *bench) problem(format string, args ...any) {
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// startNodes starts the bbolt node and, unless bbolt-only, the nats-server and three nodes
// on it: n1 alone first (it creates the master key file), then n2 and n3 together.
func (b *bench) startNodes() error {
	var err error
	if b.bolt, err = newNode(b.tmp, "bolt", "", ""); err != nil {
		return err
	}
	if err := b.bolt.start(b.bin); err != nil {
		return err
	}
	if b.bboltOnly {
		return nil
	}
	srv, url, err := startNATS(filepath.Join(b.tmp, "jetstream"))
	if err != nil {
		return err
	}
	b.natsURL = url
	b.stopNATS = func() { srv.Shutdown(); srv.WaitForShutdown() }
	key := filepath.Join(b.tmp, "master.key")
	for i := range 3 {
		n, err := newNode(b.tmp, fmt.Sprintf("n%d", i+1), url, key)
		if err != nil {
			return err
		}
		b.nodes = append(b.nodes, n)
	}
	if err := b.nodes[0].start(b.bin); err != nil {
		return err
	}
	errs := make(chan error, 2)
	for _, n := range b.nodes[1:] {
		go func() { errs <- n.start(b.bin) }()
	}
	return errors.Join(<-errs, <-errs)
}

func (b *bench) stopAll() {
	var wg sync.WaitGroup
	for _, n := range append([]*node{b.bolt}, b.nodes...) {
		if n != nil {
			wg.Add(1)
			go func() { defer wg.Done(); n.stop() }()
		}
	}
	wg.Wait()
	if b.stopNATS != nil {
		b.stopNATS()
	}
}

func (b *bench) describe() string {
	s := "bolt (bbolt) " + b.bolt.url()
	for _, n := range b.nodes {
		s += fmt.Sprintf(", %s (JetStream %s) %s", n.name, b.natsURL, n.url())
	}
	return s
}

// upload puts anymanifest 1.0.0 (active) and 2.0.0 on the bbolt node and on the cluster
// (through n1: the other nodes see them through the store).
func (b *bench) upload(ctx context.Context) error {
	wasm, err := os.ReadFile(b.plugin)
	if err != nil {
		return err
	}
	b.wasm = map[string][]byte{}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		m := `{"abi":1,"name":"anymanifest","version":"` + v + `","auth":{"types":["none"]},"actions":[{"name":"echo","input_schema":{"type":"object"}}]}`
		if b.wasm[v], err = patch.Patch(wasm, []byte(m)); err != nil {
			return err
		}
	}
	targets := []*node{b.bolt}
	if len(b.nodes) > 0 {
		targets = append(targets, b.nodes[0])
	}
	for _, n := range targets {
		for _, v := range []string{"1.0.0", "2.0.0"} {
			if err := must(ctx, 201, "POST", n.url()+"/v1/connectors", b.wasm[v], nil); err != nil {
				return fmt.Errorf("uploading %s to %s: %w", v, n.name, err)
			}
		}
	}
	// Every node serves 1.0.0 before anything is measured.
	for _, n := range append([]*node{b.bolt}, b.nodes...) {
		if _, err := waitFor(30*time.Second, "anymanifest 1.0.0 on "+n.name, func() bool {
			v, err := echo(ctx, n.url())
			return err == nil && v == "1.0.0"
		}); err != nil {
			return err
		}
	}
	return nil
}

// echo calls anymanifest's echo action on the node at base and returns the version that ran.
func echo(ctx context.Context, base string) (string, error) {
	var res struct {
		Version string `json:"version"`
	}
	err := must(ctx, 200, "POST", base+"/v1/connectors/anymanifest/actions/echo", map[string]any{"input": map[string]any{"n": 1}}, &res)
	return res.Version, err
}

// report is the part of `vegeta report -type=json` the benchmark reads.
type report struct {
	Requests   int     `json:"requests"`
	Rate       float64 `json:"rate"`
	Throughput float64 `json:"throughput"`
	Success    float64 `json:"success"`
	Latencies  struct {
		P50  time.Duration `json:"50th"`
		P90  time.Duration `json:"90th"`
		P99  time.Duration `json:"99th"`
		Max  time.Duration `json:"max"`
		Mean time.Duration `json:"mean"`
	} `json:"latencies"`
	StatusCodes map[string]int `json:"status_codes"`
	Errors      []string       `json:"errors"`
}

// non2xx counts the answers outside 2xx; code "0" is a request that got no answer.
func (r report) non2xx() int {
	n := 0
	for code, count := range r.StatusCodes {
		if c, _ := strconv.Atoi(code); c < 200 || c > 299 {
			n += count
		}
	}
	return n
}

// attack runs vegeta against the echo action on every node of nodes in turn (one target per
// node, cycled in order), at rate requests per second, or as fast as b.workers workers go
// when rate is 0.
func (b *bench) attack(name string, nodes []*node, rate int, d time.Duration) (report, error) {
	body := filepath.Join(b.tmp, "body.json")
	if err := os.WriteFile(body, []byte(`{"input":{"n":1}}`), 0o644); err != nil {
		return report{}, err
	}
	var targets strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&targets, "POST %s/v1/connectors/anymanifest/actions/echo\nAuthorization: Bearer %s\nContent-Type: application/json\n@%s\n\n",
			n.url(), token, body)
	}
	tf := filepath.Join(b.tmp, name+".targets")
	if err := os.WriteFile(tf, []byte(targets.String()), 0o644); err != nil {
		return report{}, err
	}
	out := filepath.Join(b.tmp, name+".bin")
	args := []string{"attack", "-targets", tf, "-duration", d.String(), "-timeout", "30s", "-output", out}
	if rate > 0 {
		args = append(args, "-rate", fmt.Sprintf("%d/1s", rate), "-workers", "16")
	} else {
		w := strconv.Itoa(b.workers)
		args = append(args, "-rate", "0", "-workers", w, "-max-workers", w)
	}
	cmd := exec.Command(b.vegeta, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return report{}, fmt.Errorf("vegeta attack %s: %w", name, err)
	}
	js, err := exec.Command(b.vegeta, "report", "-type", "json", out).Output()
	if err != nil {
		return report{}, fmt.Errorf("vegeta report %s: %w", name, err)
	}
	var r report
	if err := json.Unmarshal(js, &r); err != nil {
		return report{}, err
	}
	if n := r.non2xx(); n > 0 {
		b.problem("%s: %d non-2xx answers (%v; errors %v)", name, n, r.StatusCodes, r.Errors)
	}
	return r, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// warmCalls is part 1: bbolt against JetStream, one node each.
func (b *bench) warmCalls(ctx context.Context) error {
	type row struct {
		backend string
		n       *node
		lat     report
		max     report
	}
	rows := []*row{{backend: "bbolt", n: b.bolt}}
	if len(b.nodes) > 0 {
		rows = append(rows, &row{backend: "JetStream", n: b.nodes[0]})
	}
	fmt.Printf("\n1. warm action call, one node: %s warm-up, then %d req/s for %s, then -rate=0 with %d workers for %s\n",
		b.warmup, b.rate, b.duration, b.workers, b.duration)
	var err error
	for _, r := range rows {
		if _, err := b.attack("warm-"+r.n.name, []*node{r.n}, b.rate, b.warmup); err != nil {
			return err
		}
	}
	// The runs interleave (bbolt, JetStream, bbolt, JetStream) so both meet the same machine.
	for _, r := range rows {
		if r.lat, err = b.attack("lat-"+r.n.name, []*node{r.n}, b.rate, b.duration); err != nil {
			return err
		}
	}
	for _, r := range rows {
		if r.max, err = b.attack("max-"+r.n.name, []*node{r.n}, 0, b.duration); err != nil {
			return err
		}
	}
	fmt.Println()
	fmt.Printf("| backend | requests at %d/s | non-2xx | p50 | p90 | p99 | max | throughput (%d workers) | p50 there | non-2xx |\n", b.rate, b.workers)
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		l := r.lat.Latencies
		fmt.Printf("| %s | %d | %d | %s | %s | %s | %s | %.0f req/s | %s | %d |\n", r.backend, r.lat.Requests, r.lat.non2xx(),
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), r.max.Throughput, ms(r.max.Latencies.P50), r.max.non2xx())
	}
	return nil
}

// throughput is part 2: 1, 2 and 3 JetStream nodes behind a round-robin client.
func (b *bench) throughput(ctx context.Context) error {
	fmt.Printf("\n2. throughput, round robin over 1, 2, 3 JetStream nodes: -rate=0 with %d workers for %s each\n", b.workers, b.duration)
	for _, n := range b.nodes[1:] {
		if _, err := b.attack("warm-"+n.name, []*node{n}, b.rate, b.warmup); err != nil {
			return err
		}
	}
	var reps []report
	for k := 1; k <= len(b.nodes); k++ {
		r, err := b.attack(fmt.Sprintf("rr%d", k), b.nodes[:k], 0, b.duration)
		if err != nil {
			return err
		}
		reps = append(reps, r)
	}
	fmt.Println()
	fmt.Println("| nodes | requests | throughput | non-2xx | p50 | p99 |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, r := range reps {
		fmt.Printf("| %d | %d | %.0f req/s | %d | %s | %s |\n", i+1, r.Requests, r.Throughput, r.non2xx(), ms(r.Latencies.P50), ms(r.Latencies.P99))
	}
	return nil
}

// pollGap is the pause between two echo calls of one node's poller during a swap: the
// resolution of "last node serves". Three pollers calling without pause would take a core
// from the swap they time.
const pollGap = 25 * time.Millisecond

// swapPropagation is part 3: swaps between 1.0.0 and 2.0.0 on three nodes, each PUT sent to
// the next node in turn, with every node's echo polled (every pollGap) until it answers the new
// version.
func (b *bench) swapPropagation(ctx context.Context) error {
	fmt.Printf("\n3. swap propagation on %d nodes: %d swaps between 1.0.0 and 2.0.0, PUT to each node in turn, echo polled on every node every %s\n",
		len(b.nodes), b.swaps, pollGap)
	var answers, lasts []time.Duration
	var firstAnswer, firstLast time.Duration
	stale := 0
	for i := range b.swaps {
		target := []string{"1.0.0", "2.0.0"}[(i+1)%2]
		via := b.nodes[i%len(b.nodes)]
		var answeredAt atomic.Int64 // UnixNano of the PUT's answer, 0 before
		start := time.Now()
		type seen struct {
			at    time.Duration
			stale int // calls started after the answer that ran the old version
			err   error
		}
		results := make(chan seen, len(b.nodes))
		pollCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		for _, n := range b.nodes {
			go func() {
				var s seen
				for {
					callStart := time.Now()
					v, err := echo(pollCtx, n.url())
					if err != nil {
						s.err = fmt.Errorf("echo on %s during swap %d: %w", n.name, i+1, err)
						break
					}
					if v == target {
						s.at = time.Since(start)
						break
					}
					if a := answeredAt.Load(); a != 0 && callStart.UnixNano() > a {
						s.stale++
					}
					time.Sleep(pollGap)
				}
				results <- s
			}()
		}
		code, out, err := call(ctx, "PUT", via.url()+"/v1/connectors/anymanifest/active", map[string]any{"version": target})
		answer := time.Since(start)
		answeredAt.Store(time.Now().UnixNano())
		if err != nil || code != 200 {
			cancel()
			routes := ""
			if doc, err := clusterView(ctx, via); err == nil {
				for _, e := range doc.Nodes {
					routes += fmt.Sprintf(" %s=%q", e.Name, e.Routes["anymanifest"])
				}
			}
			return fmt.Errorf("swap %d to %s via %s: %d %s %v (routes in GET /v1/cluster now:%s)", i+1, target, via.name, code, bytes.TrimSpace(out), err, routes)
		}
		var last time.Duration
		for range b.nodes {
			s := <-results
			if s.err != nil {
				b.problem("%v", s.err)
			}
			last = max(last, s.at)
			stale += s.stale
		}
		cancel()
		if i == 0 {
			firstAnswer, firstLast = answer, last
		}
		answers = append(answers, answer)
		lasts = append(lasts, last)
		time.Sleep(200 * time.Millisecond)
	}
	if stale > 0 {
		b.problem("%d echo calls started after a swap's answer ran the old version", stale)
	}
	med := func(ds []time.Duration) (time.Duration, time.Duration) {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2], s[len(s)-1]
	}
	am, ax := med(answers)
	lm, lx := med(lasts)
	fmt.Println()
	fmt.Println("| | median | max | first swap (2.0.0 compiled on each node) |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| PUT .../active answered | %s | %s | %s |\n", ms(am), ms(ax), ms(firstAnswer))
	fmt.Printf("| last node serves | %s | %s | %s |\n", ms(lm), ms(lx), ms(firstLast))
	fmt.Printf("\ncalls started after an answer that ran the old version: %d\n", stale)
	return nil
}

// failover is part 4: kill -9 of the node polling the trig source, b.failovers times.
func (b *bench) failover(ctx context.Context) error {
	fmt.Printf("\n4. poller failover: trig polled every 1 s for a queue subscription, a new feed item every 100 ms, the polling node killed with SIGKILL %d times\n", b.failovers)
	f, err := startFeed()
	if err != nil {
		return err
	}
	defer f.srv.Close()
	stopFeed := f.produce(100 * time.Millisecond)
	defer stopFeed()
	n1 := b.nodes[0]
	wasm, err := os.ReadFile(b.trig)
	if err != nil {
		return err
	}
	if err := must(ctx, 201, "POST", n1.url()+"/v1/connectors?activate=true", wasm, nil); err != nil {
		return err
	}
	if err := must(ctx, 201, "POST", b.nodes[1].url()+"/v1/connections", map[string]any{"id": "feed", "connectors": []string{"trig"},
		"auth": map[string]any{"type": "none"}, "params": map[string]any{"base_url": f.url}}, nil); err != nil {
		return err
	}
	var sub struct {
		ID string `json:"id"`
	}
	if err := must(ctx, 201, "POST", b.nodes[2].url()+"/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
		"params": map[string]any{}, "interval_s": 1, "delivery": map[string]any{"type": "queue"}}, &sub); err != nil {
		return err
	}
	base := f.count()
	p := newPuller(b.nodes, sub.ID)
	pullCtx, stopPull := context.WithCancel(ctx)
	pulling := make(chan struct{})
	go func() { defer close(pulling); p.run(pullCtx) }()
	defer func() { stopPull(); <-pulling }()

	type run struct {
		killed, next     string
		takeover, pulled time.Duration
	}
	var runs []run
	for i := range b.failovers {
		leader, err := b.leader(ctx)
		if err != nil {
			return err
		}
		// Steady state: items flow before the kill.
		mark := f.count()
		if _, err := waitFor(15*time.Second, "items pulled before the kill", func() bool { _, ok := p.pulledAt(mark); return ok }); err != nil {
			return err
		}
		killedAt := time.Now()
		leader.kill()
		var next *node
		if _, err := waitFor(30*time.Second, "another node polling the source", func() bool {
			for _, n := range b.nodes {
				doc, err := clusterView(ctx, n)
				if err != nil {
					continue
				}
				for _, e := range doc.Nodes {
					if e.Sources == 1 && e.Name != leader.name {
						next = b.node(e.Name)
						return next != nil
					}
				}
			}
			return false
		}); err != nil {
			return err
		}
		takeover := time.Since(killedAt)
		first, _ := f.firstAfter(killedAt)
		var pulled time.Duration
		if _, err := waitFor(30*time.Second, fmt.Sprintf("item %d (the first after the kill) pulled", first), func() bool {
			at, ok := p.pulledAt(first)
			pulled = at.Sub(killedAt)
			return ok
		}); err != nil {
			return err
		}
		runs = append(runs, run{leader.name, next.name, takeover, pulled})
		fmt.Printf("  run %d: killed %s; %s reports the source after %s; item %d pulled %s after the kill\n",
			i+1, leader.name, next.name, ms(takeover), first, ms(pulled))
		// Restart the killed node; the next run starts once the cluster lists it and one
		// node polls.
		if err := leader.start(b.bin); err != nil {
			return err
		}
		if _, err := waitFor(30*time.Second, leader.name+" back in GET /v1/cluster", func() bool {
			doc, err := clusterView(ctx, leader)
			return err == nil && len(doc.Nodes) == len(b.nodes)
		}); err != nil {
			return err
		}
	}
	stopFeed()
	final := f.count()
	var missing, twoIDs int
	waitFor(30*time.Second, "every item pulled", func() bool {
		missing, twoIDs = p.check(base, final)
		return missing == 0
	})
	if missing > 0 {
		b.problem("%d of %d feed items never pulled from the queue", missing, final-base)
	}
	if twoIDs > 0 {
		b.problem("%d feed items pulled under two event ids", twoIDs)
	}
	for _, pr := range p.problems {
		b.problem("queue consumer: %s", pr)
	}
	fmt.Println()
	fmt.Println("| run | killed | took over | another node reports sources=1 | first item after the kill pulled |")
	fmt.Println("|---|---|---|---|---|")
	for i, r := range runs {
		fmt.Printf("| %d | %s | %s | %s | %s |\n", i+1, r.killed, r.next, ms(r.takeover), ms(r.pulled))
	}
	fmt.Printf("\nfeed items %d..%d: %d never pulled, %d pulled under two ids\n", base+1, final, missing, twoIDs)
	return nil
}

func (b *bench) node(name string) *node {
	for _, n := range b.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// leader waits until GET /v1/cluster on a node that is up says exactly one node polls the
// one source, and returns that node.
func (b *bench) leader(ctx context.Context) (*node, error) {
	var found *node
	_, err := waitFor(30*time.Second, "exactly one node polling the source", func() bool {
		for _, n := range b.nodes {
			doc, err := clusterView(ctx, n)
			if err != nil {
				continue
			}
			total, name := 0, ""
			for _, e := range doc.Nodes {
				total += e.Sources
				if e.Sources == 1 {
					name = e.Name
				}
			}
			found = b.node(name)
			return total == 1 && found != nil && found.url() != ""
		}
		return false
	})
	return found, err
}
