package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

// loopback is the AllowNetworks that lets tests reach their httptest servers.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// fakeResolver answers host names from a table and counts lookups. A name may have several
// answers in turn (the last one repeats), to play a rebinding DNS server.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	lookups map[string]int
}

func newResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][][]netip.Addr{}, lookups: map[string]int{}}
}

// set makes host answer addrs (each a list of addresses) in turn.
func (r *fakeResolver) set(host string, addrs ...string) *fakeResolver {
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[host] = append(r.answers[host], as)
	return r
}

// replace makes host answer addrs from now on.
func (r *fakeResolver) replace(host string, addrs ...string) {
	r.mu.Lock()
	delete(r.answers, host)
	r.mu.Unlock()
	r.set(host, addrs...)
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if network != "ip" {
		return nil, fmt.Errorf("fake resolver: unexpected network %q", network)
	}
	answers, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := r.lookups[host]
	r.lookups[host]++
	return answers[min(n, len(answers)-1)], nil
}

func (r *fakeResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[host]
}

func (r *fakeResolver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.lookups {
		n += c
	}
	return n
}

// dialLog records every address the client connects to.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// newClient returns a Client for cfg whose dials are logged.
func newClient(t testing.TB, cfg Config) (*Client, *dialLog) {
	t.Helper()
	c := New(cfg)
	dl := &dialLog{}
	inner := c.dial
	c.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		dl.mu.Lock()
		dl.addrs = append(dl.addrs, address)
		dl.mu.Unlock()
		return inner(ctx, network, address)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, dl
}

// seen is a request as an upstream test server received it.
type seen struct {
	Method string      `json:"method"`
	Host   string      `json:"host"`
	Path   string      `json:"path"`
	Query  string      `json:"query"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// upstream is a loopback test server that records every request. Path /redirect redirects (see
// redirect); any other path goes to the handler or, without one, is echoed back as JSON.
type upstream struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []seen
	conns int
}

// newUpstream starts a server; handler (may be nil) answers after the request is recorded.
func newUpstream(t testing.TB, handler http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)}
		u.mu.Lock()
		u.reqs = append(u.reqs, s)
		u.mu.Unlock()
		if r.URL.Path == "/redirect" {
			redirect(w, r)
			return
		}
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	u.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			u.mu.Lock()
			u.conns++
			u.mu.Unlock()
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) port() int { return u.Listener.Addr().(*net.TCPAddr).Port }

// url returns http://name:port + path.
func (u *upstream) url(name, path string) string {
	return fmt.Sprintf("http://%s:%d%s", name, u.port(), path)
}

// origin returns http://name:port.
func (u *upstream) origin(name string) string { return u.url(name, "") }

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *upstream) connCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

// records collects Outbound records.
type records struct {
	mu  sync.Mutex
	out []Outbound
}

func (r *records) add(o Outbound) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = append(r.out, o)
}

func (r *records) list() []Outbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Outbound(nil), r.out...)
}

// get is a GET request document.
func get(url string) *abi.HTTPRequest { return &abi.HTTPRequest{Method: "GET", URL: url} }

func ptr[T any](v T) *T { return &v }

// errCode returns the reply's error code, or "" for a response.
func errCode(r *abi.HTTPResponse) string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// wantOK fails unless r is a response with the given status.
func wantOK(t *testing.T, r *abi.HTTPResponse, status int) {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("error %s: %s; want status %d", r.Error.Code, r.Error.Message, status)
	}
	if r.Status != status {
		t.Fatalf("status %d, want %d (body %q)", r.Status, status, r.Body)
	}
}

// wantErr fails unless r is an error document with code whose message holds every part.
func wantErr(t *testing.T, r *abi.HTTPResponse, code string, parts ...string) {
	t.Helper()
	if r.Error == nil {
		t.Fatalf("status %d, want error %s", r.Status, code)
	}
	if r.Error.Code != code {
		t.Fatalf("error %s (%s), want %s", r.Error.Code, r.Error.Message, code)
	}
	if r.Status != 0 || r.Headers != nil || r.Body != "" || r.BodyBase64 != "" {
		t.Fatalf("error reply carries a response: %+v", r)
	}
	for _, p := range parts {
		if !strings.Contains(r.Error.Message, p) {
			t.Errorf("message %q does not mention %q", r.Error.Message, p)
		}
	}
}

// echoed decodes the echo server's reply.
func echoed(t *testing.T, r *abi.HTTPResponse) seen {
	t.Helper()
	wantOK(t, r, http.StatusOK)
	var s seen
	if err := json.Unmarshal([]byte(r.Body), &s); err != nil {
		t.Fatalf("decoding echo %q: %v", r.Body, err)
	}
	return s
}

// redirect answers /redirect?code=302&n=3&to=URL: n-1 more redirects on this server, then one to
// "to" (default /echo). code defaults to 302.
func redirect(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code, _ := strconv.Atoi(q.Get("code"))
	if code == 0 {
		code = http.StatusFound
	}
	n, _ := strconv.Atoi(q.Get("n"))
	loc := q.Get("to")
	if loc == "" {
		loc = "/echo"
	}
	if n > 1 {
		next := url.Values{"code": {q.Get("code")}, "n": {strconv.Itoa(n - 1)}, "to": {q.Get("to")}}
		loc = "/redirect?" + next.Encode()
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(code)
	fmt.Fprintf(w, "redirecting to %s", loc)
}

// redirectURL is the /redirect path for code, n hops, ending at to ("" for /echo).
func redirectURL(code, n int, to string) string {
	return "/redirect?" + url.Values{"code": {strconv.Itoa(code)}, "n": {strconv.Itoa(n)}, "to": {to}}.Encode()
}
