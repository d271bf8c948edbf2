package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/plugboard/plugboard/cmd/plugboard/internal/client"
	"github.com/plugboard/plugboard/registry"
)

// defaultWatchInterval is how often `plugboard dev` and `serve --watch` look at the directory.
const defaultWatchInterval = 500 * time.Millisecond

func (c *cli) devCommand() *command {
	var dir string
	var interval time.Duration
	var approve bool
	return &command{
		name:  "dev",
		args:  "--watch DIR",
		short: "Re-upload and activate connectors whenever their .wasm changes",
		long: "Watch a directory of connector plugins and push each .wasm to the server whenever it\n" +
			"changes (polling modification times and sizes; a file is pushed once it stops changing),\n" +
			"activating it at once and printing the result: the loop for a connector author is edit,\n" +
			"build, call. Every file is pushed once at start, once it stops changing (an empty file\n" +
			"waits: a build is writing it).\n\n" +
			"A rebuild that keeps the manifest's version is stored as VERSION+dev.<digest> (SemVer build\n" +
			"metadata) instead of being refused, and the previous dev build is deleted once the new one\n" +
			"serves. A version asking for new hosts, auth types or reveal capabilities is refused\n" +
			"unless --approve-capabilities is given. Stop with Ctrl-C.",
		example: "# Terminal 1: a local server; terminal 2: the watcher; terminal 3: build and call\n" +
			"plugboard serve\n" +
			"plugboard dev --watch ./build\n" +
			"GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/hello.wasm ./hello\n" +
			"# Or let the server watch its own connectors directory\n" +
			"plugboard serve --connectors-dir ./build --watch",
		flags: func(fs *flagSet) {
			fs.StringVar(&dir, "watch", "", "`DIR` holding the .wasm files to watch (required)")
			fs.DurationVar(&interval, "interval", defaultWatchInterval, "how often to look at the directory")
			fs.BoolVar(&approve, "approve-capabilities", false, "accept the origins, auth types and reveal capabilities a new build asks for")
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

	pushed  map[string]fileStamp // the state of each file when it was last pushed
	pending map[string]fileStamp // changed files, pushed once two looks agree
	names   map[string]string    // file -> connector name, from its last push
}

// fileStamp is what the watcher compares to see a change.
type fileStamp struct {
	size int64
	mod  time.Time
}

// run pushes every file once, then every change, until ctx ends.
func (w *watcher) run(ctx context.Context) error {
	w.pushed, w.pending, w.names = map[string]fileStamp{}, map[string]fileStamp{}, map[string]string{}
	fmt.Fprintf(w.out, "Watching %s for .wasm changes (every %s); Ctrl-C to stop.\n", w.dir, w.interval)
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
// never pushed: it is a build between truncating and writing.
func (w *watcher) scan(ctx context.Context) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		w.logf("reading %s: %v", w.dir, err)
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
			w.push(ctx, name)
			continue
		}
		w.pending[name] = st
	}
}

// push uploads and activates one file and prints one line with the result, plus the changes
// against the version it replaced.
func (w *watcher) push(ctx context.Context, file string) {
	wasm, err := os.ReadFile(filepath.Join(w.dir, file))
	if err != nil {
		w.logf("%s: %v", file, err)
		return
	}
	var before *client.Connector
	if name := w.names[file]; name != "" {
		if con, err := w.api.GetConnector(ctx, name); err == nil {
			before = &con
		}
	}
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
		w.logf("%s: %s", file, msg)
		return
	}
	w.names[file] = v.Name
	switch {
	case !created && before != nil && before.ActiveVersion == v.Version:
		w.logf("%s: %s %s unchanged", file, v.Name, v.Version)
		return
	case !created:
		w.logf("%s: %s %s active (already stored; took %s)", file, v.Name, v.Version, took)
	default:
		w.logf("%s: %s %s active (uploaded and swapped in %s)", file, v.Name, v.Version, took)
	}
	if before != nil && before.Manifest != nil && v.Manifest != nil && before.ActiveVersion != v.Version {
		for _, ch := range registry.DiffManifests(before.Manifest, v.Manifest) {
			fmt.Fprintf(w.out, "  %s\n", ch)
		}
	}
}

func (w *watcher) logf(format string, args ...any) {
	fmt.Fprintf(w.out, "%s %s\n", w.now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// watchConnectors runs the watcher of `plugboard serve --watch` against the server itself:
// the operator's own directory, so capability changes are approved.
func watchConnectors(ctx context.Context, baseURL, token, dir string, out io.Writer) error {
	api := client.New(baseURL, token, nil)
	api.UserAgent = "plugboard-serve-watch/" + buildVersion()
	w := &watcher{api: api, dir: dir, interval: defaultWatchInterval, approve: true, out: out, now: time.Now}
	return w.run(ctx)
}
