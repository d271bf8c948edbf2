package host

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host/internal/egress"
)

// TestIdempotentAnnotationReachesEgress: plugboard_http retries a POST only for a call whose
// action is annotated idempotent (Call.Idempotent).
func TestIdempotentAnnotationReachesEgress(t *testing.T) {
	var n atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer up.Close()
	h, err := New(Config{Egress: EgressConfig{
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Retry:         RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())
	m := &abi.Manifest{Name: "x", Hosts: []string{up.URL}}
	b := &Binding{ID: "c1", Origins: []string{up.URL}}
	req, _ := json.Marshal(abi.HTTPRequest{Method: "POST", URL: up.URL + "/things"})
	for _, tt := range []struct {
		idempotent bool
		status     int
		requests   int32
	}{{false, 503, 1}, {true, 201, 2}} {
		n.Store(0)
		cs := &callState{call: &Call{Binding: b, Idempotent: tt.idempotent}, grant: buildGrant(m, b), budget: egress.NewBudget(10)}
		reply, ok := h.importHTTP(context.Background(), cs, req).(*abi.HTTPResponse)
		if !ok || reply.Status != tt.status || n.Load() != tt.requests {
			t.Errorf("idempotent=%v: reply %+v after %d requests; want %d after %d", tt.idempotent, reply, n.Load(), tt.status, tt.requests)
		}
	}
}

// TestBuildGrantOAuth2: the grant carries the connection's id, rate limit and token; a token
// refreshed after a 401 serves the call's later requests.
func TestBuildGrantOAuth2(t *testing.T) {
	var calls int
	b := &Binding{ID: "c1", AuthType: abi.AuthOAuth2, Origins: []string{"https://api.example"},
		Secrets:   map[string]string{"access_token": "old"},
		RateLimit: &RateLimit{PerSecond: 2, Burst: 3},
		Refresh: func(ctx context.Context) (string, error) {
			calls++
			return "new", nil
		}}
	g := buildGrant(&abi.Manifest{Name: "conn", Hosts: []string{"https://api.example"}}, b)
	if g.Connection != "c1" || g.Connector != "conn" || g.RateLimit == nil || g.RateLimit.Burst != 3 || g.Credential.AccessToken != "old" {
		t.Fatalf("grant = %+v", g)
	}
	tok, err := g.Credential.Refresh(context.Background())
	if err != nil || tok != "new" || g.Credential.AccessToken != "new" || calls != 1 {
		t.Errorf("after a refresh: %q %v, credential token %q", tok, err, g.Credential.AccessToken)
	}
}
