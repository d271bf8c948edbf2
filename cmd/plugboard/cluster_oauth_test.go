package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterOAuth is the real OAuth2 authorization server of the server package's tests
// (server/testdata/oauth/server.mjs: oauth2-mock-server, made strict), run with node.
type clusterOAuth struct {
	t               *testing.T
	issuer, control string
}

func startClusterOAuth(t *testing.T, root string) *clusterOAuth {
	t.Helper()
	dir := filepath.Join(root, "server", "testdata", "oauth")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oauth2-mock-server", "package.json")); err != nil {
		t.Fatalf("the OAuth cluster test needs the npm package oauth2-mock-server: run `make test` (it installs it) or `npm ci --prefix server/testdata/oauth` (%v)", err)
	}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CLIENT_ID=cluster-client", "CLIENT_SECRET=cluster-secret")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() }) // it exits when its stdin closes
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go io.Copy(io.Discard, stdout)
	var addr struct{ Issuer, Control string }
	if err != nil || json.Unmarshal([]byte(line), &addr) != nil || addr.Issuer == "" {
		t.Fatalf("the OAuth server did not start: %q %v\n%s", line, err, stderr.String())
	}
	return &clusterOAuth{t: t, issuer: addr.Issuer, control: addr.Control}
}

func (o *clusterOAuth) call(method, path string, body string, out any) {
	o.t.Helper()
	req, _ := http.NewRequest(method, o.control+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatalf("OAuth control %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
}

func (o *clusterOAuth) grants() int {
	var s struct {
		ClientCredentials int `json:"client_credentials"`
	}
	o.call("GET", "/stats", "", &s)
	return s.ClientCredentials
}

// TestClusterOAuthRefresh: one token request per expiry cluster-wide, however many calls on
// three nodes wait for it, whether the upstream refused the token (401) or its lifetime ran
// out.
func TestClusterOAuthRefresh(t *testing.T) {
	c := startCluster(t, 3)
	oa := startClusterOAuth(t, c.root)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var v struct{ Valid bool }
		oa.call("GET", "/check?token="+tok, "", &v)
		w.Header().Set("Content-Type", "application/json")
		if !v.Valid {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_token"}`)
			return
		}
		io.WriteString(w, `{"user":"johndoe"}`)
	}))
	t.Cleanup(api.Close)
	wasm, err := os.ReadFile(wasmPlugin(t, c.root, "plugins/testdata/spy", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[0].api.must(201, "POST", "/v1/connectors?activate=true", wasm)
	doc := c.nodes[1].api.mustJSON(201, "POST", "/v1/connections", map[string]any{"id": "oa", "connectors": []string{"spy"},
		"params": map[string]any{"base_url": api.URL},
		"auth": map[string]any{"type": "oauth2", "grant": "client_credentials", "client_id": "cluster-client",
			"client_secret": "cluster-secret", "token_url": oa.issuer + "/token"}})
	if doc["status"] != "ready" {
		t.Fatalf("client_credentials connection: %v", doc)
	}

	burst := func(t *testing.T) {
		t.Helper()
		var wg sync.WaitGroup
		statuses := make([]float64, 30)
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nd := c.nodes[i%3]
				st, out, err := nd.api.do("POST", "/v1/connectors/spy/actions/fetch", map[string]any{"connection": "oa", "input": map[string]any{"url": api.URL + "/me"}})
				var r struct {
					Output struct {
						Status float64 `json:"status"`
					} `json:"output"`
				}
				if err == nil && st == 200 && json.Unmarshal(out, &r) == nil {
					statuses[i] = r.Output.Status
				} else {
					statuses[i] = -float64(st)
				}
			}()
		}
		wg.Wait()
		for i, s := range statuses {
			if s != 200 {
				t.Errorf("call %d on %s: upstream status %v, want 200", i, c.nodes[i%3].name, s)
			}
		}
	}
	burst(t) // every node has used the first token
	t.Run("token refused by the upstream", func(t *testing.T) {
		before := oa.grants()
		oa.call("POST", "/expire", "", nil)
		burst(t)
		if n := oa.grants() - before; n != 1 {
			t.Errorf("30 calls on three nodes after the upstream refused the token made %d token requests, want 1", n)
		}
	})
	t.Run("token lifetime ran out", func(t *testing.T) {
		oa.call("POST", "/config", `{"expires_in": 3}`, nil)
		oa.call("POST", "/expire", "", nil)
		burst(t) // one refresh, for a token that lives 3 s
		oa.call("POST", "/config", `{"expires_in": 3600}`, nil)
		before := oa.grants()
		time.Sleep(3500 * time.Millisecond) // let the short-lived token expire by the clock
		burst(t)
		if n := oa.grants() - before; n != 1 {
			t.Errorf("30 calls on three nodes after the token expired made %d token requests, want 1", n)
		}
	})
}
