package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// upstreamBody is what the upstream answers on every path: a small JSON document, as a REST
// API's item would be.
const upstreamBody = `{"id":42,"name":"widget","tags":["a","b"],"ok":true}`

// serveChild is this program run as its own child (-serve upstream or -serve proxy): it serves
// on a loopback port, prints "listening on URL" and exits when its standard input closes, that
// is when the parent exits, whatever way it ends.
func serveChild(role, to string) error {
	var h http.Handler
	switch role {
	case "upstream":
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(upstreamBody))
		})
	case "proxy":
		u, err := url.Parse(to)
		if err != nil || u.Host == "" {
			return fmt.Errorf("-proxy-to %q is not a URL", to)
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		// Keep as many upstream connections alive as wrk opens: the default transport keeps 2
		// idle per host and would measure connection setup instead of the proxy.
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024, IdleConnTimeout: time.Minute}
		// wrk ends a run by closing its connections mid-request, which the proxy would log
		// once per connection; a real failure is a 502 that wrk counts.
		rp.ErrorLog = log.New(io.Discard, "", 0)
		h = rp
	default:
		return fmt.Errorf("-serve %q: want upstream or proxy", role)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening on http://%s\n", l.Addr())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	return http.Serve(l, h)
}

// child is a running -serve process.
type child struct {
	url  string
	cmd  *exec.Cmd
	stop func()
}

// startChild runs this program's own binary with -serve role and waits for its URL. The
// upstream and the proxy are processes of their own, like the plugboard server, so none of
// them shares a Go runtime (scheduler, garbage collector) with another or with this program.
func startChild(role string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"-serve", role}, args...)...)
	stdin, err := cmd.StdinPipe() // closed when this process exits: the child then exits too
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				found <- u
			}
		}
		cmd.Wait()
		close(done)
	}()
	c := &child{cmd: cmd, stop: func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}}
	select {
	case c.url = <-found:
		return c, nil
	case <-done:
		return nil, fmt.Errorf("the %s process exited before it served", role)
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("the %s process did not serve within 30 s", role)
	}
}

// checkGET fails unless a GET of url answers 200 with the upstream's body.
func checkGET(ctx context.Context, url string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != upstreamBody {
		return errors.New(url + ": " + resp.Status + " " + string(b))
	}
	return nil
}
