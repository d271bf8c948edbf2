package server

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// TestHostRefusalReachesTheAPI runs the bundled http connector, built from source with the Go
// PDK, against a loopback upstream. The connector returns the PDK's error of a host call as it
// is (return nil, err); the API answers the host's own code with the status of ABI.md section
// 4's host code table and a detail saying what to change, not 500 internal, and the refusal is
// logged at WARN, not ERROR.
func TestHostRefusalReachesTheAPI(t *testing.T) {
	var hits, otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
	}))
	defer other.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/elsewhere" {
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	defer upstream.Close()
	connect := func(ts *testServer, id, baseURL string) {
		t.Helper()
		ts.must(201, ts.upload("http"))
		ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
			"id": id, "connectors": []string{"http"}, "params": map[string]any{"base_url": baseURL}, "auth": map[string]any{"type": "none"},
		}))
	}
	get := func(conn, path string) map[string]any {
		return map[string]any{"connection": conn, "input": map[string]any{"method": "GET", "path": path}}
	}

	t.Run("a loopback upstream without --egress-allow is 403 private_address saying what to allow", func(t *testing.T) {
		logs := &logBuffer{}
		ts := startServer(t, func(o *Options) {
			o.EgressAllow = nil
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		})
		connect(ts, "local", upstream.URL)
		r := ts.invoke("http", "request", get("local", "/items"))
		t.Logf("%d %s", r.Status, r.Body)
		p := r.json(t)
		detail, _ := p["detail"].(string)
		details, _ := p["details"].(map[string]any)
		if r.Status != http.StatusForbidden || p["code"] != "private_address" || p["source"] != "plugin" {
			t.Fatalf("got %d %s, want 403 private_address from the plugin", r.Status, r.Body)
		}
		for _, want := range []string{"127.0.0.1 is a loopback address", "--egress-allow 127.0.0.0/8", "make run EGRESS_ALLOW=127.0.0.0/8", "--dev"} {
			if !strings.Contains(detail, want) {
				t.Errorf("detail %q lacks %q", detail, want)
			}
		}
		if details["host_code"] != "private_address" || details["allow"] != "127.0.0.0/8" {
			t.Errorf("details = %v, want host_code private_address and allow 127.0.0.0/8", details)
		}
		if p["retryable"] == true {
			t.Error("a refusal by policy is marked retryable")
		}
		if n := hits.Load(); n != 0 {
			t.Errorf("the upstream was reached %d times", n)
		}
		out := logs.String()
		if strings.Contains(out, "level=ERROR") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "code=private_address") {
			t.Errorf("want the refusal logged at WARN and nothing at ERROR; the log:\n%s", out)
		}
		// The invocation log and /metrics name the host's code too.
		if inv := ts.must(200, ts.do("GET", "/v1/invocations/"+r.Header.Get("X-Correlation-ID"), nil)); !strings.Contains(string(inv.Body), `"private_address"`) {
			t.Errorf("invocation record = %s", inv.Body)
		}
		m := string(ts.must(200, ts.do("GET", "/metrics", nil, "Authorization", "")).Body)
		if !strings.Contains(m, `plugboard_action_calls_total{connector="http",version="1.0.0",action="request",code="private_address"} 1`) {
			t.Errorf("/metrics does not count the call under code private_address")
		}
	})

	t.Run("the same call with loopback egress allowed succeeds", func(t *testing.T) {
		ts := startServer(t, nil) // EgressAllow 127.0.0.0/8, as --egress-allow 127.0.0.0/8
		connect(ts, "local", upstream.URL)
		r := ts.must(200, ts.invoke("http", "request", get("local", "/items")))
		if o := r.json(t)["output"].(map[string]any); o["status"] != 200.0 {
			t.Errorf("output = %v", o)
		}
	})

	t.Run("a redirect to an origin outside the manifest is 403 host_not_allowed", func(t *testing.T) {
		ts := startServer(t, nil)
		connect(ts, "local", upstream.URL)
		r := ts.invoke("http", "request", get("local", "/elsewhere"))
		t.Logf("%d %s", r.Status, r.Body)
		p := r.json(t)
		detail, _ := p["detail"].(string)
		if r.Status != http.StatusForbidden || p["code"] != "host_not_allowed" || p["source"] != "plugin" {
			t.Fatalf("got %d %s, want 403 host_not_allowed", r.Status, r.Body)
		}
		for _, want := range []string{other.URL, "manifest's hosts", "PATCH /v1/connections/"} {
			if !strings.Contains(detail, want) {
				t.Errorf("detail %q lacks %q", detail, want)
			}
		}
		if n := otherHits.Load(); n != 0 {
			t.Errorf("the origin outside the manifest was reached %d times", n)
		}
	})

	t.Run("an upstream that refuses connections is 502 network, retryable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + ln.Addr().String()
		ln.Close()
		ts := startServer(t, nil)
		connect(ts, "gone", closed)
		start := time.Now()
		r := ts.invoke("http", "request", get("gone", "/"))
		t.Logf("%d %s", r.Status, r.Body)
		p := r.json(t)
		if r.Status != http.StatusBadGateway || p["code"] != "network" || p["retryable"] != true {
			t.Fatalf("got %d %s after %s, want 502 network, retryable", r.Status, r.Body, time.Since(start))
		}
	})
}

