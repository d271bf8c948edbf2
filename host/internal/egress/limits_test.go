package egress

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
)

func TestResponseSizeCap(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name     string
		size     int
		chunked  bool // no Content-Length: the cap is found while reading
		head     bool
		wantCode string
	}{
		{name: "response at the cap passes", size: limit},
		{name: "chunked response at the cap passes", size: limit, chunked: true},
		{name: "response over cap is too_large", size: limit + 1, wantCode: "too_large"},
		{name: "chunked response over cap is too_large", size: 50 * limit, chunked: true, wantCode: "too_large"},
		{name: "HEAD announcing a length over the cap passes", size: 50 * limit, head: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				body := strings.Repeat("x", tt.size)
				if !tt.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(tt.size))
					_, _ = w.Write([]byte(body))
					return
				}
				for i := 0; i < len(body); i += 100 {
					_, _ = w.Write([]byte(body[i:min(i+100, len(body))]))
					w.(http.Flusher).Flush()
				}
			})
			c, _ := newClient(t, Config{AllowNetworks: loopback, MaxResponseBytes: limit})
			o := up.origin("127.0.0.1")
			var rec records
			req := get(o + "/big")
			if tt.head {
				req.Method = http.MethodHead
			}
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, nil, req, rec.add)
			if tt.wantCode != "" {
				wantErr(t, got, tt.wantCode, fmt.Sprint(limit))
			} else {
				wantOK(t, got, http.StatusOK)
				if tt.head {
					if got.Headers["Content-Length"] != fmt.Sprint(tt.size) || got.Body != "" {
						t.Errorf("HEAD answered %q with Content-Length %q", got.Body, got.Headers["Content-Length"])
					}
				} else if len(got.Body) != tt.size {
					t.Errorf("body is %d bytes, want %d", len(got.Body), tt.size)
				}
			}
			out := rec.list()
			if len(out) != 1 || out[0].Status != http.StatusOK || out[0].BytesIn > limit+1 {
				t.Errorf("records = %+v: want one, status 200, at most %d bytes read", out, limit+1)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name         string
		budget       int
		paths        []string // one Do each
		wantCodes    []string // per Do; "" is success
		wantRequests int
	}{
		{name: "budget exhausted is too_many_requests", budget: 1, paths: []string{"/a", "/b"}, wantCodes: []string{"", "too_many_requests"}, wantRequests: 1},
		{name: "each redirect hop spends the budget", budget: 2, paths: []string{redirectURL(302, 2, "")}, wantCodes: []string{"too_many_requests"}, wantRequests: 2},
		{name: "zero budget sends nothing", budget: 0, paths: []string{"/a"}, wantCodes: []string{"too_many_requests"}, wantRequests: 0},
		{name: "refused requests spend nothing", budget: 1, paths: []string{"http://elsewhere.test/", "/a"}, wantCodes: []string{"host_not_allowed", ""}, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			c, _ := newClient(t, Config{AllowNetworks: loopback})
			o := up.origin("127.0.0.1")
			b := NewBudget(tt.budget)
			for i, p := range tt.paths {
				if !strings.HasPrefix(p, "http") {
					p = o + p
				}
				got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, b, get(p), nil)
				if errCode(got) != tt.wantCodes[i] {
					t.Errorf("call %d: code %q (%v), want %q", i, errCode(got), got.Error, tt.wantCodes[i])
				}
			}
			if n := len(up.requests()); n != tt.wantRequests || b.Used() != tt.wantRequests {
				t.Errorf("upstream got %d requests, budget used %d; want %d", n, b.Used(), tt.wantRequests)
			}
		})
	}
}

// TestBudgetHammer shares one budget between many concurrent requests: exactly the budget goes
// out, the rest is refused.
func TestBudgetHammer(t *testing.T) {
	const budget, callers = 20, 60
	up := newUpstream(t, nil)
	c, _ := newClient(t, Config{AllowNetworks: loopback})
	o := up.origin("127.0.0.1")
	b := NewBudget(budget)
	var wg sync.WaitGroup
	codes := make(chan string, callers)
	for range callers {
		wg.Go(func() {
			codes <- errCode(c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, b, get(o+"/x"), nil))
		})
	}
	wg.Wait()
	close(codes)
	count := map[string]int{}
	for code := range codes {
		count[code]++
	}
	if count[""] != budget || count["too_many_requests"] != callers-budget || len(up.requests()) != budget {
		t.Errorf("results %v, upstream %d requests; want %d sent and %d refused", count, len(up.requests()), budget, callers-budget)
	}
	if b.Remaining() != 0 || b.Used() != budget {
		t.Errorf("budget remaining %d used %d", b.Remaining(), b.Used())
	}
}

