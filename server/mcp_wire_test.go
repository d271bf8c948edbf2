package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// mcpPost sends body to an MCP endpoint as it is, with the headers a Streamable HTTP client
// sends unless header (name, value pairs; an empty value deletes) says otherwise.
func (ts *testServer) mcpPost(path, token, body string, header ...string) response {
	ts.t.Helper()
	req, err := http.NewRequest("POST", ts.http.URL+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
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

// mcpSession opens a session with a raw initialize at version and returns its id.
func (ts *testServer) mcpSession(path, token, version string) string {
	ts.t.Helper()
	r := ts.mcpPost(path, token, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+version+
		`","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	id := r.Header.Get("Mcp-Session-Id")
	if r.Status != 200 || id == "" {
		ts.t.Fatalf("initialize at %s: %d %s", version, r.Status, r.Body)
	}
	ts.must(202, ts.mcpPost(path, token, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		"Mcp-Session-Id", id, "Mcp-Protocol-Version", version))
	return id
}

// TestMCPMalformedRequests: every malformed POST to an MCP endpoint gets a JSON-RPC error
// (application/json, the JSON-RPC 2.0 code, id null where the request's id is unknown) with a
// message that names no Go type or package, and the status the Streamable HTTP transport asks
// for (400, or 413 and 415 where HTTP has a closer one).
func TestMCPMalformedRequests(t *testing.T) {
	ts, _, tok := mcpGitHub(t)
	const path = "/mcp/github-tools"
	sid := ts.mcpSession(path, tok, "2025-06-18")
	inSession := []string{"Mcp-Session-Id", sid, "Mcp-Protocol-Version", "2025-06-18"}
	oldSession := ts.mcpSession(path, tok, "2025-03-26")
	const listTools = `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`

	for _, tc := range []struct {
		name   string
		body   string
		header []string
		status int
		code   int
		id     any // nil: the answer's id must be null
	}{
		{"not JSON", `hello`, inSession, 400, -32700, nil},
		{"truncated JSON", `{"jsonrpc":"2.0","id":7,"method":"tools/li`, inSession, 400, -32700, nil},
		{"an empty body", ``, inSession, 400, -32700, nil},
		{"a JSON string", `"tools/list"`, inSession, 400, -32600, nil},
		{"a JSON number", `42`, inSession, 400, -32600, nil},
		{"JSON null", `null`, inSession, 400, -32600, nil},
		{"an object that is no JSON-RPC message", `{"hello":"world"}`, inSession, 400, -32600, nil},
		{"a wrong jsonrpc value", `{"jsonrpc":"1.0","id":7,"method":"tools/list"}`, inSession, 400, -32600, float64(7)},
		{"a jsonrpc number", `{"jsonrpc":2,"id":7,"method":"tools/list"}`, inSession, 400, -32600, float64(7)},
		{"no jsonrpc member", `{"id":7,"method":"tools/list"}`, inSession, 400, -32600, float64(7)},
		{"no method", `{"jsonrpc":"2.0","id":7}`, inSession, 400, -32600, float64(7)},
		{"an empty method", `{"jsonrpc":"2.0","id":7,"method":""}`, inSession, 400, -32600, float64(7)},
		{"a method that is a number", `{"jsonrpc":"2.0","id":7,"method":5}`, inSession, 400, -32600, float64(7)},
		{"an id that is an object", `{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}`, inSession, 400, -32600, nil},
		{"an id that is a fraction", `{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}`, inSession, 400, -32600, nil},
		{"params that are a string", `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":"all"}`, inSession, 400, -32602, float64(7)},
		{"params that are an array", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":["get_repo"]}`, inSession, 400, -32602, float64(7)},
		{"a tool name that is a number", `{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":5}}`, inSession, 400, -32602, "a"},
		{"arguments that are a string", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_repo","arguments":"x"}}`, inSession, 400, -32602, float64(7)},
		{"a cursor that is a number", `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":3}}`, inSession, 400, -32602, float64(7)},
		{"tools/call without params", `{"jsonrpc":"2.0","id":7,"method":"tools/call"}`, inSession, 400, -32602, float64(7)},
		{"initialize with a numeric version", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":20250618,"capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`, nil, 400, -32602, float64(1)},
		{"a response with both result and error", `{"jsonrpc":"2.0","id":7,"result":{},"error":{"code":1,"message":"x"}}`, inSession, 400, -32600, float64(7)},
		{"an empty batch", `[]`, inSession, 400, -32600, nil},
		{"a batch at 2025-06-18", `[` + listTools + `]`, inSession, 400, -32600, nil},
		{"a batch in a 2025-03-26 session with a bad member", `[` + listTools + `,{"jsonrpc":"2.0","id":8}]`, []string{"Mcp-Session-Id", oldSession}, 400, -32600, nil},
		{"a wrong Content-Type", listTools, append([]string{"Content-Type", "text/plain"}, inSession...), 415, -32600, nil},
		{"no Content-Type", listTools, append([]string{"Content-Type", ""}, inSession...), 415, -32600, nil},
		{"a huge body", `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"` + strings.Repeat("x", 5<<20) + `"}}`, inSession, 413, -32600, nil},
		{"an Accept without event streams", listTools, append([]string{"Accept", "application/json"}, inSession...), 406, -32600, nil},
		{"an unknown session", listTools, []string{"Mcp-Session-Id", "nope", "Mcp-Protocol-Version", "2025-06-18"}, 404, -32001, nil},
		{"an unknown method", `{"jsonrpc":"2.0","id":7,"method":"tools/drop"}`, inSession, 404, -32601, float64(7)},
		{"not JSON at the stateless revision", `hello`, []string{"Mcp-Protocol-Version", "2026-07-28"}, 400, -32700, nil},
		{"params of the wrong type at the stateless revision", `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":3}}`, []string{"Mcp-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/list"}, 400, -32602, float64(7)},
		{"a batch at the stateless revision", `[` + listTools + `]`, []string{"Mcp-Protocol-Version", "2026-07-28"}, 400, -32600, nil},
		{"an unsupported protocol version header", listTools, []string{"Mcp-Session-Id", sid, "Mcp-Protocol-Version", "1999-01-01"}, 400, -32600, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.mcpPost(path, tok, tc.body, tc.header...)
			text := string(r.Body)
			for _, leak := range []string{"jsonrpc2", "json: cannot", "wireDecode", "unmarshal", "Go", "mcp.", "*", ".go"} {
				if strings.Contains(text, leak) {
					t.Errorf("the answer names %q: %s", leak, text)
				}
			}
			if r.Status != tc.status {
				t.Errorf("status %d, want %d: %s", r.Status, tc.status, text)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q, want application/json: %s", ct, text)
			}
			var doc struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Error   *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(r.Body, &doc); err != nil || doc.JSONRPC != "2.0" || doc.Error == nil {
				t.Fatalf("no JSON-RPC error response: %s", text)
			}
			if doc.Error.Code != tc.code || doc.Error.Message == "" {
				t.Errorf("error %d %q, want code %d", doc.Error.Code, doc.Error.Message, tc.code)
			}
			var id any
			if doc.ID == nil || json.Unmarshal(doc.ID, &id) != nil || id != tc.id {
				t.Errorf("id %s, want %v", doc.ID, tc.id)
			}
		})
	}

	t.Run("a well-formed request still works in the session", func(t *testing.T) {
		r := ts.mcpPost(path, tok, listTools, inSession...)
		if r.Status != 200 || !strings.Contains(string(r.Body), "get_repo") {
			t.Errorf("tools/list: %d %s", r.Status, r.Body)
		}
	})
	t.Run("a batch in a 2025-03-26 session is served", func(t *testing.T) {
		r := ts.mcpPost(path, tok, `[`+listTools+`]`, "Mcp-Session-Id", oldSession)
		if r.Status != 200 || !strings.Contains(string(r.Body), "get_repo") {
			t.Errorf("batch: %d %s", r.Status, r.Body)
		}
	})
}

// TestMCPToolsCallInSession: a session's tools/call is answered by Plugboard's own dispatch
// (mcpserver.callTool) as one application/json JSON-RPC response, and that answer is the one
// the SDK gives for the same call (here in a batch of a 2025-03-26 session, which the fast path
// leaves to the SDK and the SDK answers as an event): the same result for a tool that succeeds
// and for one that fails, apart from the correlation id. What the fast path leaves to the SDK still reaches it: an unknown tool, and a
// notification.
func TestMCPToolsCallInSession(t *testing.T) {
	ts, _, tok := mcpGitHub(t)
	const path = "/mcp/github-tools"
	const version = "2025-06-18"
	sid := ts.mcpSession(path, tok, version)
	inSession := []string{"Mcp-Session-Id", sid, "Mcp-Protocol-Version", version}
	oldSession := ts.mcpSession(path, tok, "2025-03-26")

	result := func(t *testing.T, r response, wantJSON bool) map[string]any {
		t.Helper()
		ct := r.Header.Get("Content-Type")
		if r.Status != 200 || wantJSON != strings.HasPrefix(ct, "application/json") {
			t.Fatalf("answer %d %q (want JSON %v): %s", r.Status, ct, wantJSON, r.Body)
		}
		var doc struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Result  map[string]any  `json:"result"`
		}
		body := sseData(r.Body)
		if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
			var batch []json.RawMessage
			if json.Unmarshal(b, &batch) != nil || len(batch) != 1 {
				t.Fatalf("not a batch of one answer: %s", r.Body)
			}
			body = batch[0]
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.JSONRPC != "2.0" || string(doc.ID) != `"c1"` || doc.Result == nil {
			t.Fatalf("not the JSON-RPC result of request c1: %s", r.Body)
		}
		m, _ := doc.Result["_meta"].(map[string]any)
		if cid, _ := m["dev.plugboard/correlation_id"].(string); cid == "" {
			t.Errorf("no correlation id in _meta: %s", r.Body)
		}
		delete(m, "dev.plugboard/correlation_id")
		if e, ok := m["dev.plugboard/error"].(map[string]any); ok {
			delete(e, "correlation_id")
		}
		if c, ok := doc.Result["content"].([]any); ok && len(c) == 1 {
			if text, ok := c[0].(map[string]any)["text"].(string); ok && strings.Contains(text, "correlation_id") {
				var v map[string]map[string]any
				if json.Unmarshal([]byte(text), &v) == nil {
					delete(v["error"], "correlation_id")
					b, _ := json.Marshal(v)
					c[0].(map[string]any)["text"] = string(b)
				}
			}
		}
		return doc.Result
	}
	for _, tc := range []struct{ name, args string }{
		{"a tool that succeeds", `{"owner":"octocat","repo":"Hello-World"}`},
		{"a tool that fails", `{"owner":"octocat","repo":"no-such-repo"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call := `{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"get_repo","arguments":` + tc.args + `}}`
			own := result(t, ts.mcpPost(path, tok, call, inSession...), true)
			sdk := result(t, ts.mcpPost(path, tok, `[`+call+`]`, "Mcp-Session-Id", oldSession), false)
			a, _ := json.Marshal(own)
			b, _ := json.Marshal(sdk)
			if string(a) != string(b) {
				t.Errorf("the session's answer differs from the SDK's:\nsession: %s\nSDK:     %s", a, b)
			}
			if tc.name == "a tool that fails" && own["isError"] != true {
				t.Errorf("a call to a missing repository is no tool error: %s", a)
			}
		})
	}
	t.Run("an unknown tool", func(t *testing.T) {
		r := ts.mcpPost(path, tok, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"drop_repo","arguments":{}}}`, inSession...)
		if !strings.Contains(string(r.Body), `unknown tool \"drop_repo\"`) || !strings.Contains(string(r.Body), "-32602") {
			t.Errorf("unknown tool: %d %s", r.Status, r.Body)
		}
	})
	t.Run("a notification", func(t *testing.T) {
		ts.must(202, ts.mcpPost(path, tok, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c1"}}`, inSession...))
	})
}
