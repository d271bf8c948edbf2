package egress

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

func TestResponseDocument(t *testing.T) {
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		method      string
		wantBody    string
		wantBase64  string
		wantHeaders map[string]string
	}{
		{
			name:     "UTF-8 body is body",
			handler:  func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("héllo ✓")) },
			wantBody: "héllo ✓",
		},
		{
			name:       "non-UTF-8 body is body_base64",
			handler:    func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte{0xff, 0xfe, 0x00, 'a'}) },
			wantBase64: base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 0x00, 'a'}),
		},
		{
			name:    "empty body is an empty body",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) },
		},
		{
			name: "Set-Cookie values are joined with a newline, others with a comma",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Add("Set-Cookie", "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT")
				w.Header().Add("Set-Cookie", "b=2")
				w.Header().Add("Vary", "Accept")
				w.Header().Add("Vary", "Origin")
				w.Header()["x-lower-case"] = []string{"v"} // sent as is, read back canonical
			},
			wantHeaders: map[string]string{
				"Set-Cookie":   "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\nb=2",
				"Vary":         "Accept, Origin",
				"X-Lower-Case": "v",
			},
		},
		{
			name:     "HEAD answers no body",
			method:   "HEAD",
			handler:  func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ignored")) },
			wantBody: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, tt.handler)
			c, _ := newClient(t, Config{AllowNetworks: loopback})
			o := up.origin("127.0.0.1")
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, nil, &abi.HTTPRequest{Method: tt.method, URL: o + "/x"}, nil)
			wantOK(t, got, http.StatusOK)
			if got.Body != tt.wantBody || got.BodyBase64 != tt.wantBase64 {
				t.Errorf("body %q base64 %q, want %q and %q", got.Body, got.BodyBase64, tt.wantBody, tt.wantBase64)
			}
			for name, want := range tt.wantHeaders {
				if got.Headers[name] != want {
					t.Errorf("header %s = %q, want %q (all: %q)", name, got.Headers[name], want, got.Headers)
				}
			}
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	up := newUpstream(t, nil)
	res := newResolver().set("api.test", "127.0.0.1")
	tests := []struct {
		name    string
		headers map[string]string
		want    map[string]string // "" value: absent
		host    string            // expected Host line; "" is the URL's
	}{
		{
			name:    "hop-by-hop and framing headers are dropped",
			headers: map[string]string{"Host": "evil.test", "Connection": "X-Keep", "X-Keep": "kept", "Upgrade": "websocket", "Te": "trailers", "Keep-Alive": "1", "Proxy-Authorization": "Basic eA==", "Trailer": "X", "Transfer-Encoding": "chunked", "Content-Length": "999"},
			want:    map[string]string{"Upgrade": "", "Te": "", "Keep-Alive": "", "Proxy-Authorization": "", "Trailer": "", "X-Keep": "kept"},
		},
		{
			name: "default User-Agent",
			want: map[string]string{"User-Agent": "Plugboard/1"},
		},
		{
			name:    "guest User-Agent wins",
			headers: map[string]string{"user-agent": "my-connector/2"},
			want:    map[string]string{"User-Agent": "my-connector/2"},
		},
		{
			name:    "header names are canonicalised",
			headers: map[string]string{"x-request-id": "abc", "ACCEPT": "application/json"},
			want:    map[string]string{"X-Request-Id": "abc", "Accept": "application/json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClient(t, Config{AllowNetworks: loopback, Resolver: res})
			o := up.origin("api.test")
			got := echoed(t, c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, nil,
				&abi.HTTPRequest{Method: "POST", URL: o + "/x", Headers: tt.headers, Body: ptr("body")}, nil))
			if got.Host != up.origin("api.test")[len("http://"):] {
				t.Errorf("Host = %q", got.Host)
			}
			if got.Body != "body" {
				t.Errorf("body = %q", got.Body)
			}
			for name, want := range tt.want {
				if v := got.Header.Get(name); v != want {
					t.Errorf("%s = %q, want %q", name, v, want)
				}
			}
		})
	}
}

// TestTLS dials a checked loopback address for a name while TLS verifies the certificate against
// that name, and negotiates HTTP/2 on the shared transport.
func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Server-Name", r.TLS.ServerName)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port := ":" + p

	tests := []struct {
		name      string
		host      string
		wantCode  string
		wantInMsg string
	}{
		{name: "certificate is verified against the URL's host name over HTTP/2", host: "example.com"},
		{name: "certificate for another name fails with network", host: "other.test", wantCode: "network", wantInMsg: "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// httptest's certificate is for example.com; both names resolve to the server.
			res := newResolver().set("example.com", "127.0.0.1").set("other.test", "127.0.0.1")
			c, dials := newClient(t, Config{AllowNetworks: loopback, Resolver: res, TLSConfig: &tls.Config{RootCAs: pool}})
			o := "https://" + tt.host + port
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, nil, get(o+"/"), nil)
			if tt.wantCode != "" {
				wantErr(t, got, tt.wantCode, tt.wantInMsg)
				return
			}
			wantOK(t, got, http.StatusOK)
			if got.Headers["X-Proto"] != "HTTP/2.0" || got.Headers["X-Server-Name"] != tt.host {
				t.Errorf("proto %q server name %q", got.Headers["X-Proto"], got.Headers["X-Server-Name"])
			}
			if d := dials.list(); len(d) != 1 || d[0] != "127.0.0.1"+port {
				t.Errorf("dialed %v", d)
			}
		})
	}
}
