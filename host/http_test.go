package host

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host/internal/egress"
)

// TestHTTPPolicyAnswers pins what ABI.md section 5 says a guest sees when the rate limiter or
// the circuit breaker answers plugboard_http: a reply, not an error document, with the status,
// exactly three headers and a problem document body; the request is not sent and takes nothing
// from the call's request budget.
func TestHTTPPolicyAnswers(t *testing.T) {
	var sent, status atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer up.Close()
	h, err := New(Config{Egress: EgressConfig{
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Retry:         RetryPolicy{MaxRetries: -1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())
	req, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: up.URL + "/x"})
	m := &abi.Manifest{Name: "x", Hosts: []string{up.URL}}

	tests := []struct {
		name     string
		binding  *Binding
		upstream int // the upstream's status
		before   int // requests the upstream answers before the host does
		status   int
		policy   string
		after    string // Retry-After
	}{
		{"an empty token bucket answers 429", &Binding{ID: "limited", Origins: []string{up.URL}, RateLimit: &RateLimit{PerSecond: 0.001, Burst: 1}},
			http.StatusOK, 1, http.StatusTooManyRequests, egress.PolicyRateLimited, "1000"},
		{"an open breaker answers 503", &Binding{ID: "failing", Origins: []string{up.URL}},
			http.StatusBadGateway, 5, http.StatusServiceUnavailable, egress.PolicyCircuitOpen, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent.Store(0)
			status.Store(int32(tt.upstream))
			budget := egress.NewBudget(10)
			cs := &callState{call: &Call{Binding: tt.binding}, grant: buildGrant(m, tt.binding), budget: budget}
			for i := range tt.before {
				if r, ok := h.importHTTP(context.Background(), cs, req).(*abi.HTTPResponse); !ok || r.Status != tt.upstream || r.Headers["X-Plugboard-Policy"] != "" {
					t.Fatalf("request %d: %+v", i, r)
				}
			}
			raw, _ := json.Marshal(h.importHTTP(context.Background(), cs, req))
			var reply struct {
				Status  int               `json:"status"`
				Headers map[string]string `json:"headers"`
				Body    string            `json:"body"`
			}
			if err := abi.DecodeStrict(raw, &reply); err != nil {
				t.Fatalf("reply %s: %v", raw, err)
			}
			wantHeaders := map[string]string{"Content-Type": "application/problem+json", "Retry-After": tt.after, "X-Plugboard-Policy": tt.policy}
			if reply.Status != tt.status || !maps.Equal(reply.Headers, wantHeaders) {
				t.Errorf("reply %d %v; want %d %v", reply.Status, reply.Headers, tt.status, wantHeaders)
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(reply.Body), &body); err != nil {
				t.Fatalf("body %q: %v", reply.Body, err)
			}
			after, _ := strconv.Atoi(tt.after)
			want := map[string]any{"type": "about:blank", "title": http.StatusText(tt.status), "status": float64(tt.status),
				"code": tt.policy, "source": "plugboard", "retry_after_s": float64(after)}
			detail, _ := body["detail"].(string)
			delete(body, "detail")
			if !maps.Equal(body, want) || detail == "" {
				t.Errorf("body keys %v, detail %q; want %v and a detail", slices.Sorted(maps.Keys(body)), detail, want)
			}
			if n := int(sent.Load()); n != tt.before || budget.Remaining() != 10-tt.before {
				t.Errorf("upstream got %d requests, budget left %d; want %d and %d", n, budget.Remaining(), tt.before, 10-tt.before)
			}
		})
	}
}
