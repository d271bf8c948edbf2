package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
)

// clusterManifest is anymanifest at version, with one action.
func clusterManifest(version string) string {
	return `{"abi":1,"name":"anymanifest","version":"` + version + `","auth":{"types":["none"]},` +
		`"actions":[{"name":"echo","input_schema":{"type":"object"}}]}`
}

func clusterPlugin(t *testing.T, version string) []byte {
	t.Helper()
	b, err := patch.Patch(anymanifestWasm(t), []byte(clusterManifest(version)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// echoVersion invokes anymanifest's echo on nd and returns the version that answered.
func echoVersion(t *testing.T, nd *clusterNode) string {
	t.Helper()
	var doc struct {
		Output struct {
			Version string `json:"version"`
		} `json:"output"`
	}
	out := nd.api.must(200, "POST", "/v1/connectors/anymanifest/actions/echo", map[string]any{"connection": "c1", "input": map[string]any{}})
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("node %s: %v: %s", nd.name, err, out)
	}
	return doc.Output.Version
}

// TestCluster runs the rows of API.md "Cluster" that concern requests against three real
// nodes on one nats-server: any node answers any request with the same result.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	t.Run("cluster lists every node", func(t *testing.T) {
		for _, nd := range c.nodes {
			doc := nd.cluster(t)
			if doc.Store != "nats" || doc.Node != nd.name {
				t.Errorf("node %s: store %q node %q, want nats and %s", nd.name, doc.Store, doc.Node, nd.name)
			}
			var names []string
			for _, n := range doc.Nodes {
				names = append(names, n.Name)
				if n.Address == "" || n.StartedAt.IsZero() || n.LastSeenAt.IsZero() || n.Version == "" {
					t.Errorf("node %s lists %+v: address, started_at, last_seen_at and version are required", nd.name, n)
				}
			}
			if !slices.Equal(names, []string{"n1", "n2", "n3"}) {
				t.Errorf("node %s lists %v, want [n1 n2 n3]", nd.name, names)
			}
		}
	})

	t.Run("upload on one node, invoke on another", func(t *testing.T) {
		n1.api.must(201, "POST", "/v1/connectors?activate=true", clusterPlugin(t, "1.0.0"))
		n2.api.must(201, "POST", "/v1/connections", map[string]any{"id": "c1", "connectors": []string{"anymanifest"}, "auth": map[string]any{"type": "none"}})
		for _, nd := range c.nodes {
			if v := echoVersion(t, nd); v != "1.0.0" {
				t.Errorf("node %s ran %s, want 1.0.0", nd.name, v)
			}
		}
		// Reads after writes: what one node acknowledged, every other node reads.
		for _, nd := range []*clusterNode{n1, n3} {
			nd.api.must(200, "GET", "/v1/connections/c1", nil)
			nd.api.must(200, "GET", "/v1/connectors/anymanifest", nil)
		}
	})

	t.Run("a swap answers once every node serves it", func(t *testing.T) {
		n1.api.must(201, "POST", "/v1/connectors", clusterPlugin(t, "2.0.0"))
		start := time.Now()
		n2.api.must(200, "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "2.0.0"})
		t.Logf("PUT .../active answered in %v", time.Since(start).Round(time.Millisecond))
		for _, nd := range c.nodes {
			if v := echoVersion(t, nd); v != "2.0.0" {
				t.Errorf("node %s ran %s right after the swap answered, want 2.0.0", nd.name, v)
			}
		}
		for _, n := range n3.cluster(t).Nodes {
			if n.Routes["anymanifest"] != "2.0.0" {
				t.Errorf("node %s reports route %q, want 2.0.0", n.Name, n.Routes["anymanifest"])
			}
		}
	})

	t.Run("canary weights hold on every node", func(t *testing.T) {
		n3.api.must(200, "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "2.0.0",
			"canary": map[string]any{"version": "1.0.0", "percent": 25}})
		for _, nd := range c.nodes {
			got := map[string]int{}
			for range 100 {
				got[echoVersion(t, nd)]++
			}
			if got["1.0.0"] != 25 || got["2.0.0"] != 75 {
				t.Errorf("node %s split 100 calls %v, want 25 to the canary 1.0.0 and 75 to 2.0.0", nd.name, got)
			}
		}
		n1.api.must(200, "PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "2.0.0"})
		for _, nd := range c.nodes {
			for range 10 {
				if v := echoVersion(t, nd); v != "2.0.0" {
					t.Fatalf("node %s ran %s after the canary ended", nd.name, v)
				}
			}
		}
	})

	t.Run("a revoked key is refused on every node", func(t *testing.T) {
		doc := n1.api.mustJSON(201, "POST", "/v1/keys", map[string]any{"name": "app", "role": "invoker"})
		secret, id := doc["secret"].(string), doc["id"].(string)
		call := func(nd *clusterNode) int {
			req, _ := http.NewRequest("POST", nd.proc.url+"/v1/connectors/anymanifest/actions/echo",
				strings.NewReader(`{"connection":"c1","input":{}}`))
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("Content-Type", "application/json")
			resp, err := crashClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		for _, nd := range c.nodes {
			if st := call(nd); st != 200 {
				t.Fatalf("node %s answered the new key %d, want 200", nd.name, st)
			}
		}
		n2.api.must(204, "DELETE", "/v1/keys/"+id, nil)
		// Every node refuses the key once its watch has the deletion: the request path reads
		// keys from memory, so "the next request" means the next one after that (a
		// millisecond or so), not a store round trip per call.
		for _, nd := range c.nodes {
			d := waitFor(t, time.Second, "node "+nd.name+" refusing the revoked key", func() bool { return call(nd) == 401 })
			t.Logf("node %s refused the revoked key %v after the DELETE answered", nd.name, d)
		}
	})

	t.Run("logs are read from any node", func(t *testing.T) {
		req, _ := http.NewRequest("POST", n3.proc.url+"/v1/connectors/anymanifest/actions/echo", strings.NewReader(`{"connection":"c1","input":{}}`))
		req.Header.Set("Authorization", "Bearer "+crashToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := crashClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cid := resp.Header.Get("X-Correlation-Id")
		if resp.StatusCode != 200 || cid == "" {
			t.Fatalf("echo on n3: %d, correlation id %q", resp.StatusCode, cid)
		}
		// The invocation log is written in batches: it reaches the store within a moment.
		waitFor(t, 10*time.Second, "n3's invocation log readable on n1", func() bool {
			st, _, _ := n1.api.do("GET", "/v1/invocations/"+cid, nil)
			return st == 200
		})
		var audit struct {
			Entries []struct {
				Action string `json:"action"`
				Target string `json:"target"`
			} `json:"entries"`
		}
		if err := json.Unmarshal(n3.api.must(200, "GET", "/v1/audit?limit=200", nil), &audit); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range audit.Entries {
			found = found || (e.Action == "POST /v1/keys" || strings.HasPrefix(e.Action, "DELETE /v1/keys/"))
		}
		if !found {
			t.Errorf("n3's audit log lacks the key created on n1 and deleted on n2: %+v", audit.Entries)
		}
	})

	t.Run("an MCP session continues on another node", func(t *testing.T) {
		doc := n1.api.mustJSON(201, "POST", "/v1/mcp-servers", map[string]any{"name": "tools", "connector": "anymanifest", "connection": "c1"})
		token := doc["token"].(string)
		rpc := func(nd *clusterNode, session, body string) (int, string, []byte) {
			req, _ := http.NewRequest("POST", nd.proc.url+"/mcp/tools", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("MCP-Protocol-Version", "2025-06-18")
			if session != "" {
				req.Header.Set("Mcp-Session-Id", session)
			}
			resp, err := crashClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), b
		}
		st, session, body := rpc(n1, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"cluster-test","version":"1"}}}`)
		if st != 200 || session == "" {
			t.Fatalf("initialize on n1: %d, session %q: %s", st, session, body)
		}
		if st, _, body := rpc(n2, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); st != 202 {
			t.Fatalf("initialized on n2: %d: %s", st, body)
		}
		st, _, body = rpc(n3, session, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
		if st != 200 || !bytes.Contains(body, []byte(`2.0.0`)) {
			t.Fatalf("tools/call on n3 in n1's session: %d: %s", st, body)
		}

		// A token rotated on n2 is refused on every node; the new one opens sessions anywhere.
		// As for keys, "the next request" is the next one after the node's watch has the change.
		const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"cluster-test","version":"1"}}}`
		old := token
		token = n2.api.mustJSON(200, "POST", "/v1/mcp-servers/tools/rotate-token", nil)["token"].(string)
		for _, nd := range c.nodes {
			tok := token
			token = old
			d := waitFor(t, time.Second, nd.name+" refusing the rotated MCP token", func() bool { st, _, _ := rpc(nd, "", initialize); return st == 401 })
			token = tok
			if st, _, body := rpc(nd, "", initialize); st != 200 {
				t.Errorf("the new token on %s: %d %s", nd.name, st, body)
			}
			t.Logf("%s refused the old MCP token %v after the rotation answered", nd.name, d)
		}
		// A server disabled on n3 answers 404 mcp_server_disabled on every node.
		n3.api.must(200, "PATCH", "/v1/mcp-servers/tools", map[string]any{"enabled": false})
		for _, nd := range c.nodes {
			waitFor(t, time.Second, nd.name+" refusing the disabled MCP server", func() bool {
				st, _, body := rpc(nd, "", initialize)
				return st == 404 && bytes.Contains(body, []byte(`"mcp_server_disabled"`))
			})
		}
	})

	t.Run("reads after writes on another node", func(t *testing.T) {
		for i := range 20 {
			id := fmt.Sprintf("raw-%d", i)
			c.nodes[i%3].api.must(201, "POST", "/v1/connections", map[string]any{"id": id, "connectors": []string{"anymanifest"}, "auth": map[string]any{"type": "none"}})
			c.nodes[(i+1)%3].api.must(200, "GET", "/v1/connections/"+id, nil)
			c.nodes[(i+2)%3].api.must(204, "DELETE", "/v1/connections/"+id, nil)
			c.nodes[i%3].api.must(404, "GET", "/v1/connections/"+id, nil)
		}
	})
}

