package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

// mcpGitHub starts a server with the github connector, a connection to a fake GitHub and the
// MCP server "github-tools" allowing three of its four actions (add_comment is left out). It
// returns the server's token.
func mcpGitHub(t *testing.T) (*testServer, *githubfake.Fake, string) {
	t.Helper()
	return mcpGitHubWith(t, nil)
}

// mcpGitHubWith is [mcpGitHub] with the server's options changed by edit.
func mcpGitHubWith(t *testing.T, edit func(*Options)) (*testServer, *githubfake.Fake, string) {
	t.Helper()
	fake := githubfake.New(t)
	ts := startServer(t, edit)
	ts.must(201, ts.upload("github"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "gh-main", "connectors": []string{"github"}, "params": map[string]any{"base_url": fake.URL},
		"auth": map[string]any{"type": "api_key", "api_key": fake.Token},
	}))
	created := ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{
		"name": "github-tools", "connector": "github", "connection": "gh-main",
		"tools": []string{"get_repo", "list_issues", "create_issue"}, "enabled": true,
	})).json(t)
	tok, _ := created["token"].(string)
	if !strings.HasPrefix(tok, "mcp_") || created["url"] != "/mcp/github-tools" {
		t.Fatalf("create answered %v", created)
	}
	return ts, fake, tok
}

// bearer adds an Authorization header to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// mcpConnect opens a session with the Go SDK's client.
func mcpConnect(t *testing.T, url, token string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "plugboard-test", Version: "1"}, opts)
	s, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer{token}}}, nil)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// initialize sends an MCP initialize request as it is, with extra headers as name, value
