// Command httpbench runs `make bench-http`: the side-by-side figure of issue 13. In one run, wrk
// drives the same tiny JSON upstream on loopback three ways, interleaved round by round:
//
//   - direct: wrk to the upstream;
//   - proxy: wrk to a bare httputil.ReverseProxy in front of it;
//   - action: wrk to the real plugboard binary, calling a connector action that makes one
//     plugboard_http request to the upstream (the bundled Go `http` connector by default).
//
// Then one connection (-c1) direct against action, for the latency Plugboard adds. It prints
// requests/s, p50, p99 and errors of each, and the action's throughput as a ratio of the
// proxy's. It exits 1 when a Plugboard request failed (non-2xx or a socket error).
//
//	go run ./cmd/plugboard/internal/httpbench -bin bin/plugboard -plugin bin/plugins/http.wasm
//
// -base-bin runs a second plugboard binary (an older build) beside the first in the same
// rounds, so before and after are compared on one noisy machine.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const token = "pba_httpbench"

// cpuProfile is the -cpuprofile file, "" for none.
var cpuProfile string

func main() {
	bin := flag.String("bin", "bin/plugboard", "the plugboard binary")
	baseBin := flag.String("base-bin", "", "a second plugboard binary to measure beside -bin (e.g. an older build)")
	plugin := flag.String("plugin", "bin/plugins/http.wasm", "the connector: the bundled http connector, or any with the same request action")
	wrk := flag.String("wrk", "wrk", "the wrk binary")
	threads := flag.Int("threads", 2, "wrk threads")
	conns := flag.Int("conns", 32, "wrk connections")
	duration := flag.Duration("duration", 10*time.Second, "length of each wrk run")
	rounds := flag.Int("rounds", 2, "rounds of the interleaved runs")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the -bin server during its first 32-connection run to this file (pprof format)")
	flag.Parse()
	if err := run(*bin, *baseBin, *plugin, *wrk, *threads, *conns, *duration, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		os.Exit(1)
	}
}

// result is what one wrk run printed.
type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int // non-2xx answers and socket errors
}

type target struct {
	name, url, script string
	plugboard         bool
	pprof             string // the server's --pprof-listen address, "" when not profiled
}

