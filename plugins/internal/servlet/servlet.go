//go:build wasip1

package servlet

import (
	"encoding/json"
	"fmt"

	extism "github.com/extism/go-pdk"
)

// Request is the input of the call export.
type Request struct {
	Params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"params"`
	Connection *struct {
		ID     string         `json:"id"`
		Params map[string]any `json:"params"`
	} `json:"connection"`
	CorrelationID string `json:"correlation_id"`
}

// Param returns a connection param as a string, "" when absent.
func (r *Request) Param(name string) string {
	if r.Connection == nil {
		return ""
	}
	s, _ := r.Connection.Params[name].(string)
	return s
}

// Content is one MCP content block (text only here).
type Content struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Result is an MCP CallToolResult.
type Result struct {
	Content           []Content `json:"content"`
	StructuredContent any       `json:"structuredContent,omitempty"`
	IsError           bool      `json:"isError,omitempty"`
}

// Text is a successful result holding text.
func Text(s string) Result { return Result{Content: []Content{{Type: "text", Text: s}}} }

// Structured is a successful result holding v as structuredContent and its JSON as text.
func Structured(v any) Result {
	b, _ := json.Marshal(v)
	return Result{Content: []Content{{Type: "text", Text: string(b)}}, StructuredContent: v}
}

// Errorf is a tool error result.
func Errorf(format string, args ...any) Result {
	return Result{Content: []Content{{Type: "text", Text: fmt.Sprintf(format, args...)}}, IsError: true}
}

var (
	manifest string
	tools    string
	handle   func(*Request) Result
)

// Serve registers the plugin: its Plugboard manifest (JSON), its tools (the JSON array of MCP
// tools) and the handler of calls. Call it from an init function.
func Serve(manifestJSON, toolsJSON string, h func(*Request) Result) {
	manifest, tools, handle = manifestJSON, toolsJSON, h
}

//go:wasmexport plugboard_describe
func exportManifest() int32 {
	extism.OutputString(manifest)
	return 0
}

//go:wasmexport describe
func exportDescribe() int32 {
	extism.OutputString(`{"tools":` + tools + `}`)
	return 0
}

//go:wasmexport call
func exportCall() int32 {
	var req Request
	res := Result{}
	if err := json.Unmarshal(extism.Input(), &req); err != nil {
		res = Errorf("the call request does not decode: %v", err)
	} else {
		res = handle(&req)
	}
	if res.Content == nil {
		res.Content = []Content{}
	}
	b, err := json.Marshal(res)
	if err != nil {
		extism.SetErrorString(err.Error())
		return 1
	}
	extism.Output(b)
	return 0
}

//go:wasmimport extism:host/user plugboard_http
func importHTTP(uint64) uint64

// HTTPRequest is a plugboard_http request.
type HTTPRequest struct {
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      string            `json:"body,omitempty"`
	TimeoutMS int64             `json:"timeout_ms,omitempty"`
}

// HTTPResponse is a plugboard_http reply.
type HTTPResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// HTTP sends a request through the host. A refusal or network failure is an error naming the
// host's error code (host_not_allowed, private_address, timeout, ...).
func HTTP(r HTTPRequest) (*HTTPResponse, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	req := extism.AllocateBytes(b) // the host frees the request block
	off := importHTTP(req.Offset())
	if off == 0 {
		return nil, fmt.Errorf("plugboard_http returned no reply")
	}
	mem := extism.FindMemory(off)
	out := mem.ReadBytes()
	mem.Free()
	var resp HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("plugboard_http reply: %w", err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("%s: %s", resp.Error.Code, resp.Error.Message)
	}
	return &resp, nil
}