// pairs, and returns the response.
func (ts *testServer) initialize(path, token string, header ...string) response {
	ts.t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	req, err := http.NewRequest("POST", ts.http.URL+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Host") {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// TestMCPServerRefusals: the endpoint refuses what API.md and the MCP transport spec say it
// must, and the refusals take effect at once.
func TestMCPServerRefusals(t *testing.T) {
	ts, _, tok := mcpGitHub(t)
	const path = "/mcp/github-tools"
	ts.must(200, ts.initialize(path, tok))

	for _, tc := range []struct {
		name   string
		path   string
		token  string
		header []string
		status int
		code   string
	}{
		{"no token", path, "", nil, 401, "unauthenticated"},
		{"wrong token", path, "mcp_0123", nil, 401, "unauthenticated"},
		{"another server's name without a token is not told apart", "/mcp/nope", "", nil, 401, "unauthenticated"},
		{"the admin token opens every server", path, testToken, nil, 200, ""},
		{"the admin token learns a server does not exist", "/mcp/nope", testToken, nil, 404, "mcp_server_not_found"},
		{"a foreign Origin is refused (DNS rebinding)", path, tok, []string{"Origin", "http://evil.example"}, 403, "forbidden"},
		{"a same-origin browser is allowed", path, tok, []string{"Origin", ts.http.URL}, 200, ""},
		{"a rebound Host on loopback is refused", path, tok, []string{"Host", "evil.example:80"}, 403, ""},
		{"the namespace endpoint wants the admin token", "/mcp", tok, nil, 401, "unauthenticated"},
		{"a deeper path is no endpoint", path + "/x", tok, nil, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.initialize(tc.path, tc.token, tc.header...)
			if r.Status != tc.status || (tc.code != "" && r.code(t) != tc.code) {
				t.Errorf("got %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
			if r.Status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}

	t.Run("a rotated-out token stops working at once", func(t *testing.T) {
		sess := mcpConnect(t, ts.http.URL+path, tok, nil)
		rot := ts.must(200, ts.do("POST", "/v1/mcp-servers/github-tools/rotate-token", nil)).json(t)
		newTok := rot["token"].(string)
		if r := ts.initialize(path, tok); r.Status != 401 {
			t.Errorf("old token: %d %s", r.Status, r.Body)
		}
		if _, err := sess.ListTools(context.Background(), nil); err == nil {
			t.Error("a session opened with the old token still lists tools")
		}
		ts.must(200, ts.initialize(path, newTok))
		tok = newTok
	})

	t.Run("a disabled server answers 404 until enabled", func(t *testing.T) {
		ts.must(200, ts.do("PATCH", "/v1/mcp-servers/github-tools", map[string]any{"enabled": false}))
		if r := ts.initialize(path, tok); r.Status != 404 {
			t.Errorf("disabled: %d %s", r.Status, r.Body)
		}
		ts.must(200, ts.do("PATCH", "/v1/mcp-servers/github-tools", map[string]any{"enabled": true}))
		ts.must(200, ts.initialize(path, tok))
	})

	t.Run("a tool outside the allowlist is not listed and not callable", func(t *testing.T) {
		sess := mcpConnect(t, ts.http.URL+path, tok, nil)
		list, err := sess.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range list.Tools {
			if tool.Name == "add_comment" {
				t.Error("add_comment is listed")
			}
		}
		_, err = sess.CallTool(context.Background(), &mcp.CallToolParams{Name: "add_comment",
			Arguments: map[string]any{"owner": "octocat", "repo": "Hello-World", "issue_number": 1, "body": "x"}})
		if err == nil || !strings.Contains(err.Error(), "unknown tool") {
			t.Errorf("calling add_comment: %v, want a protocol error for an unknown tool", err)
		}
	})

	t.Run("CRUD", func(t *testing.T) {
		got := ts.must(200, ts.do("GET", "/v1/mcp-servers/github-tools", nil))
		if strings.Contains(string(got.Body), tok) || strings.Contains(string(got.Body), "token") {
			t.Errorf("GET shows the token: %s", got.Body)
		}
		list := ts.must(200, ts.do("GET", "/v1/mcp-servers", nil)).json(t)["mcp_servers"].([]any)
		if len(list) != 1 {
			t.Errorf("list: %v", list)
		}
		for _, tc := range []struct {
			name   string
			body   map[string]any
			status int
			code   string
		}{
			{"name taken", map[string]any{"name": "github-tools", "connector": "github", "connection": "gh-main"}, 409, codeMCPServerExists},
			{"unknown connector", map[string]any{"name": "x-tools", "connector": "nope", "connection": "gh-main"}, 404, codeConnectorNotFound},
			{"unknown connection", map[string]any{"name": "x-tools", "connector": "github", "connection": "nope"}, 404, codeConnectionNotFound},
			{"no connection", map[string]any{"name": "x-tools", "connector": "github"}, 400, codeConnectionRequired},
			{"unknown tool", map[string]any{"name": "x-tools", "connector": "github", "connection": "gh-main", "tools": []string{"drop_db"}}, 400, codeInvalidRequest},
			{"bad name", map[string]any{"name": "X", "connector": "github", "connection": "gh-main"}, 400, codeInvalidRequest},
			{"unknown field", map[string]any{"name": "x-tools", "connector": "github", "connection": "gh-main", "tokens": 1}, 400, codeInvalidRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do("POST", "/v1/mcp-servers", tc.body)
				if r.Status != tc.status || r.code(t) != tc.code {
					t.Errorf("got %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
				}
			})
		}
		ts.must(204, ts.do("DELETE", "/v1/mcp-servers/github-tools", nil))
		ts.must(404, ts.do("GET", "/v1/mcp-servers/github-tools", nil))
		if r := ts.initialize(path, tok); r.Status != 401 {
			t.Errorf("a deleted server: %d %s", r.Status, r.Body)
		}
	})
}

// TestMCPToolsFromManifest: tools carry the manifest's schemas and annotations; a call runs
// the action path (upstream reached through the sandbox, metrics, correlation id); guest
// errors and invalid arguments are isError results with their code.
func TestMCPToolsFromManifest(t *testing.T) {
	ts, fake, tok := mcpGitHub(t)
	sess := mcpConnect(t, ts.http.URL+"/mcp/github-tools", tok, nil)
	ctx := context.Background()
	list, err := sess.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tool := range list.Tools {
		tools[tool.Name] = tool
	}
	if len(tools) != 3 || tools["get_repo"] == nil || tools["create_issue"] == nil {
		t.Fatalf("tools: %v", tools)
	}
	g := tools["get_repo"]
	if a := g.Annotations; a == nil || !a.ReadOnlyHint || !a.IdempotentHint || a.DestructiveHint == nil || *a.DestructiveHint {
		t.Errorf("get_repo annotations %+v", g.Annotations)
	}
	if a := tools["create_issue"].Annotations; a == nil || a.ReadOnlyHint || a.IdempotentHint {
		t.Errorf("create_issue annotations %+v", a)
	}
	if in, _ := g.InputSchema.(map[string]any); in["type"] != "object" || in["properties"].(map[string]any)["owner"] == nil {
		t.Errorf("get_repo inputSchema %v", g.InputSchema)
	}
	if out, _ := g.OutputSchema.(map[string]any); out["type"] != "object" {
		t.Errorf("get_repo outputSchema %v", g.OutputSchema)
	}

	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "get_repo", Arguments: map[string]any{"owner": "octocat", "repo": "Hello-World"}})
	if err != nil || res.IsError {
		t.Fatalf("get_repo: %v %+v", err, res)
	}
	sc, _ := res.StructuredContent.(map[string]any)
	if sc["full_name"] != githubfake.HelloWorld {
		t.Errorf("structuredContent %v", res.StructuredContent)
	}
	var text map[string]any
	if len(res.Content) != 1 || json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &text) != nil || text["full_name"] != githubfake.HelloWorld {
		t.Errorf("the text copy %v", res.Content)
	}
	if fake.LastAuthorization() != "Bearer "+fake.Token {
		t.Errorf("GitHub saw Authorization %q", fake.LastAuthorization())
	}
	cid, _ := res.Meta[("dev.plugboard/correlation_id")].(string)
	if !strings.HasPrefix(cid, "c_") {
		t.Errorf("no correlation id in _meta: %v", res.Meta)
	}

	for _, tc := range []struct {
		name, tool string
		args       map[string]any
		code       string
		source     string
	}{
		{"schema violation", "create_issue", map[string]any{"owner": "octocat", "repo": "Hello-World"}, "invalid_input", "plugboard"},
		{"guest error", "get_repo", map[string]any{"owner": "octocat", "repo": "nope"}, "not_found", "plugin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
			if err != nil {
				t.Fatalf("a protocol error %v; want an isError result", err)
			}
			var doc struct {
				Error struct{ Code, Message, Source string }
			}
			if !res.IsError || json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &doc) != nil ||
				doc.Error.Code != tc.code || doc.Error.Source != tc.source || doc.Error.Message == "" {
				t.Errorf("result %+v", res.Content[0])
			}
		})
	}

	m := string(ts.must(200, ts.do("GET", "/metrics", nil)).Body)
	for _, want := range []string{
		`plugboard_action_calls_total{connector="github",version="1.0.0",action="get_repo",code="ok"} 1`,
		`plugboard_action_calls_total{connector="github",version="1.0.0",action="get_repo",code="not_found"} 1`,
		`plugboard_mcp_tool_calls_total{server="github-tools",tool="get_repo",outcome="ok"} 1`,
		`plugboard_mcp_tool_calls_total{server="github-tools",tool="create_issue",outcome="invalid_input"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestMCPHotSwapListChanged: a hot swap that changes the tools reaches a connected session as
// notifications/tools/list_changed, and the next tools/list serves the new version's tools.
func TestMCPHotSwapListChanged(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.0.0"))))
	shout := `"actions":[{"name":"echo","input_schema":{"type":"object","properties":{"n":{"type":"integer"}}}},` +
		`{"name":"shout","description":"Says it louder.","input_schema":{"type":"object"},"annotations":{"read_only":true}}]`
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.1.0", shout))))
	tok := ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{"name": "any", "connector": "anymanifest"})).json(t)["token"].(string)

	changed := make(chan struct{}, 8)
	sess := mcpConnect(t, ts.http.URL+"/mcp/any", tok, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	ctx := context.Background()
	names := func() []string {
		t.Helper()
		list, err := sess.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tool := range list.Tools {
			out = append(out, tool.Name)
		}
		return out
	}
	if got := names(); !slices.Equal(got, []string{"echo"}) {
		t.Fatalf("before the swap: %v", got)
	}
	ts.must(200, ts.do("PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": "1.1.0"}))
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed within 10 s of the swap")
	}
	if got := names(); !slices.Equal(got, []string{"echo", "shout"}) {
		t.Fatalf("after the swap: %v", got)
	}
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "shout", Arguments: map[string]any{}})
	if err != nil || res.IsError || res.StructuredContent.(map[string]any)["version"] != "1.1.0" {
		t.Fatalf("shout: %v %+v", err, res)
	}

	// Narrowing the allowlist is a change of the list too.
	ts.must(200, ts.do("PATCH", "/v1/mcp-servers/any", map[string]any{"tools": []string{"shout"}}))
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed after PATCH tools")
	}
	if got := names(); !slices.Equal(got, []string{"shout"}) {
		t.Fatalf("after PATCH: %v", got)
	}
}

// TestMCPNamespace: /mcp serves every enabled server's tools as server__tool to the admin.
func TestMCPNamespace(t *testing.T) {
	ts, _, _ := mcpGitHub(t)
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.0.0"))))
	ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{"name": "any", "connector": "anymanifest"}))
	ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{"name": "off", "connector": "anymanifest", "enabled": false}))
	sess := mcpConnect(t, ts.http.URL+"/mcp", testToken, nil)
	ctx := context.Background()
	list, err := sess.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tool := range list.Tools {
		got = append(got, tool.Name)
	}
	want := []string{"any__echo", "github-tools__create_issue", "github-tools__get_repo", "github-tools__list_issues"}
	if !slices.Equal(got, want) {
		t.Fatalf("namespace tools %v, want %v", got, want)
	}
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "github-tools__get_repo", Arguments: map[string]any{"owner": "octocat", "repo": "Hello-World"}})
	if err != nil || res.IsError || res.StructuredContent.(map[string]any)["full_name"] != githubfake.HelloWorld {
		t.Fatalf("github-tools__get_repo: %v %+v", err, res)
	}
}

// nodeClientDir is the npm project of the MCP TypeScript SDK client and the MCP Inspector. It
// fails the test, with what to run, when node or the packages are missing: `.ci/run` and `make
// test` install them.
func nodeClientDir(t *testing.T) (node, dir string) {
	t.Helper()
	dir = filepath.Join(repoRoot(t), "server", "testdata", "mcp-client")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: the MCP end-to-end tests need Node 20 or later")
	}
	for _, p := range []string{"@modelcontextprotocol/sdk/package.json", "@modelcontextprotocol/inspector/package.json"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p)); err != nil {
			t.Fatalf("%s/node_modules lacks %s: run `make mcp-client` (npm ci --prefix server/testdata/mcp-client)", dir, filepath.Dir(p))
		}
	}
	return node, dir
}