// TestGuestErrorHostCodes: how the API maps a guest error by its details.host_code (ABI.md
// section 4), with the guesterr plugin reporting each document as given. A plugin written against
// ABI.md alone, without host_code, maps as before.
func TestGuestErrorHostCodes(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.upload("guesterr"))
	cases := []struct {
		name, code, details string
		retryable           bool
		status              int
		wantCode            string
		detailHas           []string // in the detail
		detailLacks         string   // not in the detail; "" for no check
		retryAfter          string   // Retry-After header
	}{
		{name: "internal without host_code is 500 internal, as before", code: "internal", status: 500, wantCode: "internal"},
		{name: "internal with other details is 500 internal", code: "internal", details: `{"other": 1}`, status: 500, wantCode: "internal"},
		{name: "an unknown host_code is ignored", code: "internal", details: `{"host_code": "made_up"}`, status: 500, wantCode: "internal"},
		{name: "a guest code keeps its status", code: "forbidden", status: 403, wantCode: "forbidden"},
		{name: "private_address names the range to allow", code: "internal", details: `{"host_code": "private_address", "address": "10.1.2.3", "allow": "10.0.0.0/8"}`,
			status: 403, wantCode: "private_address", detailHas: []string{"--egress-allow 10.0.0.0/8", "make run EGRESS_ALLOW=10.0.0.0/8", "plugboard serve --dev"}},
		{name: "private_address with details that do not fit repeats none of them", code: "internal",
			details: `{"host_code": "private_address", "address": "8.8.8.8", "allow": "10.0.0.0/8 and --egress-allow 0.0.0.0/0"}`,
			status:  403, wantCode: "private_address", detailHas: []string{"--egress-allow and a CIDR that covers the address"}, detailLacks: "0.0.0.0/0"},
		{name: "host_not_allowed is 403", code: "internal", details: `{"host_code": "host_not_allowed"}`, status: 403, wantCode: "host_not_allowed", detailHas: []string{"manifest's hosts"}},
		{name: "denied is 403", code: "internal", details: `{"host_code": "denied"}`, status: 403, wantCode: "denied"},
		{name: "invalid_request is 500, the connector's bug", code: "internal", details: `{"host_code": "invalid_request"}`, status: 500, wantCode: "invalid_request"},
		{name: "too_many_requests is 500", code: "internal", details: `{"host_code": "too_many_requests"}`, status: 500, wantCode: "too_many_requests", detailHas: []string{"fewer requests"}},
		{name: "timeout is 504, retryable", code: "unavailable", details: `{"host_code": "timeout"}`, retryable: true, status: 504, wantCode: "timeout"},
		{name: "deadline is 504", code: "unavailable", details: `{"host_code": "deadline"}`, retryable: true, status: 504, wantCode: "deadline"},
		{name: "network is 502", code: "unavailable", details: `{"host_code": "network"}`, retryable: true, status: 502, wantCode: "network"},
		{name: "too_large is 502", code: "upstream_error", details: `{"host_code": "too_large"}`, status: 502, wantCode: "too_large"},
		{name: "too_many_redirects is 502", code: "upstream_error", details: `{"host_code": "too_many_redirects"}`, status: 502, wantCode: "too_many_redirects"},
		{name: "circuit_open is 503 with Retry-After", code: "unavailable", details: `{"host_code": "circuit_open", "retry_after_s": 7, "status": 503}`, retryable: true,
			status: 503, wantCode: "circuit_open", retryAfter: "7"},
		{name: "the connection's rate limit is 429 with Retry-After", code: "rate_limited", details: `{"host_code": "rate_limited", "retry_after_s": 3, "status": 429}`, retryable: true,
			status: 429, wantCode: "rate_limited", retryAfter: "3"},
		{name: "a raw host code from a PDK handler is mapped the same", code: "private_address", status: 403, wantCode: "private_address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]any{"code": tc.code, "message": "it failed", "retryable": tc.retryable}
			if tc.details != "" {
				in["details"] = json.RawMessage(tc.details)
			}
			r := ts.invoke("guesterr", "fail", map[string]any{"input": in})
			p := r.json(t)
			detail, _ := p["detail"].(string)
			if r.Status != tc.status || p["code"] != tc.wantCode || p["source"] != "plugin" || !strings.HasPrefix(detail, "it failed") {
				t.Fatalf("got %d %s, want %d %s from the plugin", r.Status, r.Body, tc.status, tc.wantCode)
			}
			for _, want := range tc.detailHas {
				if !strings.Contains(detail, want) {
					t.Errorf("detail %q lacks %q", detail, want)
				}
			}
			if tc.detailLacks != "" && strings.Contains(detail, tc.detailLacks) {
				t.Errorf("detail %q repeats %q from the plugin's details", detail, tc.detailLacks)
			}
			if got := r.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			if (p["retryable"] == true) != tc.retryable {
				t.Errorf("retryable = %v, want %v", p["retryable"], tc.retryable)
			}
		})
	}
}

// TestPluginProblemOfARawHostCode: a plugin written against ABI.md that reports the host's error
// document unchanged (its code is the host code) is answered like one that passes the code on in
// details.host_code.
func TestPluginProblemOfARawHostCode(t *testing.T) {
	p := pluginProblem(&abi.Error{Code: abi.CodePrivateAddress, Message: "localhost resolves only to refused addresses",
		Details: json.RawMessage(`{"address":"::1","allow":"::1/128"}`)})
	if p.Status != http.StatusForbidden || p.Code != abi.CodePrivateAddress || p.Source != "plugin" || !p.refusal ||
		!strings.Contains(p.Detail, "--egress-allow ::1/128") {
		t.Errorf("problem = %+v", p)
	}
	if p := pluginProblem(&abi.Error{Code: abi.CodeTimeout, Message: "slow"}); p.Status != http.StatusGatewayTimeout || p.refusal {
		t.Errorf("timeout problem = %+v", p)
	}
}
