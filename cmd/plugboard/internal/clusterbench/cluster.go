package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startNATS starts a nats-server with JetStream in this process (the same code as the
// nats-server binary), on a free loopback port, storing in dir.
func startNATS(dir string) (*natsserver.Server, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	opts := &natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, ServerName: "plugboard-clusterbench"}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, "", errors.New("nats-server did not get ready within 10 s")
	}
	return srv, "nats://127.0.0.1:" + strconv.Itoa(port), nil
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

// node is one `plugboard serve` process; it keeps its name, port, data directory and flags
// across kills and restarts.
type node struct {
	name string
	port int
	args []string // serve's flags
	log  string   // stderr of every run, appended

	base atomic.Value // "http://127.0.0.1:PORT" while it serves, "" otherwise

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// newNode prepares a node on a free port with its own data directory under root; store is
// "" for bbolt in that directory, or the NATS URL.
func newNode(root, name, store, masterKey string) (*node, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(root, name)
	args := []string{"serve", "--listen", "127.0.0.1:" + strconv.Itoa(port), "--data", data,
		"--egress-allow", "127.0.0.0/8", "--log-level", "warn"}
	if store != "" {
		args = append(args, "--store", store, "--node-name", name, "--master-key-file", masterKey)
	}
	n := &node{name: name, port: port, args: args, log: filepath.Join(root, name+".log")}
	n.base.Store("")
	return n, nil
}

// url is the node's base URL, "" while it is down.
func (n *node) url() string { return n.base.Load().(string) }

// start runs the node and waits until it serves.
func (n *node) start(bin string) error {
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, n.args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PLUGBOARD_ADMIN_TOKEN="+token)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "serving on "); ok && len(strings.Fields(rest)) > 0 {
				select {
				case found <- strings.Fields(rest)[0]:
				default:
				}
			}
		}
		cmd.Wait()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	select {
	case u := <-found:
		n.base.Store(u)
		return nil
	case <-done:
		return fmt.Errorf("node %s exited before it served; its log:\n%s", n.name, n.tail(40))
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("node %s did not serve within 2 minutes; its log:\n%s", n.name, n.tail(40))
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (n *node) kill() {
	n.base.Store("")
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// stop sends SIGINT (the node drains and exits), and SIGKILL after 15 s.
func (n *node) stop() {
	n.base.Store("")
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// tail is the last lines of the node's log.
func (n *node) tail(lines int) string {
	b, _ := os.ReadFile(n.log)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// client is every request's client: no redirects followed, a deadline per request.
var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second},
}

// call sends one authenticated request; body is sent as is when it is []byte
// (application/wasm), as JSON otherwise. It returns the status and the body.
func call(ctx context.Context, method, url string, body any) (int, []byte, error) {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/wasm"
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd, ct = bytes.NewReader(js), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// must sends one request and fails unless the status is want; it decodes a JSON answer into
// into when into is not nil.
func must(ctx context.Context, want int, method, url string, body, into any) error {
	code, out, err := call(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if code != want {
		return fmt.Errorf("%s %s: %d, want %d: %s", method, url, code, want, bytes.TrimSpace(out))
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			return fmt.Errorf("%s %s: %w: %s", method, url, err, out)
		}
	}
	return nil
}

// clusterDoc is the part of GET /v1/cluster the benchmark reads.
type clusterDoc struct {
	Store string `json:"store"`
	Node  string `json:"node"`
	Nodes []struct {
		Name    string            `json:"name"`
		Sources int               `json:"sources"`
		Routes  map[string]string `json:"routes"`
	} `json:"nodes"`
}

// clusterView is GET /v1/cluster on n, or an error when n is down or answers otherwise.
func clusterView(ctx context.Context, n *node) (clusterDoc, error) {
	var doc clusterDoc
	u := n.url()
	if u == "" {
		return doc, fmt.Errorf("node %s is down", n.name)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return doc, must(ctx, 200, "GET", u+"/v1/cluster", nil, &doc)
}

// waitFor polls cond every 20 ms until it is true or d passes; it returns how long it took.
func waitFor(d time.Duration, what string, cond func() bool) (time.Duration, error) {
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			return 0, fmt.Errorf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), nil
}
