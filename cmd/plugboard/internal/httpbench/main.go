// Command httpbench runs `make bench-http`: the side-by-side figure of issue 13. In one run, wrk
// drives the same tiny JSON upstream on loopback several ways, interleaved round by round:
//
//   - direct: wrk to the upstream;
//   - reverse proxy: wrk to a bare httputil.ReverseProxy in front of it (idle upstream
//     connections kept, so it measures proxying, not connection setup);
//   - action: wrk to the real plugboard binary, POST /v1/connectors/NAME/actions/ACTION, for
//     each connector of -connectors; each call makes one plugboard_http GET of the upstream.
//     ashttp is the AssemblyScript test connector (plugins/testdata/ashttp, the kind of
//     connector the issue measured), http the bundled Go connector;
//   - mcp: the first connector's action as an MCP tools/call (POST /mcp/bench in a session
//     opened beforehand), unless -mcp=false.
//
// The upstream and the proxy are child processes (this program run again with -serve), and
// plugboard is its own process, so no two of them share a Go runtime, and this program only
// waits for wrk while wrk runs. Everything shares the machine's cores with wrk: compare the
// rows of one run, not runs.
//
// Then one connection (-c1): direct against each action, for the latency Plugboard adds.
//
// It prints, for each target, the best round's requests/s, p50 and p99, the non-2xx answers
// and socket errors of all rounds, and the throughput as a ratio of the proxy's; the MCP run
// also as a ratio of its HTTP action. Each target is warmed with a short wrk run first (the
// pools start instances for 32 concurrent callers). It exits 1 when a Plugboard request
// failed: a non-2xx answer or socket error, an answer without an upstream 200 behind it (the
// server's /metrics counts the outbound requests by status), or more than one outbound request
// per call.
//
//	go run ./cmd/plugboard/internal/httpbench -bin bin/plugboard
//
// -base-bin runs a second plugboard binary (an older build) beside the first in the same
// rounds, so before and after are compared on one noisy machine. -cpuprofile FILE starts the
// -bin server with --pprof-listen on a loopback port and writes a CPU profile of its first
// 32-connection action run (the run's length less a second) to FILE.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"time"
)

// config is the command line.
type config struct {
	bin, baseBin, wrk    string
	connectors           []connector
	mcp                  bool
	threads, conns       int
	duration, warmup     time.Duration
	rounds               int
	cpuprofile           string
	profileMCP           bool
	ashttpWasm, httpWasm string
}

func main() {
	var c config
	var names string
	serve := flag.String("serve", "", "internal: run as the upstream or the proxy child process")
	proxyTo := flag.String("proxy-to", "", "internal: with -serve proxy, the upstream URL")
	flag.StringVar(&c.bin, "bin", "bin/plugboard", "the plugboard binary")
	flag.StringVar(&c.baseBin, "base-bin", "", "a second plugboard binary to measure beside -bin (e.g. an older build)")
	flag.StringVar(&names, "connectors", "ashttp,http", "connectors whose action is measured, comma-separated: ashttp (AssemblyScript) and http (the bundled Go connector)")
	flag.StringVar(&c.ashttpWasm, "ashttp", connectors["ashttp"].wasm, "the ashttp test connector")
	flag.StringVar(&c.httpWasm, "http", connectors["http"].wasm, "the bundled http connector")
	flag.BoolVar(&c.mcp, "mcp", true, "also measure the first connector's action as an MCP tools/call")
	flag.StringVar(&c.wrk, "wrk", "wrk", "the wrk binary")
	flag.IntVar(&c.threads, "threads", 2, "wrk threads")
	flag.IntVar(&c.conns, "conns", 32, "wrk connections")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "length of each measured wrk run")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "length of each target's warm-up wrk run")
	flag.IntVar(&c.rounds, "rounds", 2, "rounds of the interleaved runs")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the -bin server during its first action run to this file (pprof format; the server gets --pprof-listen)")
	flag.BoolVar(&c.profileMCP, "cpuprofile-mcp", false, "with -cpuprofile, profile the first MCP tools/call run instead of the first action run")
	flag.Parse()
	if *serve != "" {
		if err := serveChild(*serve, *proxyTo); err != nil {
			fmt.Fprintln(os.Stderr, "httpbench -serve:", err)
			os.Exit(1)
		}
		return
	}
	for _, n := range strings.Split(names, ",") {
		cn, ok := connectors[strings.TrimSpace(n)]
		if !ok {
			fmt.Fprintf(os.Stderr, "httpbench: -connectors: unknown connector %q (ashttp, http)\n", n)
			os.Exit(2)
		}
		cn.wasm = map[string]string{"ashttp": c.ashttpWasm, "http": c.httpWasm}[cn.name]
		c.connectors = append(c.connectors, cn)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		os.Exit(1)
	}
}