// nodeStep is one step of client.mjs's output.
type nodeStep struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestMCPTypeScriptClient runs the official MCP TypeScript SDK client (npm
// @modelcontextprotocol/sdk) against a managed server over Streamable HTTP.
func TestMCPTypeScriptClient(t *testing.T) {
	node, dir := nodeClientDir(t)
	ts, fake, tok := mcpGitHub(t)
	steps, _ := json.Marshal([]map[string]any{
		{"op": "list"},
		{"op": "call", "name": "get_repo", "arguments": map[string]any{"owner": "octocat", "repo": "Hello-World"}},
		{"op": "call", "name": "create_issue", "arguments": map[string]any{"owner": "octocat", "repo": "Hello-World", "title": 42}},
		{"op": "call", "name": "add_comment", "arguments": map[string]any{"owner": "octocat", "repo": "Hello-World", "issue_number": 1, "body": "x"}},
	})
	run := func(token string) (out struct {
		Server       map[string]any `json:"server"`
		Capabilities map[string]any `json:"capabilities"`
		Steps        []nodeStep     `json:"steps"`
		ConnectError *struct {
			Message string `json:"message"`
		} `json:"connect_error"`
	}) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "client.mjs", ts.http.URL+"/mcp/github-tools", token, string(steps))
		cmd.Dir = dir
		b, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node client.mjs: %v\n%s", err, ee.Stderr)
		}
		if err != nil || json.Unmarshal(b, &out) != nil {
			t.Fatalf("node client.mjs: %v\n%s", err, b)
		}
		return out
	}

	if out := run("mcp_wrong"); out.ConnectError == nil || !strings.Contains(out.ConnectError.Message, "401") {
		t.Errorf("a wrong token connected: %+v", out)
	}

	out := run(tok)
	if out.ConnectError != nil || len(out.Steps) != 4 {
		t.Fatalf("client: %+v", out)
	}
	if caps, _ := out.Capabilities["tools"].(map[string]any); caps["listChanged"] != true {
		t.Errorf("capabilities %v", out.Capabilities)
	}
	var list struct{ Tools []mcp.Tool }
	if err := json.Unmarshal(out.Steps[0].Result, &list); err != nil || len(list.Tools) != 3 {
		t.Fatalf("tools/list: %s", out.Steps[0].Result)
	}
	for _, tool := range list.Tools {
		if tool.InputSchema.(map[string]any)["type"] != "object" || tool.OutputSchema == nil || tool.Annotations == nil || tool.Description == "" {
			t.Errorf("tool %s lacks a schema, annotations or description: %+v", tool.Name, tool)
		}
		if tool.Name == "get_repo" && (!tool.Annotations.ReadOnlyHint || *tool.Annotations.DestructiveHint) {
			t.Errorf("get_repo annotations %+v", tool.Annotations)
		}
	}

	var call struct {
		StructuredContent map[string]any `json:"structuredContent"`
		Content           []struct{ Type, Text string }
		IsError           bool `json:"isError"`
	}
	if !out.Steps[1].OK || json.Unmarshal(out.Steps[1].Result, &call) != nil || call.IsError ||
		call.StructuredContent["full_name"] != githubfake.HelloWorld || len(call.Content) != 1 || !strings.Contains(call.Content[0].Text, githubfake.HelloWorld) {
		t.Errorf("get_repo through the TypeScript client: %+v %s", out.Steps[1], out.Steps[1].Result)
	}
	if fake.LastAuthorization() != "Bearer "+fake.Token {
		t.Errorf("the upstream fake saw Authorization %q", fake.LastAuthorization())
	}

	call.IsError, call.Content = false, nil
	if !out.Steps[2].OK || json.Unmarshal(out.Steps[2].Result, &call) != nil || !call.IsError ||
		!strings.Contains(call.Content[0].Text, `"code":"invalid_input"`) || !strings.Contains(call.Content[0].Text, "/title") {
		t.Errorf("bad arguments: %+v %s", out.Steps[2], out.Steps[2].Result)
	}
	if s := out.Steps[3]; s.OK || s.Error == nil || s.Error.Code == nil || *s.Error.Code != -32602 {
		t.Errorf("a tool outside the allowlist: %+v", s)
	}
}

