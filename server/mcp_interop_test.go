package server

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	mcpgoclient "github.com/mark3labs/mcp-go/client"
	mcpgotransport "github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

// latestMCPVersion is the newest protocol revision the SDK knows; it is the one a client that
// asks for it must get.
var latestMCPVersion = mcp.SupportedProtocolVersions()[0]

// TestMCPGoSDKClient: the official Go SDK client, with default options and at every protocol
// version it knows, connects, lists the tools, calls one and gets a guest error as isError.
func TestMCPGoSDKClient(t *testing.T) {
	ts, _, tok := mcpGitHub(t)
	url := ts.http.URL + "/mcp/github-tools"
	versions := append([]string{""}, mcp.SupportedProtocolVersions()...)
	for _, v := range versions {
		name := v
		if v == "" {
			name = "default options"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := mcp.NewClient(&mcp.Implementation{Name: "plugboard-test", Version: "1"}, nil)
			var opts *mcp.ClientSessionOptions
			if v != "" {
				opts = &mcp.ClientSessionOptions{ProtocolVersion: v}
			}
			sess, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: bearerClient(tok)}, opts)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer sess.Close()
			want := v
			if v == "" {
				want = latestMCPVersion
			}
			if got := sess.InitializeResult().ProtocolVersion; got != want {
				t.Errorf("negotiated %s, want %s", got, want)
			}
			list, err := sess.ListTools(ctx, nil)
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			var names []string
			for _, tool := range list.Tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			if !slices.Equal(names, []string{"create_issue", "get_repo", "list_issues"}) {
				t.Errorf("tools %v", names)
			}
			res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "get_repo", Arguments: map[string]any{"owner": "octocat", "repo": "Hello-World"}})
			if err != nil || res.IsError {
				t.Fatalf("get_repo: %v %+v", err, res)
			}
			if sc, _ := res.StructuredContent.(map[string]any); sc["full_name"] != githubfake.HelloWorld {
				t.Errorf("structuredContent %v", res.StructuredContent)
			}
			res, err = sess.CallTool(ctx, &mcp.CallToolParams{Name: "get_repo", Arguments: map[string]any{"owner": "octocat", "repo": "nope"}})
			if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, `"not_found"`) {
				t.Errorf("a guest error: %v %+v, want an isError result with not_found", err, res)
			}
		})
	}
}

