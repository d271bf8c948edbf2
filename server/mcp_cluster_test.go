package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/plugboard/plugboard/plugins/github/githubfake"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// The MCP row of API.md "Cluster": a Streamable HTTP session opened on one node keeps working
// when its next request lands on another. Two servers over one store opened once are two
// nodes as far as MCP is concerned: they share the store and the admin token, and nothing
// else (no session table, no sticky routing).

// mcpNodes starts node A with the github MCP server of [mcpGitHub], then node B over the same
// store with the same admin token. It returns both and the MCP server's token.
func mcpNodes(t *testing.T) (a, b *testServer, tok string) {
	t.Helper()
	st := mcpSharedStore(t)
	onStore := func(o *Options) { o.Storage = st }
	a, _, tok = mcpGitHubWith(t, onStore)
	b = startServer(t, onStore)
	return a, b, tok
}

// mcpSharedStore opens one bbolt store for several servers; it closes after them.
func mcpSharedStore(t *testing.T) storage.Store {
	t.Helper()
	st, err := registry.OpenStore(context.Background(), registry.StoreConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // registered first: runs after the servers stopped
	return st
}

// nodeSwitch is an HTTP transport that sends every request to the node it currently points
// at, with the bearer token, as a load balancer without sticky sessions would, and records
// what each node received.
type nodeSwitch struct {
	token string

	mu   sync.Mutex
	host string   // host:port of the current node
	log  []string // "host METHOD rpc-method session?" per request
}

func (s *nodeSwitch) to(ts *testServer) {
	u, _ := url.Parse(ts.http.URL)
	s.mu.Lock()
	s.host = u.Host
	s.mu.Unlock()
}

func (s *nodeSwitch) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	host := s.host
	s.mu.Unlock()
	r = r.Clone(r.Context())
	r.URL.Host, r.Host = host, host
	r.Header.Set("Authorization", "Bearer "+s.token)
	method := ""
	if r.Body != nil {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var m struct{ Method string }
		_ = json.Unmarshal(body, &m)
		method = m.Method
	}
	entry := host + " " + r.Method + " " + method
	if r.Header.Get("Mcp-Session-Id") != "" {
		entry += " session"
	}
	s.mu.Lock()
	s.log = append(s.log, entry)
	s.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// saw reports whether node ts received a request with the given HTTP method, JSON-RPC method
// ("" for none) and a session id.
func (s *nodeSwitch) saw(ts *testServer, httpMethod, rpcMethod string) bool {
	u, _ := url.Parse(ts.http.URL)
	want := u.Host + " " + httpMethod + " " + rpcMethod + " session"
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.log, want)
}

// TestMCPSessionContinuesOnAnotherNode: at every protocol revision with sessions, the official
// Go SDK client initializes on node A, and its next requests (tools/list, tools/call with the
// Mcp-Session-Id A answered) go to node B, which never saw the session, and back to A.
func TestMCPSessionContinuesOnAnotherNode(t *testing.T) {
	a, b, tok := mcpNodes(t)
	ctx := context.Background()
	for _, v := range mcp.SupportedProtocolVersions() {
		if v >= "2026-07-28" {
			continue // the stateless revision has no session to move
		}
		t.Run(v, func(t *testing.T) {
			sw := &nodeSwitch{token: tok}
			sw.to(a)
			c := mcp.NewClient(&mcp.Implementation{Name: "plugboard-test", Version: "1"}, nil)
			sess, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: a.http.URL + "/mcp/github-tools",
				HTTPClient: &http.Client{Transport: sw}, DisableStandaloneSSE: true}, &mcp.ClientSessionOptions{ProtocolVersion: v})
			if err != nil {
				t.Fatalf("initialize on A: %v", err)
			}
			defer sess.Close()
			if sess.ID() == "" || sess.InitializeResult().ProtocolVersion != v {
				t.Fatalf("session %q at %s", sess.ID(), sess.InitializeResult().ProtocolVersion)
			}

			sw.to(b)
			list, err := sess.ListTools(ctx, nil)
			if err != nil {
				t.Fatalf("tools/list on B: %v", err)
			}
			var names []string
			for _, tool := range list.Tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			if !slices.Equal(names, []string{"create_issue", "get_repo", "list_issues"}) {
				t.Errorf("tools on B: %v", names)
			}
			res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "get_repo", Arguments: map[string]any{"owner": "octocat", "repo": "Hello-World"}})
			if err != nil || res.IsError || res.StructuredContent.(map[string]any)["full_name"] != githubfake.HelloWorld {
				t.Fatalf("tools/call on B: %v %+v", err, res)
			}
			if !sw.saw(b, "POST", "tools/list") || !sw.saw(b, "POST", "tools/call") {
				t.Fatalf("B did not get the session's requests: %v", sw.log)
			}

			sw.to(a)
			if _, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "get_repo", Arguments: map[string]any{"owner": "octocat", "repo": "Hello-World"}}); err != nil {
				t.Fatalf("tools/call back on A: %v", err)
			}
		})
	}
}

