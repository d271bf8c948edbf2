package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/server/oauthtest"
)

// TestClusterOAuthRefresh: one token request per expiry cluster-wide, however many calls on
// three nodes wait for it, whether the upstream refused the token (401) or its lifetime ran
// out.
func TestClusterOAuthRefresh(t *testing.T) {
	c := startCluster(t, 3)
	oa := oauthtest.Start(t, "cluster-client", "cluster-secret")
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		if !oa.Valid(tok) {
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
			"client_secret": "cluster-secret", "token_url": oa.Issuer + "/token"}})
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
		before := oa.Stats().ClientCredentials
		oa.Expire()
		burst(t)
		if n := oa.Stats().ClientCredentials - before; n != 1 {
			t.Errorf("30 calls on three nodes after the upstream refused the token made %d token requests, want 1", n)
		}
	})
	t.Run("token lifetime ran out", func(t *testing.T) {
		oa.Call("POST", "/config", map[string]any{"expires_in": 3}, nil)
		oa.Expire()
		burst(t) // one refresh, for a token that lives 3 s
		oa.Call("POST", "/config", map[string]any{"expires_in": 3600}, nil)
		before := oa.Stats().ClientCredentials
		time.Sleep(3500 * time.Millisecond) // let the short-lived token expire by the clock
		burst(t)
		if n := oa.Stats().ClientCredentials - before; n != 1 {
			t.Errorf("30 calls on three nodes after the token expired made %d token requests, want 1", n)
		}
	})
}
