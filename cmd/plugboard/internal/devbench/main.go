// Command devbench measures the dev loop (issue 14, BENCHMARKS.md "Dev loop"): the time from
// the end of a build (the .wasm file written) to the new version answering an action call,
// against the real binary, for both watchers:
//
//   - serve: `plugboard serve --connectors-dir DIR --watch`, the server watching its own
//     directory;
//   - dev: `plugboard serve` plus `plugboard dev --watch DIR` in another process, uploading
//     through the API.
//
// `make bench-dev` runs it:
//
//	go run ./cmd/plugboard/internal/devbench -bin bin/plugboard -plugin bin/testplugins/anymanifest.wasm
//
// Each "build" is the anymanifest test plugin (a Go plugin of 3.2 MB) with its manifest block
// patched to a new description, so its bytes, digest and compiled code are new while its
// version stays: the server stores it as VERSION+dev.<digest> as it does a real rebuild. A build
// is written as `make` writes one (beside the target, then renamed into place) or, with
// -write inplace, as `go build -o` across file systems does (truncated, then written in 64 KiB
// chunks), which the watcher must not upload half-way. The clock starts when the file is
// complete; a caller invokes the action every -poll meanwhile and the clock stops at the first
// answer naming the new build's version. Every call must succeed: a failed call during a swap,
// or a build that never answers within -timeout, makes the program exit 1.
//
// It prints each push with the watcher's own progress lines, then per watcher the median, the
// minimum and the maximum.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

const (
	token     = "pba_devbench"
	connector = "anymanifest"
	baseVer   = "0.1.0"
	fileName  = "anymanifest.wasm"
)

// config is the command line.
type config struct {
	bin, base string
	plugin    string
	modes     []string
	pushes    int
	gap       time.Duration
	poll      time.Duration
	timeout   time.Duration
	write     string
	verbose   bool
}

