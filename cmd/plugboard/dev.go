package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/plugboard/plugboard/registry"
	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// defaultWatchInterval is how often `plugboard dev` and `serve --watch` look at the directory:
// a look is a directory listing and a stat a file, so a short interval is cheap, and a build is
// pushed within two intervals of its end (BENCHMARKS.md "Dev loop").
const defaultWatchInterval = 100 * time.Millisecond

func (c *cli) devCommand() *command {
	var dir string
	var interval time.Duration
	var approve bool
	var output outputFormat
	return &command{
		name:  "dev",
		args:  "--watch DIR",
		short: "Re-upload and activate connectors whenever their .wasm changes",
		long: "Watch a directory of connector plugins and push each .wasm to the server whenever it\n" +
			"changes (polling modification times and sizes; a file is pushed once two looks agree and\n" +
			"its WebAssembly sections add up to its size), activating it at once and printing each\n" +
			"step: the loop for a connector author is edit, build, call. Every file is pushed once at\n" +
			"start, once it stops changing (an empty or cut-short file waits: a build is writing it).\n\n" +
			"A pushed build answers within a second or two: the server checks it and serves it with\n" +
			"wazero's interpreter at once, and compiles it with the optimizing compiler in the\n" +
			"background; calls in those first seconds run slower (about ten times for a Go plugin).\n\n" +
			"A rebuild that keeps the manifest's version is stored as VERSION+dev.<digest> (SemVer build\n" +
			"metadata) instead of being refused, and the previous dev build is deleted once the new one\n" +
			"serves. A version asking for new hosts, auth types or reveal capabilities is refused\n" +
			"unless --approve-capabilities is given. Stop with Ctrl-C.\n\n" +
			"-o json prints one JSON object a line (JSON lines) for each push: {\"time\", \"file\",\n" +
			"\"result\" (uploaded, activated, unchanged or error), \"connector\", \"version\", \"took_ms\",\n" +
			"\"size\", \"since_build_ms\" (from the file's modification time to the version serving;\n" +
			"not for a file found at start), \"check_ms\", \"store_ms\", \"activate_ms\" (the server's\n" +
			"steps, when it reports them), \"changes\" (against the version it replaced), \"error\":\n" +
			"{\"code\", \"message\"}}; the progress lines go to standard error.",
		example: "# Terminal 1: a local server; terminal 2: the watcher; terminal 3: build and call\n" +
			"plugboard serve\n" +
			"plugboard dev --watch ./build\n" +
			"# For an editor or a script: one JSON object a push\n" +
			"plugboard dev --watch ./build -o json | jq -c 'select(.result == \"error\")'\n" +
			"GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/hello.wasm ./hello\n" +
			"# Or let the server watch its own connectors directory\n" +
			"plugboard serve --connectors-dir ./build --watch",
		flags: func(fs *flagSet) {
			fs.StringVar(&dir, "watch", "", "`DIR` holding the .wasm files to watch (required)")
			fs.DurationVar(&interval, "interval", defaultWatchInterval, "how often to look at the directory")
			fs.BoolVar(&approve, "approve-capabilities", false, "accept the origins, auth types and reveal capabilities a new build asks for")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			if dir == "" {
				return usagef("--watch DIR is required")
			}
			if interval <= 0 {
				return usagef("--interval must be positive")
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("--watch %s: not a directory", dir)
			}
			w := &watcher{api: c.api(), dir: dir, interval: interval, approve: approve, out: c.stdout, now: c.now}
			if output == outputJSON {
				w.json, w.notes = true, c.stderr
			}
			return w.run(ctx)
		},
	}
}

// watcher pushes the .wasm files of a directory to a server whenever they change.
type watcher struct {
	api      *client.Client
	dir      string
	interval time.Duration
	approve  bool
	out      io.Writer
	now      func() time.Time
	// json prints each push as a JSON line on out, and the other lines on notes.
	json  bool
	notes io.Writer

	started time.Time            // when run began: a file modified since was built while watched
	pushed  map[string]fileStamp // the state of each file when it was last pushed (or found cut short)
	pending map[string]fileStamp // changed files, pushed once two looks agree
	names   map[string]string    // file -> connector name, from its last push
}

// notesOut is where the lines other than the push results go: out, or with -o json notes.
func (w *watcher) notesOut() io.Writer {
	if w.json {
		return w.notes
	}
	return w.out
}

// fileStamp is what the watcher compares to see a change.
type fileStamp struct {
	size int64
	mod  time.Time
}

