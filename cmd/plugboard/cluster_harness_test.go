package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// The cluster tests run API.md "Cluster" for real: one nats-server with JetStream, in this
// process (a real server: the same code as the nats-server binary), and several real
// `plugboard serve` processes on loopback sharing it, each with its own data directory (the
// compilation cache) and the same master key file and admin token.

// testNATS is an in-process nats-server with JetStream that can be stopped and started again
// on the same port and store directory (the store becoming unreachable, then returning).
type testNATS struct {
	t    *testing.T
	port int
	dir  string

	mu  sync.Mutex
	srv *natsserver.Server
}

func startNATS(t *testing.T) *testNATS {
	t.Helper()
	n := &testNATS{t: t, port: freePort(t), dir: t.TempDir()}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *testNATS) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

func (n *testNATS) start() {
	n.t.Helper()
	opts := &natsserver.Options{Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.dir,
		NoLog: true, NoSigs: true, ServerName: "plugboard-test"}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		n.t.Fatalf("nats-server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats-server did not get ready within 10 s")
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
}

func (n *testNATS) stop() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// clusterNode is one `plugboard serve` of a test cluster; it keeps its name, port and data
// directory across kills and restarts.
type clusterNode struct {
	name string
	port int
	data string
	api  *crashAPI
	proc *crashServe
	logs []*lockedBuffer // stderr of every run
}

// testCluster is a nats-server and the nodes sharing it.
type testCluster struct {
	t     *testing.T
	bin   string
	root  string
	nats  *testNATS
	key   string // the master key file every node uses
	nodes []*clusterNode
}

// startCluster starts a nats-server and n nodes. The first node starts alone and creates
// the master key file; the others start with the same file, at the same time.
func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs a nats-server and several servers; run without -short")
	}
	root, bin := plugboardBinary(t)
	c := &testCluster{t: t, bin: bin, root: root, nats: startNATS(t)}
	c.key = filepath.Join(t.TempDir(), "master.key")
	for i := range n {
		c.nodes = append(c.nodes, &clusterNode{name: fmt.Sprintf("n%d", i+1), port: freePort(t),
			data: filepath.Join(t.TempDir(), fmt.Sprintf("n%d", i+1)), api: &crashAPI{t: t}})
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range c.nodes {
				for i, l := range nd.logs {
					t.Logf("log of node %s (run %d):\n%s", nd.name, i+1, crashTail(l.String(), 120))
				}
			}
		}
	})
	c.start(c.nodes[0])
	var wg sync.WaitGroup
	for _, nd := range c.nodes[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); c.startAsync(nd) }()
	}
	wg.Wait()
	for _, nd := range c.nodes {
		if nd.proc == nil {
			t.FailNow()
		}
	}
	return c
}

func (c *testCluster) start(nd *clusterNode) {
	c.t.Helper()
	c.startAsync(nd)
	if nd.proc == nil {
		c.t.FailNow()
	}
}

// startAsync starts nd; on failure it reports with t.Error (callable from a goroutine) and
// leaves nd.proc nil.
func (c *testCluster) startAsync(nd *clusterNode) {
	nd.proc = nil
	cmd := exec.Command(c.bin, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(nd.port), "--data", nd.data,
		"--store", c.nats.url(), "--node-name", nd.name, "--master-key-file", c.key,
		"--egress-allow", "127.0.0.0/8", "--log-level", "debug")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PLUGBOARD_ADMIN_TOKEN="+crashToken)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Error(err)
		return
	}
	s := &crashServe{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	nd.logs = append(nd.logs, s.stderr)
	if err := cmd.Start(); err != nil {
		c.t.Error(err)
		return
	}
	go func() { cmd.Wait(); close(s.done) }()
	c.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
	})
	url, err := readServingURL(stdout, s.done, 2*time.Minute)
	if err != nil {
		c.t.Errorf("node %s: %v\n%s", nd.name, err, crashTail(s.stderr.String(), 60))
		return
	}
	s.url = url
	nd.proc = s
	nd.api.base.Store(url)
}

// kill sends SIGKILL to the node and waits for it to be gone.
func (c *testCluster) kill(nd *clusterNode) {
	c.t.Helper()
	nd.api.base.Store("")
	nd.proc.kill(c.t)
}

// waitFor polls cond every 20 ms until it is true or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// readServingURL reads the server's stdout until "Plugboard is serving on URL".
func readServingURL(stdout interface{ Read([]byte) (int, error) }, done <-chan struct{}, timeout time.Duration) (string, error) {
	found := make(chan string, 1)
	go func() {
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 512)
		for {
			n, err := stdout.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := strings.IndexByte(string(buf), '\n')
				if i < 0 {
					break
				}
				line := string(buf[:i])
				buf = buf[i+1:]
				if _, rest, ok := strings.Cut(line, "serving on "); ok {
					found <- strings.Fields(rest)[0]
				}
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case u := <-found:
		return u, nil
	case <-done:
		return "", fmt.Errorf("the server exited before it served")
	case <-time.After(timeout):
		return "", fmt.Errorf("the server did not serve within %v", timeout)
	}
}

// clusterDocument is GET /v1/cluster.
type clusterDocument struct {
	Store string `json:"store"`
	Node  string `json:"node"`
	Nodes []struct {
		Name       string            `json:"name"`
		Address    string            `json:"address"`
		StartedAt  time.Time         `json:"started_at"`
		LastSeenAt time.Time         `json:"last_seen_at"`
		Version    string            `json:"version"`
		Sources    int               `json:"sources"`
		Routes     map[string]string `json:"routes"`
	} `json:"nodes"`
}

func (nd *clusterNode) cluster(t *testing.T) clusterDocument {
	t.Helper()
	var doc clusterDocument
	if err := json.Unmarshal(nd.api.must(200, "GET", "/v1/cluster", nil), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}
