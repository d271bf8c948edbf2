package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkMCPToolCall compares one warm call of the http connector's request action (one
// upstream request) over the plain HTTP API and as an MCP tools/call on a Streamable HTTP
// session opened once (the official Go SDK client, JSON-RPC over POST with an SSE response).
// The difference is the MCP face's overhead: the SDK's transport and JSON-RPC handling, the
// token check against the store, and the structuredContent + text result.
func BenchmarkMCPToolCall(b *testing.B) {
	ts := benchConnection(b)
	tok := ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{"name": "bench", "connector": "http", "connection": "bench"})).json(b)["token"].(string)

	b.Run("http_action", func(b *testing.B) { benchAction(b, ts) })
	b.Run("mcp_tools_call", func(b *testing.B) { benchMCPToolCall(b, ts, tok, nil) })
	// A session revision: every request carries the signed session id, which is checked and
	// served statelessly, as any node of a cluster would.
	b.Run("mcp_tools_call_session", func(b *testing.B) {
		benchMCPToolCall(b, ts, tok, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	})
}

// benchMCPToolCall times tools/call on a session the Go SDK client opens with opts.
func benchMCPToolCall(b *testing.B, ts *testServer, tok string, opts *mcp.ClientSessionOptions) {
	c := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	sess, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: ts.http.URL + "/mcp/bench",
		HTTPClient: &http.Client{Transport: bearer{tok}}}, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	params := &mcp.CallToolParams{Name: "request", Arguments: map[string]any{"path": "/item"}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := sess.CallTool(ctx, params)
		if err != nil || res.IsError {
			b.Fatalf("tools/call: %v %+v", err, res)
		}
	}
}