// run pushes every file once, then every change, until ctx ends.
func (w *watcher) run(ctx context.Context) error {
	w.pushed, w.pending, w.names = map[string]fileStamp{}, map[string]fileStamp{}, map[string]string{}
	w.started = time.Now()
	fmt.Fprintf(w.notesOut(), "Watching %s for .wasm changes (every %s); Ctrl-C to stop.\n", w.dir, w.interval)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.scan(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scan looks at the directory once. A file is pushed when its stamp differs from the last push
// and agrees with the previous look, so a file being written is not pushed half-way. That holds
// at start too: a build that is writing a file when the watcher starts (`go build -o` truncates
// the file, then copies it in) would otherwise be pushed empty or cut short. An empty file is
// never pushed: it is a build between truncating and writing. push then checks that the bytes
// read are a whole module, for a writer that paused between two looks.
func (w *watcher) scan(ctx context.Context) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		w.report(devEvent{Result: "error", Error: &devError{Message: fmt.Sprintf("reading %s: %v", w.dir, err)}})
		return
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".wasm") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(w.dir, name))
		if err != nil {
			continue // removed meanwhile
		}
		st := fileStamp{fi.Size(), fi.ModTime()}
		if last, ok := w.pushed[name]; ok && last == st {
			delete(w.pending, name)
			continue
		}
		if p, ok := w.pending[name]; ok && p == st && st.size > 0 {
			delete(w.pending, name)
			w.pushed[name] = st
			w.push(ctx, name, st)
			continue
		}
		w.pending[name] = st
	}
}

// push uploads and activates one file, whose stamp was st when two looks agreed: it prints a
// progress line as the upload starts and one with the result and the time of each step, plus
// the changes against the version it replaced.
func (w *watcher) push(ctx context.Context, file string, st fileStamp) {
	wasm, err := os.ReadFile(filepath.Join(w.dir, file))
	if err != nil {
		w.report(devEvent{File: file, Result: "error", Error: &devError{Message: err.Error()}})
		return
	}
	if int64(len(wasm)) != st.size || !wasmComplete(wasm) {
		// Still being written, or a build cut short: the next change is pushed.
		fmt.Fprintf(w.notesOut(), "%s %s is not a whole WebAssembly module yet (%s); waiting for the build to finish writing it\n",
			w.now().Format("15:04:05"), file, mib(int64(len(wasm))))
		return
	}
	var before *client.Connector
	if name := w.names[file]; name != "" {
		if con, err := w.api.GetConnector(ctx, name); err == nil {
			before = &con
		}
	}
	built := !st.mod.Before(w.started) // written while watched, not found at start
	what := "found"
	if built {
		what = "changed"
	}
	fmt.Fprintf(w.notesOut(), "%s %s %s → uploading (%s)\n", w.now().Format("15:04:05"), file, what, mib(st.size))
	start := time.Now()
	v, created, err := w.api.UploadConnectorWith(ctx, wasm, client.UploadOptions{Activate: true, ApproveCapabilities: w.approve, Dev: true})
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		msg := err.Error()
		if errors.Is(err, &client.Problem{Code: client.CodeCapabilitiesChanged}) && !w.approve {
			msg += "; accept with --approve-capabilities"
		}
		de := &devError{Message: msg}
		if p, ok := errors.AsType[*client.Problem](err); ok {
			de.Code = p.Code
		}
		w.report(devEvent{File: file, Result: "error", Error: de})
		return
	}
	w.names[file] = v.Name
	var sinceBuild time.Duration
	if built {
		sinceBuild = max(time.Millisecond, time.Since(st.mod).Round(time.Millisecond))
	}
	ev := devEvent{File: file, Connector: v.Name, Version: v.Version, TookMS: took.Milliseconds(), Size: st.size,
		SinceBuildMS: sinceBuild.Milliseconds(), CheckMS: v.Timing.Check.Milliseconds(), StoreMS: v.Timing.Store.Milliseconds(),
		ActivateMS: v.Timing.Activate.Milliseconds(), took: took, sinceBuild: sinceBuild, timing: v.Timing}
	switch {
	case !created && before != nil && before.ActiveVersion == v.Version:
		ev.Result = "unchanged"
	case !created:
		ev.Result = "activated"
	default:
		ev.Result = "uploaded"
	}
	if ev.Result != "unchanged" && before != nil && before.Manifest != nil && v.Manifest != nil && before.ActiveVersion != v.Version {
		for _, ch := range registry.DiffManifests(before.Manifest, v.Manifest) {
			ev.Changes = append(ev.Changes, ch.String())
		}
	}
	w.report(ev)
}