// TestClusterStoreOutage: /readyz is 503 on every node while the nats-server is down, and
// 200 again once it returns, without restarting the nodes; what was stored before is still
// served.
func TestClusterStoreOutage(t *testing.T) {
	c := startCluster(t, 2)
	n1, n2 := c.nodes[0], c.nodes[1]
	n1.api.must(201, "POST", "/v1/connectors?activate=true", clusterPlugin(t, "1.0.0"))
	n1.api.must(201, "POST", "/v1/connections", map[string]any{"id": "c1", "connectors": []string{"anymanifest"}, "auth": map[string]any{"type": "none"}})
	for _, nd := range c.nodes {
		nd.api.must(200, "GET", "/readyz", nil)
	}
	c.nats.stop()
	for _, nd := range c.nodes {
		waitFor(t, 10*time.Second, nd.name+" /readyz 503 while NATS is down", func() bool {
			st, _, _ := nd.api.do("GET", "/readyz", nil)
			return st == 503
		})
	}
	if st, body, _ := n2.api.do("POST", "/v1/connections", map[string]any{"id": "c2", "connectors": []string{"anymanifest"}, "auth": map[string]any{"type": "none"}}); st != 503 {
		t.Errorf("a write while NATS is down: %d %s, want 503 store_unavailable", st, body)
	} else if !bytes.Contains(body, []byte(`"store_unavailable"`)) {
		t.Errorf("a write while NATS is down: %s, want code store_unavailable", body)
	}
	c.nats.start()
	for _, nd := range c.nodes {
		d := waitFor(t, 20*time.Second, nd.name+" /readyz 200 once NATS is back", func() bool {
			st, _, _ := nd.api.do("GET", "/readyz", nil)
			return st == 200
		})
		t.Logf("%s ready %v after NATS returned", nd.name, d.Round(time.Millisecond))
	}
	n2.api.must(201, "POST", "/v1/connections", map[string]any{"id": "c2", "connectors": []string{"anymanifest"}, "auth": map[string]any{"type": "none"}})
	if v := echoVersion(t, n2); v != "1.0.0" {
		t.Errorf("n2 ran %s after the outage, want 1.0.0", v)
	}
}