// TestMCPInspectorCLI lists and calls tools with the MCP Inspector's CLI mode.
func TestMCPInspectorCLI(t *testing.T) {
	node, dir := nodeClientDir(t)
	ts, _, tok := mcpGitHub(t)
	inspect := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		argv := append([]string{filepath.Join("node_modules", "@modelcontextprotocol", "inspector", "cli", "build", "cli.js"), "--cli",
			ts.http.URL + "/mcp/github-tools", "--transport", "http", "--header", "Authorization: Bearer " + tok}, args...)
		cmd := exec.CommandContext(ctx, node, argv...)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mcp-inspector --cli %v: %v\n%s", args, err, b)
		}
		return b
	}
	var list struct{ Tools []mcp.Tool }
	if b := inspect("--method", "tools/list"); json.Unmarshal(b, &list) != nil || len(list.Tools) != 3 {
		t.Errorf("tools/list: %s", b)
	}
	var call struct {
		StructuredContent map[string]any `json:"structuredContent"`
	}
	b := inspect("--method", "tools/call", "--tool-name", "get_repo", "--tool-arg", "owner=octocat", "--tool-arg", "repo=Hello-World")
	if json.Unmarshal(b, &call) != nil || call.StructuredContent["full_name"] != githubfake.HelloWorld {
		t.Errorf("tools/call: %s", b)
	}
}