func run(bin, baseBin, plugin, wrk string, threads, conns int, d time.Duration, rounds int) error {
	if _, err := exec.LookPath(wrk); err != nil {
		return fmt.Errorf("wrk: %v (`make bench-http` installs it)", err)
	}
	tmp, err := os.MkdirTemp("", "plugboard-httpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	upstream, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":42,"name":"widget","tags":["a","b"],"ok":true}`))
	}))
	if err != nil {
		return err
	}
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	// Keep as many upstream connections alive as wrk opens: the default transport keeps 2 per
	// host and would measure connection setup instead of the proxy.
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024, IdleConnTimeout: time.Minute}
	proxy, err := serve(rp)
	if err != nil {
		return err
	}
	wasm, err := os.ReadFile(plugin)
	if err != nil {
		return fmt.Errorf("%v (run `make build` first)", err)
	}

	script := filepath.Join(tmp, "action.lua")
	os.WriteFile(script, []byte(`wrk.method = "POST"
wrk.body = '{"connection":"bench","input":{"path":"/item"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer `+token+`"
`), 0o644)
	targets := []target{{name: "direct", url: upstream + "/item"}, {name: "reverse proxy", url: proxy + "/item"}}
	bins := []struct{ name, path string }{{"plugboard action", bin}}
	if baseBin != "" {
		bins = append(bins, struct{ name, path string }{"plugboard action (base)", baseBin})
	}
	for i, b := range bins {
		pprofAddr := ""
		if i == 0 && cpuProfile != "" {
			if pprofAddr, err = freeAddr(); err != nil {
				return err
			}
		}
		base, stop, err := startPlugboard(b.path, filepath.Join(tmp, fmt.Sprintf("node%d", i)), wasm, upstream, pprofAddr)
		if err != nil {
			return fmt.Errorf("%s: %w", b.path, err)
		}
		defer stop()
		targets = append(targets, target{name: b.name, url: base + "/v1/connectors/http/actions/request", script: script, plugboard: true, pprof: pprofAddr})
	}

	runWrk := func(t target, c int) (result, error) {
		args := []string{"-t", strconv.Itoa(min(threads, c)), "-c", strconv.Itoa(c), "-d", d.String(), "--latency"}
		if t.script != "" {
			args = append(args, "-s", t.script)
		}
		var prof chan error
		if t.pprof != "" && c > 1 {
			prof = make(chan error, 1)
			addr := t.pprof
			go func() { prof <- fetchProfile(addr, d-time.Second, cpuProfile) }()
		}
		out, err := exec.Command(wrk, append(args, t.url)...).CombinedOutput()
		if prof != nil {
			if err := <-prof; err != nil {
				return result{}, fmt.Errorf("cpu profile: %w", err)
			}
			fmt.Fprintf(os.Stderr, "wrote the CPU profile of %s to %s (go tool pprof -top %s %s)\n", t.name, cpuProfile, t.name, cpuProfile)
		}
		if err != nil {
			return result{}, fmt.Errorf("wrk %s: %v\n%s", t.name, err, out)
		}
		return parseWrk(string(out))
	}

	fmt.Printf("wrk -t%d -c%d -d%s, %d rounds interleaved; upstream %s\n\n", threads, conns, d, rounds, upstream)
	sums := make([][]result, len(targets))
	for r := range rounds {
		for i := range targets {
			t := targets[i]
			if r > 0 {
				t.pprof = "" // profile the first round only
			}
			res, err := runWrk(t, conns)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "round %d/%d %-24s %8.0f req/s p50 %s\n", r+1, rounds, t.name, res.rps, res.p50)
			sums[i] = append(sums[i], res)
		}
	}
	failed := false
	proxyRPS := best(sums[1]).rps
	fmt.Printf("%-26s %10s %10s %10s %8s %8s\n", "target", "req/s", "p50", "p99", "errors", "x proxy")
	for i, t := range targets {
		b := best(sums[i])
		errs := 0
		for _, s := range sums[i] {
			errs += s.errors
		}
		failed = failed || (t.plugboard && errs > 0)
		fmt.Printf("%-26s %10.0f %10s %10s %8d %8.2f\n", t.name, b.rps, b.p50, b.p99, errs, b.rps/proxyRPS)
	}

	fmt.Printf("\none connection (-c1), added latency over direct:\n")
	one := []target{targets[0]}
	one = append(one, targets[2:]...)
	var direct time.Duration
	for i, t := range one {
		res, err := runWrk(t, 1)
		if err != nil {
			return err
		}
		if i == 0 {
			direct = res.p50
		}
		failed = failed || (t.plugboard && res.errors > 0)
		fmt.Printf("%-26s p50 %10s  added %10s  %8.0f req/s\n", t.name, res.p50, res.p50-direct, res.rps)
	}
	if failed {
		return errors.New("a Plugboard request failed (see the errors column)")
	}
	return nil
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

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSocket  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// parseWrk reads the figures of wrk --latency's report.
func parseWrk(out string) (result, error) {
	var r result
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk printed no Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.errors += n
	}
	if m := reSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.errors += n
		}
	}
	for _, m := range reLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit)).Round(time.Microsecond)
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	return r, nil
}

// serve serves h on a loopback port and returns its URL.
func serve(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go http.Serve(l, h)
	return "http://" + l.Addr().String(), nil
}

// startPlugboard starts a plugboard server on dir with the connector and a connection "bench"
// to upstream, warms it, and returns its URL and a stop function.
func startPlugboard(bin, dir string, wasm []byte, upstream, pprofAddr string) (string, func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	logFile, err := os.Create(dir + ".log")
	if err != nil {
		cancel()
		return "", nil, err
	}
	srv := exec.CommandContext(ctx, bin, "serve", "--listen", "127.0.0.1:0", "--data", dir,
		"--log-level", "warn", "--egress-allow", "127.0.0.0/8")
	if pprofAddr != "" {
		srv.Args = append(srv.Args, "--pprof-listen", pprofAddr)
	}
	srv.Env = append(os.Environ(), "PLUGBOARD_ADMIN_TOKEN="+token)
	srv.Cancel = func() error { return srv.Process.Signal(os.Interrupt) }
	srv.Stderr = logFile
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		cancel()
		return "", nil, err
	}
	stop := func() { cancel(); srv.Wait(); logFile.Close() }
	base, err := serverURL(stdout)
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("%w (log: %s.log)", err, dir)
	}
	steps := []struct {
		method, path, ctype string
		body                []byte
	}{
		{"POST", "/v1/connectors", "application/wasm", wasm},
		{"POST", "/v1/connections", "application/json", []byte(`{"id":"bench","connectors":["http"],"params":{"base_url":"` + upstream + `"},"auth":{"type":"api_key","api_key":"k"}}`)},
	}
	for range 50 { // warm: the first calls start instances
		steps = append(steps, struct {
			method, path, ctype string
			body                []byte
		}{"POST", "/v1/connectors/http/actions/request", "application/json", []byte(`{"connection":"bench","input":{"path":"/item"}}`)})
	}
	for _, s := range steps {
		if err := call(s.method, base+s.path, s.ctype, s.body); err != nil {
			stop()
			return "", nil, err
		}
	}
	return base, stop, nil
}

func serverURL(stdout io.Reader) (string, error) {
	re := regexp.MustCompile(`serving on (http://\S+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return u, nil
	case <-time.After(2 * time.Minute):
		return "", errors.New("the server did not start within 2 minutes")
	}
}

func call(method, url, ctype string, body []byte) error {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// fetchProfile writes a CPU profile of d from the server's pprof address to file.
func fetchProfile(addr string, d time.Duration, file string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET profile: %s (does -bin support --pprof-listen?)", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