// TestMCPMarkGoClient: github.com/mark3labs/mcp-go's Streamable HTTP client with default options
// (it probes server/discover first) connects, lists the tools, calls one and gets a guest
// error as isError.
func TestMCPMarkGoClient(t *testing.T) {
	ts, _, tok := mcpGitHub(t)
	ctx := context.Background()
	c, err := mcpgoclient.NewStreamableHttpClient(ts.http.URL+"/mcp/github-tools",
		mcpgotransport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + tok}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var init mcpgo.InitializeRequest
	init.Params.ClientInfo = mcpgo.Implementation{Name: "mcp-go-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	t.Logf("mcp-go negotiated %s", c.ProtocolVersion())
	list, err := c.ListTools(ctx, mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list after negotiating %s: %v", c.ProtocolVersion(), err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"create_issue", "get_repo", "list_issues"}) {
		t.Errorf("tools %v", names)
	}
	call := func(repo string) *mcpgo.CallToolResult {
		t.Helper()
		var req mcpgo.CallToolRequest
		req.Params.Name = "get_repo"
		req.Params.Arguments = map[string]any{"owner": "octocat", "repo": repo}
		res, err := c.CallTool(ctx, req)
		if err != nil {
			t.Fatalf("tools/call get_repo %s: %v", repo, err)
		}
		return res
	}
	res := call("Hello-World")
	var out map[string]any
	if res.IsError || len(res.Content) != 1 || json.Unmarshal([]byte(mcpgo.GetTextFromContent(res.Content[0])), &out) != nil ||
		out["full_name"] != githubfake.HelloWorld {
		t.Errorf("get_repo: %+v", res)
	}
	if res := call("nope"); !res.IsError || !strings.Contains(mcpgo.GetTextFromContent(res.Content[0]), `"not_found"`) {
		t.Errorf("a guest error: %+v, want an isError result with not_found", res)
	}
}

// TestMCPProtocolVersions: initialize at every protocol version that handshake negotiates
// answers that version and tools/list works at it; the stateless revision is found through
// server/discover and serves tools/list; a version the server does not know is negotiated to
// the newest the handshake can reach, as the lifecycle specification asks.
func TestMCPProtocolVersions(t *testing.T) {
	ts, _, tok := mcpGitHub(t)
	const path = "/mcp/github-tools"
	const listTools = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	latestLegacy := ""
	for _, v := range mcp.SupportedProtocolVersions() {
		if v < "2026-07-28" {
			latestLegacy = v
			break
		}
	}
	initialize := func(t *testing.T, asked string) (string, string) {
		t.Helper()
		r := ts.mcpPost(path, tok, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+asked+
			`","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
		var res struct {
			Result struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
		}
		if r.Status != 200 || json.Unmarshal(sseData(r.Body), &res) != nil {
			t.Fatalf("initialize at %s: %d %s", asked, r.Status, r.Body)
		}
		sid := r.Header.Get("Mcp-Session-Id")
		ts.must(202, ts.mcpPost(path, tok, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "Mcp-Session-Id", sid,
			"Mcp-Protocol-Version", res.Result.ProtocolVersion))
		return res.Result.ProtocolVersion, sid
	}
	for _, v := range mcp.SupportedProtocolVersions() {
		t.Run(v, func(t *testing.T) {
			var r response
			if v >= "2026-07-28" {
				meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"` + v + `","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`
				d := ts.mcpPost(path, tok, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+meta+`}}`, "Mcp-Protocol-Version", v, "Mcp-Method", "server/discover")
				var res struct {
					Result struct {
						SupportedVersions []string `json:"supportedVersions"`
					} `json:"result"`
				}
				if d.Status != 200 || json.Unmarshal(sseData(d.Body), &res) != nil || !slices.Contains(res.Result.SupportedVersions, v) {
					t.Fatalf("server/discover at %s does not list it: %d %s", v, d.Status, d.Body)
				}
				r = ts.mcpPost(path, tok, `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{`+meta+`}}`,
					"Mcp-Protocol-Version", v, "Mcp-Method", "tools/list")
			} else {
				got, sid := initialize(t, v)
				if got != v {
					t.Fatalf("initialize at %s answered %s", v, got)
				}
				r = ts.mcpPost(path, tok, listTools, "Mcp-Session-Id", sid, "Mcp-Protocol-Version", v)
			}
			if r.Status != 200 || !strings.Contains(string(r.Body), `"get_repo"`) {
				t.Errorf("tools/list at %s: %d %s", v, r.Status, r.Body)
			}
		})
	}
	for _, v := range []string{"2099-01-01", "1999-01-01", "draft"} {
		t.Run("unknown "+v, func(t *testing.T) {
			got, sid := initialize(t, v)
			if got != latestLegacy {
				t.Fatalf("initialize at %s answered %s, want %s", v, got, latestLegacy)
			}
			if r := ts.mcpPost(path, tok, listTools, "Mcp-Session-Id", sid, "Mcp-Protocol-Version", got); r.Status != 200 || !strings.Contains(string(r.Body), `"get_repo"`) {
				t.Errorf("tools/list: %d %s", r.Status, r.Body)
			}
		})
	}
}

// sseData is the data of a one-event SSE answer, or the body when it is plain JSON.
func sseData(body []byte) []byte {
	for _, line := range strings.Split(string(body), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			return []byte(d)
		}
	}
	return body
}

// bearerClient is an HTTP client that sends the bearer token.
func bearerClient(token string) *http.Client { return &http.Client{Transport: bearer{token}} }