// TestMCPHostedServlet: a plugin of kind "mcp" (plugins/fetch-mcp, an Extism servlet with
// describe and call exports) serves its own tools in the sandbox: it reaches the connection's
// origin and nothing else.
func TestMCPHostedServlet(t *testing.T) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<html><head><script>x()</script></head><body><h1>Docs</h1><p>Hello &amp; welcome</p></body></html>`)
	}))
	defer site.Close()
	ts := startServer(t, nil)
	ts.must(201, ts.upload("fetch-mcp"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "site", "connectors": []string{"fetch-mcp"}, "params": map[string]any{"base_url": site.URL}, "auth": map[string]any{"type": "none"},
	}))
	tok := ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{"name": "site-reader", "connector": "fetch-mcp", "connection": "site"})).json(t)["token"].(string)
	sess := mcpConnect(t, ts.http.URL+"/mcp/site-reader", tok, nil)
	ctx := context.Background()
	list, err := sess.ListTools(ctx, nil)
	if err != nil || len(list.Tools) != 1 || list.Tools[0].Name != "fetch" || !list.Tools[0].Annotations.ReadOnlyHint {
		t.Fatalf("tools: %v %+v", err, list)
	}
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "fetch", Arguments: map[string]any{"url": "/docs"}})
	if err != nil || res.IsError {
		t.Fatalf("fetch: %v %+v", err, res)
	}
	if text, _ := res.StructuredContent.(map[string]any)["text"].(string); text != "Docs\n\nHello & welcome" {
		t.Errorf("fetch text %q", text)
	}
	other := strings.Replace(site.URL, "127.0.0.1", "localhost", 1)
	res, err = sess.CallTool(ctx, &mcp.CallToolParams{Name: "fetch", Arguments: map[string]any{"url": other + "/"}})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "host_not_allowed") {
		t.Errorf("another origin: %v %+v", err, res)
	}
}
