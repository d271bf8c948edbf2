package plugboard_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
)

// stub is a local server that answers its script in order (the last answer repeats) and
// records each attempt's correlation id and body.
type stub struct {
	*httptest.Server
	mu     sync.Mutex
	ids    []string
	bodies []string
}

type answer struct {
	status     int
	retryAfter string
}

func newStub(t *testing.T, script ...answer) *stub {
	s := &stub{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.ids)
		id := r.Header.Get("X-Correlation-ID")
		if id == "" {
			id = "c_made_by_server" // as the server does: make one and echo it
		}
		s.ids = append(s.ids, r.Header.Get("X-Correlation-ID"))
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		a := script[min(n, len(script)-1)]
		w.Header().Set("X-Correlation-ID", id)
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		if a.status == 200 {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"output": {"ok": true}, "connector": "http", "version": "1.0.0", "correlation_id": "`+id+`"}`)
			return
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(a.status)
		io.WriteString(w, `{"type": "about:blank", "title": "x", "status": `+strconv.Itoa(a.status)+`, "code": "rate_limited", "detail": "slow down"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *stub) attempts() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...), append([]string(nil), s.bodies...)
}

// fakeSleep records the waits asked for and returns at once.
func fakeSleep(c *plugboard.Client) *[]time.Duration {
	var waits []time.Duration
	var mu sync.Mutex
	plugboard.SetSleep(c, func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return ctx.Err()
	})
	return &waits
}

func invoke(ctx context.Context, c *plugboard.Client) (plugboard.InvokeResponse, error) {
	return c.Invoke(ctx, "http", "request", plugboard.InvokeRequest{Connection: "crm", Input: []byte(`{"method": "GET", "path": "/records"}`)})
}