// rpcError decodes a JSON-RPC error response.
func rpcError(t *testing.T, r response) (code int, message string) {
	t.Helper()
	var doc struct {
		JSONRPC string `json:"jsonrpc"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil || doc.JSONRPC != "2.0" || doc.Error == nil {
		t.Fatalf("no JSON-RPC error (%d): %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	return doc.Error.Code, doc.Error.Message
}

// TestMCPSessionRefusedAcrossNodes: a session id that was altered, that belongs to another
// endpoint, that another cluster (another admin token) issued, or that is presented with
// another bearer token is a 404 with a JSON-RPC error naming why, on any node; a rotated
// token and a disabled server are refused on the other node from the next request on; DELETE
// does not pretend to end a session.
func TestMCPSessionRefusedAcrossNodes(t *testing.T) {
	a, b, tok := mcpNodes(t)
	const path = "/mcp/github-tools"
	const listTools = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	sid := a.mcpSession(path, tok, "2025-06-18")
	inSession := func(id string) []string { return []string{"Mcp-Session-Id", id, "Mcp-Protocol-Version", "2025-06-18"} }
	if r := b.mcpPost(path, tok, listTools, inSession(sid)...); r.Status != 200 || !strings.Contains(string(r.Body), "get_repo") {
		t.Fatalf("the session on B: %d %s", r.Status, r.Body)
	}
	// Without the version header (as a 2025-03-26 client sends), the id gives the version.
	old := a.mcpSession(path, tok, "2025-03-26")
	if r := b.mcpPost(path, tok, `[`+listTools+`]`, "Mcp-Session-Id", old); r.Status != 200 || !strings.Contains(string(r.Body), "get_repo") {
		t.Fatalf("a batch in a 2025-03-26 session on B: %d %s", r.Status, r.Body)
	}

	other := startServer(t, func(o *Options) { o.Storage = a.opts.Storage; o.AdminToken = "another-cluster-admin-token" })
	tampered := sid[:len(sid)-3] + "abc"
	if tampered == sid {
		tampered = sid[:len(sid)-3] + "xyz"
	}
	for _, tc := range []struct {
		name   string
		node   *testServer
		path   string
		token  string
		header []string
		want   string
	}{
		{"a tampered id", b, path, tok, inSession(tampered), "altered"},
		{"an id that is no Plugboard session", b, path, tok, inSession("0b6a1c2f-7d1e-4c55-9f41-0d3b0a4a2f6e"), "not issued by this Plugboard"},
		{"another cluster's node", other, path, tok, inSession(sid), "not issued by this Plugboard"},
		{"another MCP endpoint", b, "/mcp", testToken, inSession(sid), "another MCP server (github-tools)"},
		{"another bearer token", b, path, testToken, inSession(sid), "another bearer token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.node.mcpPost(tc.path, tc.token, listTools, tc.header...)
			if r.Status != 404 {
				t.Fatalf("status %d, want 404: %s", r.Status, r.Body)
			}
			if code, msg := rpcError(t, r); code != -32001 || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "initialize") {
				t.Errorf("error %d %q, want -32001 naming %q and what to do", code, msg, tc.want)
			}
		})
	}

	t.Run("a request with no session id other than initialize is refused", func(t *testing.T) {
		r := b.mcpPost(path, tok, listTools, "Mcp-Protocol-Version", "2025-06-18")
		if code, msg := rpcError(t, r); r.Status != 400 || code != -32600 || !strings.Contains(msg, "initialize") {
			t.Errorf("%d %d %q", r.Status, code, msg)
		}
	})

	t.Run("DELETE is 405 and the session goes on", func(t *testing.T) {
		req, _ := http.NewRequest("DELETE", b.http.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Mcp-Session-Id", sid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{Status: resp.StatusCode, Header: resp.Header, Body: body}
		if code, msg := rpcError(t, r); r.Status != 405 || code != -32600 || !strings.Contains(msg, "expires") || resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("DELETE: %d %d %q Allow %q", r.Status, code, msg, resp.Header.Get("Allow"))
		}
		if r := a.mcpPost(path, tok, listTools, inSession(sid)...); r.Status != 200 {
			t.Errorf("after DELETE: %d %s", r.Status, r.Body)
		}
	})

	t.Run("a token rotated on A is refused on B from the next request on", func(t *testing.T) {
		newTok := a.must(200, a.do("POST", "/v1/mcp-servers/github-tools/rotate-token", nil)).json(t)["token"].(string)
		if r := b.mcpPost(path, tok, listTools, inSession(sid)...); r.Status != 401 {
			t.Errorf("the old token on B: %d %s", r.Status, r.Body)
		}
		// The session was the old token's: the new token starts a new one.
		if r := b.mcpPost(path, newTok, listTools, inSession(sid)...); r.Status != 404 {
			t.Errorf("the old session with the new token: %d %s", r.Status, r.Body)
		}
		fresh := b.mcpSession(path, newTok, "2025-06-18")
		if r := a.mcpPost(path, newTok, listTools, inSession(fresh)...); r.Status != 200 {
			t.Errorf("a session of the new token opened on B, on A: %d %s", r.Status, r.Body)
		}
		tok, sid = newTok, fresh
	})

	t.Run("a server disabled on B is refused on A from the next request on", func(t *testing.T) {
		b.must(200, b.do("PATCH", "/v1/mcp-servers/github-tools", map[string]any{"enabled": false}))
		r := a.mcpPost(path, tok, listTools, inSession(sid)...)
		if r.Status != 404 || r.code(t) != "mcp_server_disabled" {
			t.Errorf("disabled, on A: %d %s", r.Status, r.Body)
		}
		b.must(200, b.do("PATCH", "/v1/mcp-servers/github-tools", map[string]any{"enabled": true}))
		if r := a.mcpPost(path, tok, listTools, inSession(sid)...); r.Status != 200 {
			t.Errorf("enabled again, on A: %d %s", r.Status, r.Body)
		}
	})
}

// TestMCPEventStreamAcrossNodes: a session's GET event stream lives on the node it reached.
// An allowlist change made through the other node reaches it as
// notifications/tools/list_changed (the node sees the shared store change), and a token
// rotated through the other node ends it.
func TestMCPEventStreamAcrossNodes(t *testing.T) {
	a, b, tok := mcpNodes(t)
	ctx := context.Background()
	sw := &nodeSwitch{token: tok}
	sw.to(a)
	changed := make(chan struct{}, 8)
	c := mcp.NewClient(&mcp.Implementation{Name: "plugboard-test", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	sess, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: a.http.URL + "/mcp/github-tools",
		HTTPClient: &http.Client{Transport: sw}}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !sw.saw(a, "GET", "") {
		if time.Now().After(deadline) {
			t.Fatalf("the client opened no event stream on A: %v", sw.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sw.to(b)

	b.must(200, b.do("PATCH", "/v1/mcp-servers/github-tools", map[string]any{"tools": []string{"get_repo"}}))
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed on A's stream within 10 s of the PATCH on B")
	}
	list, err := sess.ListTools(ctx, nil)
	if err != nil || len(list.Tools) != 1 || list.Tools[0].Name != "get_repo" {
		t.Fatalf("tools/list on B after the PATCH: %v %+v", err, list)
	}

	// Raw streams, to see them end: a session's GET and a subscriptions/listen of the
	// stateless revision, both on A.
	sid := a.mcpSession("/mcp/github-tools", tok, "2025-11-25")
	get, _ := http.NewRequest("GET", a.http.URL+"/mcp/github-tools", nil)
	get.Header.Set("Accept", "text/event-stream")
	get.Header.Set("Mcp-Session-Id", sid)
	get.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`
	listen, _ := http.NewRequest("POST", a.http.URL+"/mcp/github-tools", strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{`+meta+`,"notifications":{"toolsListChanged":true}}}`))
	listen.Header.Set("Content-Type", "application/json")
	listen.Header.Set("Accept", "application/json, text/event-stream")
	listen.Header.Set("Mcp-Protocol-Version", "2026-07-28")
	listen.Header.Set("Mcp-Method", "subscriptions/listen")
	var ends []chan error
	for _, req := range []*http.Request{get, listen} {
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: %d %s", req.Method, resp.StatusCode, b)
		}
		ended := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, bufio.NewReader(resp.Body))
			ended <- err
		}()
		ends = append(ends, ended)
	}
	b.must(200, b.do("POST", "/v1/mcp-servers/github-tools/rotate-token", nil))
	for i, ended := range ends {
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("A's stream %d of the rotated token is still open 10 s after the rotation on B", i)
		}
	}
}