func main() {
	var c config
	var modes string
	flag.StringVar(&c.bin, "bin", "bin/plugboard", "the plugboard binary to measure")
	flag.StringVar(&c.base, "base", "", "an older plugboard binary to measure the same way, after -bin (the before figures)")
	flag.StringVar(&c.plugin, "plugin", "bin/testplugins/anymanifest.wasm", "the anymanifest test plugin (make bin/testplugins/anymanifest.wasm)")
	flag.StringVar(&modes, "modes", "serve,dev", "comma-separated watchers to measure: serve (serve --watch) and dev (plugboard dev --watch)")
	flag.IntVar(&c.pushes, "n", 8, "builds pushed per watcher")
	flag.DurationVar(&c.gap, "gap", 6*time.Second, "pause after a build answers before writing the next (an author's edit; lets background work finish)")
	flag.DurationVar(&c.poll, "poll", 10*time.Millisecond, "pause between the caller's invokes")
	flag.DurationVar(&c.timeout, "timeout", 60*time.Second, "longest wait for a build to answer")
	flag.StringVar(&c.write, "write", "rename", "how a build is written: rename (beside the target, then renamed, as make does) or inplace (truncated, then written in chunks, as go build -o across file systems)")
	flag.BoolVar(&c.verbose, "v", false, "print every line the watcher prints")
	flag.Parse()
	c.modes = strings.Split(modes, ",")
	if c.write != "rename" && c.write != "inplace" {
		fmt.Fprintln(os.Stderr, "devbench: -write must be rename or inplace")
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "devbench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	wasm, err := os.ReadFile(c.plugin)
	if err != nil {
		return fmt.Errorf("%w (build it with make bin/testplugins/anymanifest.wasm)", err)
	}
	bins := []string{c.bin}
	if c.base != "" {
		bins = append(bins, c.base)
	}
	fmt.Printf("devbench: %s, plugin %s (%.1f MiB), %d builds per watcher, written by %s, %d CPUs\n",
		strings.Join(bins, " and "), filepath.Base(c.plugin), float64(len(wasm))/(1<<20), c.pushes, c.write, runtime.NumCPU())
	type row struct {
		bin, mode string
		took      []time.Duration
	}
	var rows []row
	for _, bin := range bins {
		for _, mode := range c.modes {
			c.bin = bin
			d, err := measure(c, mode, wasm)
			if err != nil {
				return fmt.Errorf("%s %s: %w", bin, mode, err)
			}
			rows = append(rows, row{bin, mode, d})
		}
	}
	fmt.Println()
	fmt.Println("From the build written to the new version answering an invoke:")
	fmt.Printf("%-30s %-7s %8s %8s %8s\n", "binary", "watcher", "median", "min", "max")
	for _, r := range rows {
		d := slices.Clone(r.took)
		slices.Sort(d)
		fmt.Printf("%-30s %-7s %7.2fs %7.2fs %7.2fs   n=%d\n", r.bin, r.mode, median(d).Seconds(), d[0].Seconds(), d[len(d)-1].Seconds(), len(d))
	}
	return nil
}

// build returns build i of the plugin: the manifest at baseVer with a description naming i.
func build(wasm []byte, i int) ([]byte, error) {
	doc := fmt.Sprintf(`{"abi":1,"name":%q,"version":%q,"description":"devbench build %d","auth":{"types":["none"]},"actions":[{"name":"echo","input_schema":{"type":"object"}}]}`,
		connector, baseVer, i)
	return patch.Patch(wasm, []byte(doc))
}

// storedVersion is the version the server stores build b under: baseVer for the first, then
// baseVer+dev.<first 8 hex digits of its digest> (API.md, dev builds).
func storedVersion(b []byte, first bool) string {
	if first {
		return baseVer
	}
	sum := sha256.Sum256(b)
	return baseVer + "+dev." + hex.EncodeToString(sum[:])[:8]
}

// measure runs one watcher and pushes c.pushes builds through it.
func measure(c config, mode string, wasm []byte) ([]time.Duration, error) {
	root, err := os.MkdirTemp("", "devbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	dir := filepath.Join(root, "build")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	first, err := build(wasm, 0)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, fileName), first, 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	args := []string{"serve", "--listen", "127.0.0.1:" + strconv.Itoa(port), "--data", filepath.Join(root, "var"), "--log-level", "warn"}
	if mode == "serve" {
		args = append(args, "--connectors-dir", dir, "--watch")
	} else if mode != "dev" {
		return nil, fmt.Errorf("unknown watcher %q: serve or dev", mode)
	}
	lines := &lineLog{verbose: c.verbose, prefix: "  | "}
	srv, err := start(c.bin, args, lines, filepath.Join(root, "serve.log"))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	if mode == "dev" {
		if err := waitReady(base, 2*time.Minute); err != nil {
			return nil, err
		}
		w, err := start(c.bin, []string{"dev", "--watch", dir}, lines, filepath.Join(root, "dev.log"), "PLUGBOARD_URL="+base)
		if err != nil {
			return nil, err
		}
		defer w.stop()
	}
	api := client.New(base, token, client.WithUserAgent("devbench"))
	fmt.Printf("\n%s %s: waiting for the first build to answer\n", c.bin, mode)
	if _, err := waitVersion(api, baseVer, time.Now().Add(3*time.Minute), c.poll); err != nil {
		return nil, fmt.Errorf("the first build: %w; the server's log is %s", err, filepath.Join(root, "serve.log"))
	}
	// A caller invokes all along; every call must succeed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := &caller{api: api, poll: c.poll}
	go calls.run(ctx)

	var took []time.Duration
	for i := 1; i <= c.pushes; i++ {
		time.Sleep(c.gap)
		b, err := build(wasm, i)
		if err != nil {
			return nil, err
		}
		want := storedVersion(b, false)
		mark := lines.mark()
		written, err := write(filepath.Join(dir, fileName), b, c.write)
		if err != nil {
			return nil, err
		}
		at, err := calls.waitFor(want, written.Add(c.timeout))
		if err != nil {
			lines.dump(mark)
			return nil, fmt.Errorf("build %d (%s): %w", i, want, err)
		}
		d := at.Sub(written)
		took = append(took, d)
		fmt.Printf("%s build %d: %s answering %.2f s after the build was written\n", mode, i, want, d.Seconds())
		time.Sleep(300 * time.Millisecond) // the watcher's last line
		if !c.verbose {
			lines.dump(mark)
		}
		if n := calls.failures(); n > 0 {
			return nil, fmt.Errorf("%d calls failed during the swaps; first: %v", n, calls.firstErr())
		}
	}
	return took, nil
}

// write puts b at path as a build would and returns when the file was complete.
func write(path string, b []byte, how string) (time.Time, error) {
	if how == "rename" {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return time.Time{}, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return time.Time{}, err
		}
		return time.Now(), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return time.Time{}, err
	}
	for off := 0; off < len(b); off += 64 << 10 {
		if _, err := f.Write(b[off:min(off+64<<10, len(b))]); err != nil {
			f.Close()
			return time.Time{}, err
		}
		time.Sleep(2 * time.Millisecond) // a copy competing with the rest of a build
	}
	if err := f.Close(); err != nil {
		return time.Time{}, err
	}
	return time.Now(), nil
}

// caller invokes echo in a loop and remembers when each version first answered.
type caller struct {
	api  *client.Client
	poll time.Duration

	mu    sync.Mutex
	first map[string]time.Time
	fails int
	err   error
}

func (c *caller) run(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := c.api.Invoke(ctx, connector, "echo", client.InvokeRequest{})
		now := time.Now()
		c.mu.Lock()
		switch {
		case ctx.Err() != nil:
		case err != nil:
			c.fails++
			if c.err == nil {
				c.err = err
			}
		default:
			if c.first == nil {
				c.first = map[string]time.Time{}
			}
			if _, ok := c.first[out.Version]; !ok {
				c.first[out.Version] = now
			}
		}
		c.mu.Unlock()
		time.Sleep(c.poll)
	}
}

