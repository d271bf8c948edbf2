package mcpserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// callTool answers a tools/call request of a session by calling the tool's handler itself,
// and reports whether it did; everything else (another method, a notification, a batch, an
// unknown tool, a protocol version the SDK would refuse, the multi-round-trip fields) is left
// to the SDK, which answers it as before.
//
// Why: tools/call is the hot path of an agent, and the SDK's stateless handler spends more on
// one than the action it runs (a session, a connection and goroutines per request, and four
// JSON decodes that each allocate a 32 KB buffer): the same action called as a tool did about
// half the requests/s of the HTTP action (BENCHMARKS.md). The body was already checked by
// [Handler.checkPOST] and the session by its id, so what is left is the SDK's own dispatch:
// find the tool, call its handler, encode the result. The answer is the JSON-RPC response as
// application/json, which every Streamable HTTP client accepts (the request's Accept had to
// name it); the SDK would frame the same response as one server-sent event.
//
// One difference from the SDK, on purpose: a handler's internal error (not a tool error) is
// JSON-RPC code -32603 (internal error) here, where the SDK sends code 0.
func (e *endpoint) callTool(w http.ResponseWriter, r *http.Request, m map[string]json.RawMessage, version string) bool {
	// m is the checked message's members (nil for a batch), matched by exact name as the SDK's
	// decoder matches them (encoding/json into a struct would also take "Method" for "method").
	if m == nil || version >= versionStateless || !slices.Contains(mcp.SupportedProtocolVersions(), version) {
		return false
	}
	var method string
	if json.Unmarshal(m["method"], &method) != nil || method != "tools/call" || !validID(m["id"]) {
		return false
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(m["params"], &p) != nil {
		return false
	}
	var name string
	if json.Unmarshal(p["name"], &name) != nil || p["inputResponses"] != nil || p["requestState"] != nil {
		return false
	}
	e.hmu.RLock()
	handler := e.handlers[name]
	e.hmu.RUnlock()
	if handler == nil {
		return false // the SDK answers "unknown tool"
	}
	params := &mcp.CallToolParamsRaw{Name: name, Arguments: p["arguments"]}
	if raw, ok := p["_meta"]; ok && json.Unmarshal(raw, &params.Meta) != nil {
		return false
	}

	res, err := handler(r.Context(), &mcp.CallToolRequest{Params: params, Extra: &mcp.RequestExtra{Header: r.Header}})
	resp := toolResponse{JSONRPC: "2.0", ID: m["id"]}
	switch {
	case err != nil:
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) {
			werr = &jsonrpc.Error{Code: CodeInternalError, Message: err.Error()}
		}
		resp.Error = werr
	case res == nil:
		resp.Result = &mcp.CallToolResult{Content: []mcp.Content{}}
	default:
		if res.Content == nil {
			res.Content = []mcp.Content{} // "content" is required: never null
		}
		resp.Result = res
	}
	out, err := json.Marshal(resp)
	if err != nil {
		e.h.log.Error("encoding a tools/call result", "server", e.name, "tool", name, "err", err)
		out, _ = json.Marshal(toolResponse{JSONRPC: "2.0", ID: m["id"],
			Error: &jsonrpc.Error{Code: CodeInternalError, Message: "internal error: the tool's result could not be encoded; the server log has the details"}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return true
}

// toolResponse is the JSON-RPC response to a tools/call.
type toolResponse struct {
	JSONRPC string              `json:"jsonrpc"`
	ID      json.RawMessage     `json:"id"`
	Result  *mcp.CallToolResult `json:"result,omitempty"`
	Error   *jsonrpc.Error      `json:"error,omitempty"`
}
