package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key, and returns their
// paths and a pool trusting the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plugboard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSAndAdminListener: HTTPS on the public listener with a self-signed certificate, the
// management API on a unix socket only, actions, MCP and health on the public listener.
func TestTLSAndAdminListener(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.SeparateAdmin = true })
	certFile, keyFile, pool := selfSigned(t)
	pub, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "admin.sock")
	adm, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ts.srv.Serve(ctx, ServeConfig{Public: pub, Admin: adm, TLSCertFile: certFile, TLSKeyFile: keyFile, ShutdownTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	public := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	admin := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	base := "https://" + pub.Addr().String()
	call := func(c *http.Client, method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Management over the socket: upload and a connection.
	wasm := pluginWasm(t, "spy")
	req, _ := http.NewRequest("POST", "http://admin/v1/connectors", strings.NewReader(string(wasm)))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := admin.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("upload over the admin socket: %v %v", resp, err)
	}
	resp.Body.Close()
	conn := `{"id":"spy-a","connectors":["spy"],"params":{"base_url":"http://127.0.0.1:9"},"auth":{"type":"api_key","api_key":"k"}}`
	if st, b := call(admin, "POST", "http://admin/v1/connections", conn); st != 201 {
		t.Fatalf("create connection over the socket: %d %s", st, b)
	}

	// The public listener serves actions and health over TLS, not management.
	if st, b := call(public, "POST", base+"/v1/connectors/spy/actions/count", `{"connection":"spy-a"}`); st != 200 {
		t.Errorf("action on public: %d %s", st, b)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if st, _ := call(public, "GET", base+p, ""); st != 200 {
			t.Errorf("%s on public: %d", p, st)
		}
	}
	for _, mp := range [][2]string{{"GET", "/v1/connections"}, {"GET", "/v1/keys"}, {"POST", "/v1/keys"}, {"GET", "/v1/connectors/spy/actions"}, {"GET", "/v1/audit"}} {
		st, b := call(public, mp[0], base+mp[1], "")
		var p map[string]any
		json.Unmarshal([]byte(b), &p)
		if st != 404 || p["code"] != codeNotFound {
			t.Errorf("%s %s on public: %d %s", mp[0], mp[1], st, b)
		}
	}
	// Queue event pull and ack are data plane too: they reach the API (no such route in this
	// tree yet: a 404 from the /v1 router, not the listener's).
	if st, b := call(public, "GET", base+"/v1/subscriptions/sub_x/events", ""); st != 404 || strings.Contains(b, "admin listener") {
		t.Errorf("event pull on public: %d %s", st, b)
	}
	// MCP stays public: the MCP handler answers, not the listener's 404.
	if st, b := call(public, "POST", base+"/mcp/none", `{}`); st != 404 || !strings.Contains(b, "mcp_server_not_found") {
		t.Errorf("/mcp on public: %d %s", st, b)
	}
	// Plain HTTP on the TLS port does not get an answer from the API.
	if resp, err := http.Get("http://" + pub.Addr().String() + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
		resp.Body.Close()
	}
	// The socket serves the whole API, actions included.
	if st, b := call(admin, "GET", "http://admin/v1/connections", ""); st != 200 {
		t.Errorf("list over the socket: %d %s", st, b)
	}
}