// target is one thing wrk drives.
type target struct {
	name, url string
	req       request
	script    string // the Lua file of req, "" for a GET
	plugboard bool   // a failed request fails the run
	server    *plugboard
	action    bool   // a Plugboard action: part of the -c1 comparison
	mcpOf     string // for an MCP run, the name of its HTTP action's target
	results   []result
}

func run(ctx context.Context, c config) error {
	if _, err := exec.LookPath(c.wrk); err != nil {
		return fmt.Errorf("wrk: %v (`make bench-http` installs it)", err)
	}
	tmp, err := os.MkdirTemp("", "plugboard-httpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	upstream, err := startChild("upstream")
	if err != nil {
		return err
	}
	defer upstream.stop()
	proxy, err := startChild("proxy", "-proxy-to", upstream.url)
	if err != nil {
		return err
	}
	defer proxy.stop()
	for _, u := range []string{upstream.url, proxy.url} {
		if err := checkGET(ctx, u+"/item"); err != nil {
			return err
		}
	}
	targets := []*target{{name: "direct", url: upstream.url + "/item"}, {name: "reverse proxy", url: proxy.url + "/item"}}

	bins := []struct{ label, path string }{{"", c.bin}}
	if c.baseBin != "" {
		bins = append(bins, struct{ label, path string }{" (base)", c.baseBin})
	}
	var first *plugboard
	for i, b := range bins {
		pb, err := startPlugboard(ctx, b.path, dataDir(tmp, i), c.connectors, upstream.url, c.mcp, i == 0 && c.cpuprofile != "")
		if err != nil {
			return fmt.Errorf("%s: %w", b.path, err)
		}
		defer pb.srv.Stop()
		if first == nil {
			first = pb
		}
		for _, cn := range c.connectors {
			targets = append(targets, &target{name: "action " + cn.name + b.label, url: pb.srv.URL + pb.actionPath(cn),
				req: pb.actionRequest(cn), plugboard: true, server: pb, action: true})
		}
		if pb.mcp.body != "" {
			targets = append(targets, &target{name: "mcp tools/call " + c.connectors[0].name + b.label, url: pb.srv.URL + "/mcp/bench",
				req: pb.mcp, plugboard: true, server: pb, mcpOf: "action " + c.connectors[0].name + b.label})
		}
	}
	for i, t := range targets {
		if t.script, err = t.req.script(fmt.Sprintf("%s/target%d.lua", tmp, i)); err != nil {
			return err
		}
	}

	profile := c.cpuprofile // taken during the first action run of -bin, then ""

	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil && len(strings.Fields(string(b))) >= 3 {
		load = ", load " + strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Printf("%s, %d cores%s; wrk -t%d -c%d -d%s --latency, %d rounds interleaved (best shown), %s warm-up each\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), load, c.threads, c.conns, c.duration, c.rounds, c.warmup)
	base := ""
	if c.baseBin != "" {
		base = ", base " + c.baseBin
	}
	fmt.Printf("plugboard %s%s; upstream %s (%d-byte JSON), proxy %s\n\n", c.bin, base, upstream.url, len(upstreamBody), proxy.url)

	for _, t := range targets {
		if c.warmup > 0 {
			if _, err := runWrk(ctx, c.wrk, c.threads, c.conns, c.warmup, t.url, t.script); err != nil {
				return err
			}
		}
	}
	for r := range c.rounds {
		for _, t := range targets {
			var prof chan error
			if profile != "" && r == 0 && t.server == first && (t.action && !c.profileMCP || t.mcpOf != "" && c.profileMCP) {
				prof = make(chan error, 1)
				go func(file string) { prof <- first.cpuProfile(ctx, c.duration-time.Second, file) }(profile)
				profile = ""
			}
			res, err := measure(ctx, c, t, c.threads, c.conns)
			if err != nil {
				return err
			}
			if prof != nil {
				if err := <-prof; err != nil {
					return fmt.Errorf("-cpuprofile: %w", err)
				}
				fmt.Fprintf(os.Stderr, "wrote the CPU profile of %s to %s (go tool pprof -top %s %s)\n", t.name, c.cpuprofile, c.bin, c.cpuprofile)
			}
			fmt.Fprintf(os.Stderr, "round %d/%d %-30s %8.0f req/s  p50 %-9s non-2xx %d socket errors %d\n",
				r+1, c.rounds, t.name, res.rps, ms(res.p50), res.non2xx, res.socket)
			t.results = append(t.results, res)
		}
	}

	var failed []string
	proxyRPS := best(targets[1].results).rps
	fmt.Println("| target | req/s | p50 | p99 | non-2xx | socket errors | x proxy |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, t := range targets {
		b, non2xx, socket := best(t.results), 0, 0
		for _, r := range t.results {
			non2xx += r.non2xx
			socket += r.socket
			failed = append(failed, t.problems(r)...)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %d | %d | %.2f |\n", t.name, b.rps, ms(b.p50), ms(b.p99), non2xx, socket, b.rps/proxyRPS)
	}
	sep := "\n"
	for _, t := range targets {
		if t.mcpOf == "" {
			continue
		}
		i := slices.IndexFunc(targets, func(a *target) bool { return a.name == t.mcpOf })
		fmt.Printf("%s%s: %.2fx the requests/s of %s\n", sep, t.name, best(t.results).rps/best(targets[i].results).rps, t.mcpOf)
		sep = ""
	}

	fmt.Printf("\nOne connection (wrk -t1 -c1 -d%s): latency Plugboard adds over direct\n\n", c.duration)
	fmt.Println("| target | req/s | p50 | p99 | added p50 | non-2xx | socket errors |")
	fmt.Println("|---|---|---|---|---|---|---|")
	var direct time.Duration
	for _, t := range targets {
		if t != targets[0] && !t.action {
			continue
		}
		res, err := measure(ctx, c, t, 1, 1)
		if err != nil {
			return errors.Join(append([]error{err}, errs(failed)...)...)
		}
		if t == targets[0] {
			direct = res.p50
		}
		failed = append(failed, t.problems(res)...)
		fmt.Printf("| %s | %.0f | %s | %s | %s | %d | %d |\n", t.name, res.rps, ms(res.p50), ms(res.p99), ms(res.p50-direct), res.non2xx, res.socket)
	}
	if len(failed) > 0 {
		return errors.Join(errs(failed)...)
	}
	fmt.Println("\nOK: no Plugboard request failed.")
	return nil
}

// measure runs wrk against t; for a Plugboard target it also takes the server's counts of the
// calls the run made.
func measure(ctx context.Context, c config, t *target, threads, conns int) (result, error) {
	var before counts
	if t.server != nil {
		var err error
		if before, err = t.server.counts(ctx); err != nil {
			return result{}, err
		}
	}
	res, err := runWrk(ctx, c.wrk, threads, conns, c.duration, t.url, t.script)
	if err != nil || t.server == nil {
		return res, err
	}
	after, err := t.server.counts(ctx)
	res.server = after.minus(before)
	return res, err
}

// problems says what went wrong in a run of t, a Plugboard target: a non-2xx answer or socket
// error; fewer outbound requests answered 200 than answers wrk read (a connector hands
// upstream statuses back as output, and the host answers by itself for an upstream it stopped
// calling, so a 200 from the action alone does not prove the upstream answered); or more
// outbound requests than calls (retries, or a connector that makes more than one). The calls
// wrk abandons when a run ends (at most one per connection) fail on the server as canceled
// and are not counted against the run.
func (t *target) problems(r result) []string {
	if !t.plugboard {
		return nil
	}
	var p []string
	if r.non2xx > 0 || r.socket > 0 {
		p = append(p, fmt.Sprintf("%s: %d non-2xx answers, %d socket errors", t.name, r.non2xx, r.socket))
	}
	if r.server.egress200 < r.requests {
		p = append(p, fmt.Sprintf("%s: %d answers but only %d upstream requests answered 200; the server counted %v",
			t.name, r.requests, r.server.egress200, r.server.failed))
	}
	if r.server.egress > r.server.calls {
		p = append(p, fmt.Sprintf("%s: %d outbound requests for %d calls, want one each", t.name, r.server.egress, r.server.calls))
	}
	return p
}

// errs are the problems as errors, one line each.
func errs(problems []string) []error {
	var es []error
	for _, p := range problems {
		es = append(es, errors.New("Plugboard requests failed: "+p))
	}
	return es
}

// best is the round with the highest throughput: on a shared machine the slower rounds are the
// ones other work interrupted.
func best(rs []result) result {
	b := rs[0]
	for _, r := range rs[1:] {
		if r.rps > b.rps {
			b = r
		}
	}
	return b
}

// ms prints a duration in milliseconds, with the precision a latency of that size deserves.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 1:
		return fmt.Sprintf("%.3f ms", v)
	case v < 100:
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}
