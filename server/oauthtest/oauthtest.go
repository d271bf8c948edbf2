// Package oauthtest runs the OAuth 2.0 authorization server of Plugboard's tests: the npm
// package oauth2-mock-server, made strict by server/testdata/oauth/server.mjs (client
// authentication, single-use authorization codes and refresh tokens, PKCE, expiry), started
// with node on loopback ports, with a control API to inspect and steer it.
//
// The server package's tests and the cluster tests of cmd/plugboard share it. It needs Node.js
// and the npm packages of server/testdata/oauth, which `make test` installs.
package oauthtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Server is a running authorization server.
type Server struct {
	t testing.TB
	// Issuer is its base URL: Issuer+"/authorize" and Issuer+"/token".
	Issuer string
	// Control is the base URL of the control API (Stats, Expire, Revoke, Valid).
	Control string
}

// Start starts the server for one client and stops it when t ends. It fails t (never skips)
// when node or the npm packages are missing.
func Start(t testing.TB, clientID, clientSecret string) *Server {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "testdata", "oauth")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("the OAuth tests need Node.js 20.19 or later (node is not on PATH): %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oauth2-mock-server", "package.json")); err != nil {
		t.Fatalf("the OAuth tests need the npm package oauth2-mock-server, which is not installed in %s: run `make test` "+
			"(it installs it) or `npm ci --prefix server/testdata/oauth` (%v)", dir, err)
	}
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CLIENT_ID="+clientID, "CLIENT_SECRET="+clientSecret)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		stdin.Close() // the server exits when its stdin closes
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
		io.Copy(io.Discard, stdout)
	}()
	var addr struct{ Issuer, Control string }
	select {
	case l := <-line:
		if err := json.Unmarshal([]byte(l), &addr); err != nil || addr.Issuer == "" {
			<-done
			t.Fatalf("the OAuth server did not start: %q %v\n%s", l, err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the OAuth server did not start within 30 s\n%s", stderr.String())
	}
	return &Server{t: t, Issuer: addr.Issuer, Control: addr.Control}
}

// Stats is what the server counted: requests per endpoint and grant, refused token requests,
// and the refresh tokens presented and issued, in order.
type Stats struct {
	Authorize         int      `json:"authorize"`
	AuthorizationCode int      `json:"authorization_code"`
	RefreshToken      int      `json:"refresh_token"`
	ClientCredentials int      `json:"client_credentials"`
	Refused           int      `json:"refused"`
	RefreshPresented  []string `json:"refresh_presented"`
	RefreshIssued     []string `json:"refresh_issued"`
}

// Call sends a request to the control API, with body as JSON when it is not nil, and decodes
// the answer into out when it is not nil.
func (s *Server) Call(method, path string, body, out any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.Control+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("OAuth control %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatalf("OAuth control %s: %v", path, err)
		}
	}
}

// Stats reads the counters.
func (s *Server) Stats() Stats {
	var st Stats
	s.Call("GET", "/stats", nil, &st)
	return st
}

// Expire makes every access token issued so far invalid.
func (s *Server) Expire() { s.Call("POST", "/expire", nil, nil) }

// Revoke revokes every refresh token issued so far.
func (s *Server) Revoke() { s.Call("POST", "/revoke", nil, nil) }

// Valid reports whether the server issued token and it has not expired.
func (s *Server) Valid(token string) bool {
	var v struct{ Valid bool }
	s.Call("GET", "/check?token="+token, nil, &v)
	return v.Valid
}
