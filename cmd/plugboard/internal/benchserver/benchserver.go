// Package benchserver starts a real `plugboard serve` process for the benchmark commands
// (loadtest, httpbench) and sends it authenticated API requests, so each command measures the
// binary a user runs rather than an in-process server.
package benchserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Options says how to start a server.
type Options struct {
	// Bin is the plugboard binary.
	Bin string
	// Data is the --data directory.
	Data string
	// Token is the admin token (PLUGBOARD_ADMIN_TOKEN).
	Token string
	// Log is the file that receives the server's stderr; empty means Data + ".log".
	Log string
	// Args are more serve flags. --listen 127.0.0.1:0, --data and --log-level warn come first,
	// so Args may override the log level.
	Args []string
}

// Server is a running `plugboard serve` process.
type Server struct {
	// URL is the base URL the server printed ("Plugboard is serving on URL").
	URL string
	// Pid is the process id.
	Pid int
	// Log is the file holding the server's stderr.
	Log string
	// PprofURL is the base URL of Go's profiler when Args asked for it (--pprof-listen) and
	// the server printed it ("Profiler (pprof) on URL/debug/pprof/"), else "".
	PprofURL string

	token string
	cmd   *exec.Cmd
	done  chan struct{}
}

// StartupTimeout bounds how long Start waits for the server to print its URL.
const StartupTimeout = 2 * time.Minute

// Start runs the server and waits until it serves. The process inherits the environment
// without its PLUGBOARD_ variables, so a setting of the caller's shell cannot change the run.
func Start(o Options) (*Server, error) {
	if o.Log == "" {
		o.Log = o.Data + ".log"
	}
	logFile, err := os.Create(o.Log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", o.Data, "--log-level", "warn"}, o.Args...)
	cmd := exec.Command(o.Bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLUGBOARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PLUGBOARD_ADMIN_TOKEN="+o.Token)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Pid: cmd.Process.Pid, Log: o.Log, token: o.Token, cmd: cmd, done: make(chan struct{})}
	found := make(chan urls, 1)
	go func() {
		servingURL(stdout, found)
		cmd.Wait()
		close(s.done)
	}()
	select {
	case u := <-found:
		s.URL, s.PprofURL = u.serving, u.pprof
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s exited before it served; its log:\n%s", o.Bin, tail(o.Log, 30))
	case <-time.After(StartupTimeout):
		s.Stop()
		return nil, fmt.Errorf("%s did not serve within %v; its log:\n%s", o.Bin, StartupTimeout, tail(o.Log, 30))
	}
}

var (
	reServing = regexp.MustCompile(`serving on (http://\S+)`)
	rePprof   = regexp.MustCompile(`Profiler \(pprof\) on (http://\S+?)/debug/pprof/`)
)

// urls are the base URLs a server printed at start.
type urls struct{ serving, pprof string }

// servingURL sends the URL of the first "serving on URL" line of r to found, with the
// profiler's URL when a line before it named one, then reads r to its end so the server never
// blocks on a full pipe.
func servingURL(r io.Reader, found chan<- urls) {
	var u urls
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := rePprof.FindStringSubmatch(sc.Text()); m != nil && u.serving == "" {
			u.pprof = m[1]
		}
		if m := reServing.FindStringSubmatch(sc.Text()); m != nil && u.serving == "" {
			u.serving = m[1]
			found <- u
		}
	}
}

// Stop sends SIGINT (the server drains and exits) and SIGKILL after 15 s, and waits until the
// process is gone. It may be called more than once.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// client sends the API requests: no redirects followed, a deadline per request long enough
// for an upload that compiles a plugin.
var client = &http.Client{
	Timeout:       2 * time.Minute,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ErrStatus is wrapped by API's error for an answer outside 2xx.
var ErrStatus = errors.New("answer outside 2xx")

// API sends one request with the admin token to the server's path and returns the body; an
// answer outside 2xx is an error wrapping [ErrStatus] that carries the status and the body.
func (s *Server) API(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %w: %d %s", method, path, ErrStatus, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

// tail is the last lines of a file.
func tail(file string, lines int) string {
	b, _ := os.ReadFile(file)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