// waitFor returns when version first answered, waiting until deadline.
func (c *caller) waitFor(version string, deadline time.Time) (time.Time, error) {
	for time.Now().Before(deadline) {
		c.mu.Lock()
		at, ok := c.first[version]
		c.mu.Unlock()
		if ok {
			return at, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Time{}, errors.New("it never answered")
}

func (c *caller) failures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fails
}

func (c *caller) firstErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// waitVersion invokes until version answers; other answers and errors are waited out.
func waitVersion(api *client.Client, version string, deadline time.Time, poll time.Duration) (time.Time, error) {
	var last error
	for time.Now().Before(deadline) {
		out, err := api.Invoke(context.Background(), connector, "echo", client.InvokeRequest{})
		if err == nil && out.Version == version {
			return time.Now(), nil
		}
		last = err
		time.Sleep(poll)
	}
	return time.Time{}, fmt.Errorf("%s did not answer (last error: %v)", version, last)
}

// waitReady waits until the server answers its health check.
func waitReady(base string, within time.Duration) error {
	api := client.New(base, token, client.WithUserAgent("devbench"))
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if api.Health(context.Background()) == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the server at %s did not answer its health check within %s", base, within)
}

// proc is a child process of the benchmark.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs bin with args, the admin token and env in the environment, stdout to lines and
// stderr to logPath.
func start(bin string, args []string, lines *lineLog, logPath string, env ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PLUGBOARD_ADMIN_TOKEN="+token, "PLUGBOARD_TOKEN="+token)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		lines.copy(out)
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop interrupts the process and waits for it.
func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// lineLog keeps the lines the children print, to show those of one push.
type lineLog struct {
	verbose bool
	prefix  string

	mu    sync.Mutex
	lines []string
}

func (l *lineLog) copy(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		l.mu.Unlock()
		if l.verbose {
			fmt.Println(l.prefix + sc.Text())
		}
	}
}

// mark returns the number of lines printed so far.
func (l *lineLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// dump prints the lines since mark.
func (l *lineLog) dump(mark int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines[mark:] {
		if json.Valid([]byte(s)) || strings.TrimSpace(s) != "" {
			fmt.Println(l.prefix + s)
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