func TestRetries(t *testing.T) {
	soon := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		script     []answer
		maxRetries int // -1: the default
		callerID   string
		wantTries  int
		wantWaits  []time.Duration // nil: not checked; see backoff
		backoff    bool            // the waits are the exponential backoff
		wantErr    int             // the status of the error; 0: success
	}{
		{name: "429 with Retry-After seconds is retried with the same caller's id",
			script: []answer{{429, "1"}, {429, "2"}, {200, ""}}, maxRetries: -1, callerID: "c_mine",
			wantTries: 3, wantWaits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "without a caller's id the retries carry the id the server made",
			script: []answer{{429, "0"}, {200, ""}}, maxRetries: -1,
			wantTries: 2, wantWaits: []time.Duration{0}},
		{name: "503 with an HTTP date waits until then",
			script: []answer{{503, soon}, {200, ""}}, maxRetries: -1,
			wantTries: 2},
		{name: "503 without Retry-After backs off exponentially from 0.5 s",
			script: []answer{{503, ""}, {503, ""}, {200, ""}}, maxRetries: -1,
			wantTries: 3, backoff: true},
		{name: "the retries run out and the last error is returned",
			script: []answer{{429, "1"}}, maxRetries: -1,
			wantTries: 3, wantWaits: []time.Duration{time.Second, time.Second}, wantErr: 429},
		{name: "a wait over 60 s is not waited for",
			script: []answer{{429, "61"}, {200, ""}}, maxRetries: -1,
			wantTries: 1, wantWaits: []time.Duration{}, wantErr: 429},
		{name: "WithMaxRetries(0) does not retry",
			script: []answer{{503, "1"}, {200, ""}}, maxRetries: 0,
			wantTries: 1, wantWaits: []time.Duration{}, wantErr: 503},
		{name: "a 500 is not retried",
			script: []answer{{500, "1"}, {200, ""}}, maxRetries: -1,
			wantTries: 1, wantWaits: []time.Duration{}, wantErr: 500},
		{name: "a 502 is not retried",
			script: []answer{{502, ""}, {200, ""}}, maxRetries: 5,
			wantTries: 1, wantWaits: []time.Duration{}, wantErr: 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(t, tt.script...)
			var opts []plugboard.Option
			if tt.maxRetries >= 0 {
				opts = append(opts, plugboard.WithMaxRetries(tt.maxRetries))
			}
			c := plugboard.New(s.URL, "pbk_test", opts...)
			waits := fakeSleep(c)
			ctx := t.Context()
			if tt.callerID != "" {
				ctx = plugboard.WithCorrelationID(ctx, tt.callerID)
			}
			out, err := invoke(ctx, c)
			ids, bodies := s.attempts()
			if len(ids) != tt.wantTries {
				t.Fatalf("%d attempts, want %d", len(ids), tt.wantTries)
			}
			for i, id := range ids {
				want := tt.callerID
				if want == "" && i > 0 {
					want = "c_made_by_server"
				}
				if id != want {
					t.Errorf("attempt %d sent X-Correlation-ID %q, want %q", i+1, id, want)
				}
				if bodies[i] != bodies[0] || !strings.Contains(bodies[i], `"connection":"crm"`) {
					t.Errorf("attempt %d sent %q, the first %q", i+1, bodies[i], bodies[0])
				}
			}
			if tt.wantErr == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if want := ids[len(ids)-1]; want != "" && out.CorrelationID != want {
					t.Errorf("CorrelationID = %q, want %q", out.CorrelationID, want)
				}
			} else if p, ok := errors.AsType[*plugboard.Problem](err); !ok || p.Status != tt.wantErr {
				t.Errorf("error = %v, want a %d Problem", err, tt.wantErr)
			}
			if tt.wantWaits != nil && !equalDurations(*waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", *waits, tt.wantWaits)
			}
			if tt.backoff {
				w := *waits
				if len(w) != 2 || w[0] < 250*time.Millisecond || w[0] > 500*time.Millisecond || w[1] < 500*time.Millisecond || w[1] > time.Second {
					t.Errorf("backoff waits = %v, want one in [0.25 s, 0.5 s] then one in [0.5 s, 1 s]", w)
				}
			}
			if strings.HasPrefix(tt.script[0].retryAfter, strings.Split(soon, " ")[0]) {
				if w := *waits; len(w) != 1 || w[0] < time.Second || w[0] > 3*time.Second {
					t.Errorf("HTTP-date wait = %v, want about 3 s", w)
				}
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRetryWaitsForRealAndStopsOnCancel: without a fake clock the client really waits the
// Retry-After, and a context cancelled during the wait ends the call at once.
func TestRetryWaitsForRealAndStopsOnCancel(t *testing.T) {
	s := newStub(t, answer{429, "1"}, answer{200, ""})
	c := plugboard.New(s.URL, "pbk_test")
	start := time.Now()
	if _, err := invoke(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("the retry came after %v, want at least the 1 s of Retry-After", d)
	}

	s = newStub(t, answer{429, "30"})
	c = plugboard.New(s.URL, "pbk_test")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := invoke(ctx, c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the cancelled call took %v", d)
	}
}

func TestOptions(t *testing.T) {
	var ua string
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua = r.Header.Get("User-Agent")
		if r.URL.Path == "/readyz" {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	defer slow.Close()

	t.Run("the User-Agent names the SDK, then the caller's suffix", func(t *testing.T) {
		if err := plugboard.New(slow.URL, "", plugboard.WithUserAgent("my-app/1.2")).Health(t.Context()); err != nil {
			t.Fatal(err)
		}
		if want := "plugboard-go/" + plugboard.ClientVersion() + " my-app/1.2"; ua != want {
			t.Errorf("User-Agent = %q, want %q", ua, want)
		}
		plugboard.New(slow.URL, "").Health(t.Context())
		if want := "plugboard-go/" + plugboard.ClientVersion(); ua != want {
			t.Errorf("User-Agent = %q, want %q", ua, want)
		}
	})
	t.Run("WithTimeout bounds one exchange", func(t *testing.T) {
		start := time.Now()
		err := plugboard.New(slow.URL, "", plugboard.WithTimeout(100*time.Millisecond)).Ready(t.Context())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want a deadline", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the call took %v", d)
		}
	})
	t.Run("WithHTTPClient's transport carries the calls", func(t *testing.T) {
		used := false
		hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			used = true
			return http.DefaultTransport.RoundTrip(r)
		})}
		if err := plugboard.New(slow.URL, "", plugboard.WithHTTPClient(hc)).Health(t.Context()); err != nil || !used {
			t.Errorf("err = %v, transport used = %v", err, used)
		}
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
