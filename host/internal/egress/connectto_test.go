package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestConnectTo: a ConnectTo entry sends the connections for a name to another address, as
// curl's --connect-to does: the request keeps its URL and Host header, TLS verifies the
// original name against the configured roots, and the new target is still checked against
// the address policy.
func TestConnectTo(t *testing.T) {
	t.Run("plain HTTP", func(t *testing.T) {
		up := newUpstream(t, nil)
		c, dials := newClient(t, Config{AllowNetworks: loopback,
			ConnectTo: map[string]string{"API.Example.test:80": "127.0.0.1:" + strconv.Itoa(up.port())}})
		got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{"http://api.example.test"}}, nil, get("http://api.example.test/v1/x"), nil)
		wantOK(t, got, http.StatusOK)
		reqs := up.requests()
		if len(reqs) != 1 || reqs[0].Host != "api.example.test" || reqs[0].Path != "/v1/x" {
			t.Fatalf("upstream saw %+v, want one request for api.example.test/v1/x", reqs)
		}
		if d := dials.list(); len(d) != 1 || d[0] != "127.0.0.1:"+strconv.Itoa(up.port()) {
			t.Errorf("dialed %v", d)
		}
	})
	t.Run("TLS with the original name", func(t *testing.T) {
		// httptest's certificate is valid for example.com.
		up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"host":"` + r.Host + `"}`))
		}))
		t.Cleanup(up.Close)
		roots := x509.NewCertPool()
		roots.AddCert(up.Certificate())
		target := up.Listener.Addr().String()
		c, _ := newClient(t, Config{AllowNetworks: loopback, TLSConfig: &tls.Config{RootCAs: roots},
			ConnectTo: map[string]string{"example.com:443": target}})
		got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{"https://example.com"}}, nil, get("https://example.com/"), nil)
		wantOK(t, got, http.StatusOK)
		if string(got.Body) != `{"host":"example.com"}` {
			t.Errorf("body %s", got.Body)
		}
		// Without the roots the fake's certificate is refused, as for any name.
		c2, _ := newClient(t, Config{AllowNetworks: loopback, ConnectTo: map[string]string{"example.com:443": target}})
		if got := c2.Do(context.Background(), &Grant{ManifestOrigins: []string{"https://example.com"}}, nil, get("https://example.com/"), nil); got.Error == nil {
			t.Errorf("an untrusted certificate was accepted: %d", got.Status)
		}
	})
	t.Run("the target is checked", func(t *testing.T) {
		up := newUpstream(t, nil)
		c, dials := newClient(t, Config{ConnectTo: map[string]string{"api.example.test:80": "127.0.0.1:" + strconv.Itoa(up.port())}})
		got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{"http://api.example.test"}}, nil, get("http://api.example.test/"), nil)
		if code := errCode(got); code != "private_address" {
			t.Errorf("a loopback target without --egress-allow answered %q (status %d), want private_address", code, got.Status)
		}
		if d := dials.list(); len(d) != 0 {
			t.Errorf("dialed %v", d)
		}
	})
	t.Run("CheckHost follows it", func(t *testing.T) {
		c, _ := newClient(t, Config{AllowNetworks: loopback, Resolver: newResolver(),
			ConnectTo: map[string]string{"app.example.test:443": "127.0.0.1:9"}})
		if err := c.CheckHost(context.Background(), "APP.example.test"); err != nil {
			t.Errorf("a name sent to an allowed loopback target: %v", err)
		}
		strict, _ := newClient(t, Config{Resolver: newResolver(), ConnectTo: map[string]string{"app.example.test:443": "127.0.0.1:9"}})
		if err := strict.CheckHost(context.Background(), "app.example.test"); !IsAddressRefused(err) {
			t.Errorf("a name sent to a refused target: %v, want an address refusal", err)
		}
		if err := c.CheckHost(context.Background(), "other.example.test"); err == nil {
			t.Error("an unmapped name the resolver does not know was allowed")
		}
	})
}