// devEvent is what one push did: a line of `plugboard dev`, or with -o json a JSON line.
type devEvent struct {
	Time time.Time `json:"time"`
	File string    `json:"file,omitempty"`
	// Result is "uploaded" (a new version, now active), "activated" (already stored, now
	// active), "unchanged" (the active version's own bytes) or "error".
	Result    string `json:"result"`
	Connector string `json:"connector,omitempty"`
	Version   string `json:"version,omitempty"`
	// TookMS is the upload and activation as the watcher saw it.
	TookMS int64 `json:"took_ms,omitempty"`
	// Size is the file's size in bytes.
	Size int64 `json:"size,omitempty"`
	// SinceBuildMS is from the file's modification time (the end of the build) to the version
	// serving, for a file written while watched (not one found at start).
	SinceBuildMS int64 `json:"since_build_ms,omitempty"`
	// CheckMS, StoreMS and ActivateMS are the server's steps (upload checks and compilation,
	// storing, activation), when it reports them (a Server-Timing header).
	CheckMS    int64     `json:"check_ms,omitempty"`
	StoreMS    int64     `json:"store_ms,omitempty"`
	ActivateMS int64     `json:"activate_ms,omitempty"`
	Changes    []string  `json:"changes,omitempty"`
	Error      *devError `json:"error,omitempty"`

	took, sinceBuild time.Duration
	timing           client.UploadTiming
}

// devError is why a push failed: the API's problem code when the server refused it.
type devError struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// report prints ev: a JSON line, or the line for people with the changes under it.
func (w *watcher) report(ev devEvent) {
	ev.Time = w.now().UTC()
	if w.json {
		b, err := json.Marshal(ev)
		if err == nil {
			w.out.Write(append(unescapeHTML(b), '\n'))
		}
		return
	}
	switch ev.Result {
	case "error":
		if ev.File == "" {
			w.logf("%s", ev.Error.Message)
		} else {
			w.logf("%s: %s", ev.File, ev.Error.Message)
		}
	case "unchanged":
		w.logf("%s: %s %s unchanged", ev.File, ev.Connector, ev.Version)
	case "activated":
		w.logf("%s: %s %s active (already stored; took %s)", ev.File, ev.Connector, ev.Version, ev.took)
	default:
		steps := fmt.Sprintf("uploaded and swapped in %s", seconds(ev.took))
		if t := ev.timing; t.Check > 0 {
			steps = fmt.Sprintf("compiled and checked in %s, stored in %s, swapped in %s", seconds(t.Check), seconds(t.Store), seconds(t.Activate))
		}
		if ev.sinceBuild > 0 {
			w.logf("%s: %s → %s %s active, answering (%s after the build)", ev.File, steps, ev.Connector, ev.Version, seconds(ev.sinceBuild))
		} else {
			w.logf("%s: %s → %s %s active, answering", ev.File, steps, ev.Connector, ev.Version)
		}
	}
	for _, ch := range ev.Changes {
		fmt.Fprintf(w.out, "  %s\n", ch)
	}
}

// seconds formats d for a progress line: "0.42 s".
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// mib formats a size for a progress line: "3.1 MiB".
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// wasmComplete reports whether b is a whole WebAssembly module as far as its framing goes: the
// header, then sections whose sizes add up to exactly the end of b. A file that a build is
// still writing (or that was cut short) ends inside a section. Bytes that are not WebAssembly at
// all count as complete: the server's upload checks say what is wrong with them.
func wasmComplete(b []byte) bool {
	const header = 8 // "\0asm" and the version
	if len(b) < header {
		return false
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		return true
	}
	for at := header; at < len(b); {
		at++ // section id
		size, n := binary.Uvarint(b[min(at, len(b)):])
		if n <= 0 || size > uint64(len(b)) {
			return false
		}
		at += n + int(size)
		if at > len(b) {
			return false
		}
	}
	return true
}

func (w *watcher) logf(format string, args ...any) {
	fmt.Fprintf(w.out, "%s %s\n", w.now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// watchConnectors runs the watcher of `plugboard serve --watch` against the server itself:
// the operator's own directory, so capability changes are approved.
func watchConnectors(ctx context.Context, baseURL, token, dir string, out io.Writer) error {
	api := client.New(baseURL, token, client.WithUserAgent("plugboard-serve-watch/"+buildVersion()))
	w := &watcher{api: api, dir: dir, interval: defaultWatchInterval, approve: true, out: out, now: time.Now}
	return w.run(ctx)
}
