package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/plugboard/plugboard/host"
)

// recorder is an upstream that records the credential header of every request and echoes the
// headers it received.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	keys []string
}

func newRecorder(t *testing.T, routes func(mux *http.ServeMux)) *recorder {
	rec := &recorder{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.Header)
	})
	if routes != nil {
		routes(mux)
	}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.keys = append(rec.keys, r.Header.Get("X-Api-Key"))
		rec.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.keys...)
}

// TestSecretsNeverReachTheGuest: the upstream gets the injected key; the plugin gets nothing of
// it, whether it looks in its request, asks to reveal it, or has another host echo headers back
// after a redirect.
func TestSecretsNeverReachTheGuest(t *testing.T) {
	const secret = "ak-SPY-0a1b2c3d4e5f"
	echo := newRecorder(t, nil)
	up := newRecorder(t, func(mux *http.ServeMux) {
		mux.HandleFunc("/to-echo", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, echo.URL+"/echo", http.StatusFound)
		})
		mux.HandleFunc("/to-forbidden", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://forbidden.example/steal", http.StatusFound)
		})
	})
	ts := startServer(t, nil)
	ts.must(201, ts.upload("spy"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "spy", "connectors": []string{"spy"}, "params": map[string]any{"base_url": up.URL, "echo_url": echo.URL},
		"auth": map[string]any{"type": "api_key", "api_key": secret}, "secrets": map[string]any{"signing": "s3cr3t-signing"},
	}))
	call := func(action string, input map[string]any) response {
		t.Helper()
		r := ts.must(200, ts.invoke("spy", action, map[string]any{"connection": "spy", "input": input}))
		if strings.Contains(string(r.Body), secret) || strings.Contains(string(r.Body), "s3cr3t-signing") {
			t.Fatalf("%s: the guest obtained a secret: %s", action, r.Body)
		}
		return r
	}

	// The request document the guest received holds the connection's params, never secrets.
	who := call("whoami", nil).json(t)["output"].(map[string]any)["request"].(map[string]any)
	if who["connection"].(map[string]any)["id"] != "spy" || who["correlation_id"] == "" {
		t.Errorf("whoami = %v", who)
	}
	// Reveal is declared by the manifest but not approved by an operator: denied.
	if e := call("reveal", map[string]any{"field": "api_key"}).json(t)["output"].(map[string]any)["error"]; e.(map[string]any)["code"] != "denied" {
		t.Errorf("reveal answered %v", e)
	}
	// The upstream sees the key (an upstream that echoed it back would show it to the guest:
	// the connection trusts its hosts with the credential, so this one does not echo).
	call("fetch", map[string]any{"url": up.URL + "/ok"})
	if got := up.seen(); len(got) != 1 || got[0] != secret {
		t.Errorf("upstream saw keys %q", got)
	}
	// A redirect to another origin drops the key: the echo host sees none and echoes none.
	out := call("fetch", map[string]any{"url": up.URL + "/to-echo"}).json(t)["output"].(map[string]any)
	if out["status"].(float64) != 200 || strings.Contains(out["body"].(string), "X-Api-Key") {
		t.Errorf("echo after redirect = %v", out)
	}
	if got := echo.seen(); len(got) != 1 || got[0] != "" {
		t.Errorf("the echo host saw keys %q", got)
	}
	// auth:false sends none either.
	call("fetch", map[string]any{"url": up.URL + "/echo", "auth": false})
	if got := up.seen(); got[len(got)-1] != "" {
		t.Errorf("auth:false still sent the key")
	}
	// HMAC with a secret field works without revealing it (value from openssl dgst -sha256 -hmac).
	mac := call("hmac", map[string]any{"field": "signing", "data": "hello"}).json(t)["output"].(map[string]any)
	if mac["mac_base64"] != "ZAwou2Y41zd9YXRr+a9AjLI6pvt8fOkQM0BHoVjvAWA=" {
		t.Errorf("hmac = %v", mac)
	}
	// Refused egress, each with its code.
	for _, tc := range []struct{ name, url, code string }{
		{"host not in the manifest", "https://example.com/", "host_not_allowed"},
		{"redirect from an allowed host to a forbidden one", up.URL + "/to-forbidden", "host_not_allowed"},
	} {
		e := call("fetch", map[string]any{"url": tc.url}).json(t)["output"].(map[string]any)["error"]
		if e == nil || e.(map[string]any)["code"] != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, e, tc.code)
		}
	}
}

// fakeResolver answers fixed addresses for names, as a hostile DNS would.
type fakeResolver map[string]string

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestPrivateAddressesRefused: without --egress-allow, names that resolve to loopback, private,
// link-local (cloud metadata) or IPv4-mapped loopback addresses are refused after resolution.
func TestPrivateAddressesRefused(t *testing.T) {
	up := newRecorder(t, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	names := fakeResolver{
		"loopback.test": "127.0.0.1", "ten.test": "10.0.0.1", "metadata.test": "169.254.169.254",
		"v6-loopback.test": "::1", "mapped.test": "::ffff:127.0.0.1",
	}
	ts := startServer(t, func(o *Options) {
		o.EgressAllow = nil
		o.Host = host.Config{CacheDir: sharedCache, Egress: host.EgressConfig{Resolver: names}}
	})
	ts.must(201, ts.upload("spy"))
	for name := range names {
		t.Run(name, func(t *testing.T) {
			base := "http://" + name + ":" + port
			id := strings.ReplaceAll(name, ".", "-")
			ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
				"id": id, "connectors": []string{"spy"}, "params": map[string]any{"base_url": base},
				"auth": map[string]any{"type": "api_key", "api_key": "k"},
			}))
			r := ts.must(200, ts.invoke("spy", "fetch", map[string]any{"connection": id, "input": map[string]any{"url": base + "/echo"}}))
			e, _ := r.json(t)["output"].(map[string]any)["error"].(map[string]any)
			if e == nil || e["code"] != "private_address" {
				t.Errorf("got %s, want private_address", r.Body)
			}
		})
	}
	if n := len(up.seen()); n != 0 {
		t.Errorf("the loopback upstream was reached %d times", n)
	}
}
