// Command loadtest runs the hot-swap load test of `make loadtest`: the real plugboard binary on
// loopback, sustained load from vegeta at a constant rate, once without swaps and once while
// the active version is swapped back and forth (20 times by default), and a report of the
// non-2xx answers (which must be 0) and the latency quantiles of both runs.
//
// The connector is the anymanifest test plugin in two versions (patched manifests), so a call
// costs one pooled plugin instance and the JSON round trip: the load test measures the server
// and the swap, not an upstream.
//
//	go run ./cmd/plugboard/internal/loadtest -bin bin/plugboard -plugin bin/testplugins/anymanifest.wasm -vegeta $(go env GOPATH)/bin/vegeta
//
// It exits 1 when a call failed or a swap was refused.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/cmd/plugboard/internal/benchserver"
	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
)

const token = "pba_loadtest"

func main() {
	bin := flag.String("bin", "bin/plugboard", "the plugboard binary")
	plugin := flag.String("plugin", "bin/testplugins/anymanifest.wasm", "the anymanifest test plugin")
	vegeta := flag.String("vegeta", "vegeta", "the vegeta binary")
	rate := flag.Int("rate", 300, "requests per second")
	duration := flag.Duration("duration", 20*time.Second, "length of each run")
	swaps := flag.Int("swaps", 20, "swaps during the second run")
	workers := flag.Int("workers", 16, "vegeta's initial workers")
	flag.Parse()
	if err := run(*bin, *plugin, *vegeta, *rate, *duration, *swaps, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// report is the part of `vegeta report -type=json` the load test reads.
type report struct {
	Requests  int     `json:"requests"`
	Rate      float64 `json:"rate"`
	Success   float64 `json:"success"`
	Latencies struct {
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

func run(bin, plugin, vegeta string, rate int, duration time.Duration, swaps, workers int) error {
	for _, f := range []string{bin, plugin} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%v (run `make build` first)", err)
		}
	}
	if _, err := exec.LookPath(vegeta); err != nil {
		return fmt.Errorf("vegeta: %v (`make loadtest` installs it)", err)
	}
	tmp, err := os.MkdirTemp("", "plugboard-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The server: its own process, on a loopback port, logs to a file.
	srv, err := benchserver.Start(benchserver.Options{Bin: bin, Data: filepath.Join(tmp, "var"), Token: token,
		Log: filepath.Join(tmp, "server.log")})
	if err != nil {
		return err
	}
	defer srv.Stop() // SIGINT: the server drains and exits
	base := srv.URL
	api := func(method, path, contentType string, body []byte) ([]byte, error) {
		return srv.API(context.Background(), method, path, contentType, body)
	}
	fmt.Printf("server %s (pid %d), vegeta at %d req/s for %s per run, %d swaps\n", base, srv.Pid, rate, duration, swaps)

	wasm, err := os.ReadFile(plugin)
	if err != nil {
		return err
	}
	versions := []string{"1.0.0", "2.0.0"}
	for _, v := range versions {
		m := `{"abi":1,"name":"anymanifest","version":"` + v + `","auth":{"types":["none"]},"actions":[{"name":"echo","input_schema":{"type":"object"}}]}`
		b, err := patch.Patch(wasm, []byte(m))
		if err != nil {
			return err
		}
		if _, err := api(http.MethodPost, "/v1/connectors", "application/wasm", b); err != nil {
			return fmt.Errorf("uploading %s: %w", v, err)
		}
	}

	body := filepath.Join(tmp, "body.json")
	targets := filepath.Join(tmp, "targets.txt")
	os.WriteFile(body, []byte(`{"input":{"n":1}}`), 0o644)
	os.WriteFile(targets, []byte(fmt.Sprintf("POST %s/v1/connectors/anymanifest/actions/echo\nAuthorization: Bearer %s\nContent-Type: application/json\n@%s\n", base, token, body)), 0o644)
	attack := func(name string, d time.Duration) (report, error) {
		out := filepath.Join(tmp, name+".bin")
		cmd := exec.Command(vegeta, "attack", "-targets", targets, "-rate", fmt.Sprintf("%d/1s", rate), "-duration", d.String(),
			"-workers", strconv.Itoa(workers), "-timeout", "30s", "-output", out)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return report{}, fmt.Errorf("vegeta attack: %w", err)
		}
		js, err := exec.Command(vegeta, "report", "-type", "json", out).Output()
		if err != nil {
			return report{}, fmt.Errorf("vegeta report: %w", err)
		}
		var r report
		return r, json.Unmarshal(js, &r)
	}

	// Warm up: instances in the pool, connections open.
	if _, err := attack("warmup", 3*time.Second); err != nil {
		return err
	}
	steady, err := attack("steady", duration)
	if err != nil {
		return err
	}

	// The same load while a script swaps versions back and forth.
	type swapResult struct {
		took time.Duration
		err  error
	}
	results := make(chan []swapResult, 1)
	go func() {
		var rs []swapResult
		gap := duration / time.Duration(swaps+1)
		for i := 0; i < swaps; i++ {
			time.Sleep(gap)
			start := time.Now()
			_, err := api(http.MethodPut, "/v1/connectors/anymanifest/active", "application/json",
				[]byte(`{"version":"`+versions[(i+1)%2]+`"}`))
			rs = append(rs, swapResult{time.Since(start), err})
		}
		results <- rs
	}()
	swapping, err := attack("swapping", duration)
	if err != nil {
		return err
	}
	rs := <-results

	var failedSwaps []error
	var took []time.Duration
	for _, r := range rs {
		if r.err != nil {
			failedSwaps = append(failedSwaps, r.err)
		}
		took = append(took, r.took)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })

	fmt.Println()
	fmt.Println("| run | requests | rate (req/s) | non-2xx | p50 | p90 | p99 | max |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range []struct {
		name string
		rep  report
	}{{"no swaps", steady}, {fmt.Sprintf("%d swaps", swaps), swapping}} {
		l := r.rep.Latencies
		fmt.Printf("| %s | %d | %.0f | %d | %s | %s | %s | %s |\n", r.name, r.rep.Requests, r.rep.Rate, r.rep.non2xx(),
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max))
	}
	if len(took) > 0 {
		fmt.Printf("\nswap (PUT .../active) latency under load: p50 %s, max %s over %d swaps\n", ms(took[len(took)/2]), ms(took[len(took)-1]), len(took))
	}
	var problems []string
	for _, r := range []report{steady, swapping} {
		if n := r.non2xx(); n > 0 {
			problems = append(problems, fmt.Sprintf("%d non-2xx answers (%v; errors %v)", n, r.StatusCodes, r.Errors))
		}
	}
	for _, err := range failedSwaps {
		problems = append(problems, "swap refused: "+err.Error())
	}
	if len(rs) != swaps {
		problems = append(problems, fmt.Sprintf("%d swaps done, want %d", len(rs), swaps))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Println("\nOK: no failed call, every swap served.")
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