func TestTimeouts(t *testing.T) {
	tests := []struct {
		name        string
		callTimeout time.Duration // 0: no call deadline
		timeoutMS   int64
		stall       string // "headers" or "body": where the server stalls
		wantInMsg   string
	}{
		{name: "slow server past the request timeout is timeout", timeoutMS: 50, stall: "headers", wantInMsg: "timeout_ms (50 ms)"},
		{name: "slow server past the call deadline is timeout", callTimeout: 50 * time.Millisecond, stall: "headers", wantInMsg: "call's deadline"},
		{name: "a request timeout past the call deadline uses the deadline", callTimeout: 50 * time.Millisecond, timeoutMS: 60_000, stall: "headers", wantInMsg: "call's deadline"},
		{name: "body that stalls past the request timeout is timeout", timeoutMS: 50, stall: "body", wantInMsg: "timeout_ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.stall == "body" {
					w.Header().Set("Content-Length", "10")
					_, _ = w.Write([]byte("12345"))
					w.(http.Flusher).Flush()
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			t.Cleanup(func() { close(release) }) // runs before the server's Close
			c, _ := newClient(t, Config{AllowNetworks: loopback})
			ctx := context.Background()
			if tt.callTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.callTimeout)
				defer cancel()
			}
			o := up.origin("127.0.0.1")
			start := time.Now()
			got := c.Do(ctx, &Grant{ManifestOrigins: []string{o}}, nil, &abi.HTTPRequest{Method: "GET", URL: o + "/slow", TimeoutMS: tt.timeoutMS}, nil)
			wantErr(t, got, "timeout", tt.wantInMsg)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestCallAlreadyOverSendsNothing(t *testing.T) {
	up := newUpstream(t, nil)
	c, dials := newClient(t, Config{AllowNetworks: loopback})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	o := up.origin("127.0.0.1")
	b := NewBudget(1)
	wantErr(t, c.Do(ctx, &Grant{ManifestOrigins: []string{o}}, b, get(o+"/x"), nil), "timeout", "deadline")
	if len(dials.list()) != 0 || b.Used() != 0 {
		t.Errorf("a call past its deadline dialed or spent budget")
	}
}

// TestNetworkErrorsAreSafe checks failures map to network (or timeout) with a message that
// names the problem but never the URL's query or a secret.
func TestNetworkErrorsAreSafe(t *testing.T) {
	closed := newUpstream(t, nil)
	closedOrigin := closed.origin("127.0.0.1")
	closed.Close() // nothing listens on its port any more

	hangup := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	tests := []struct {
		name      string
		origin    string
		resolves  bool // use the name "svc.test", which the resolver does not know
		wantCode  string
		wantInMsg string
	}{
		{name: "connection refused is network", origin: closedOrigin, wantCode: "network", wantInMsg: "connection refused"},
		{name: "server hanging up is network", origin: hangup.origin("127.0.0.1"), wantCode: "network", wantInMsg: "closed the connection"},
		{name: "unknown host is network", origin: "http://svc.test", resolves: true, wantCode: "network", wantInMsg: "cannot resolve svc.test: no such host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClient(t, Config{AllowNetworks: loopback, Resolver: newResolver()})
			cred := &Credential{Type: abi.AuthAPIKey, APIKey: secret, APIKeyIn: &abi.APIKeyAuth{In: "query", Name: "key"}}
			g := &Grant{ManifestOrigins: []string{tt.origin}, ConnectionOrigins: []string{tt.origin}, Credential: cred}
			var rec records
			got := c.Do(context.Background(), g, nil, get(tt.origin+"/private/path?q=guest-query"), rec.add)
			wantErr(t, got, tt.wantCode, tt.wantInMsg, tt.origin)
			for _, text := range append([]string{got.Error.Message}, rec.list()[0].Err) {
				for _, leak := range []string{"s3cr3t", "private/path", "guest-query"} {
					if strings.Contains(text, leak) {
						t.Errorf("%q holds %q", text, leak)
					}
				}
			}
		})
	}
}
