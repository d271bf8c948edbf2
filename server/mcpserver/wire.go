package mcpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// JSON-RPC 2.0 error codes the endpoint answers malformed requests with, and the session code
// MCP SDKs use for an unknown or expired session.
const (
	CodeParseError      = -32700
	CodeInvalidRequest  = -32600
	CodeMethodNotFound  = -32601
	CodeInvalidParams   = -32602
	CodeInternalError   = -32603
	CodeSessionNotFound = -32001
)

// DefaultMaxRequestBytes is the default of [Options.MaxRequestBytes].
const DefaultMaxRequestBytes = 4 << 20

// Protocol revisions whose wire rules the envelope check applies.
const (
	versionNoBatches = "2025-06-18" // JSON-RPC batches were removed in this revision
	versionNoHeader  = "2025-03-26" // what a request without MCP-Protocol-Version speaks
	versionStateless = "2026-07-28" // the stateless revision: server/discover, per-request _meta
)

// newParams returns, per method a server receives, a value its params decode into, and whether
// params are required. The envelope check decodes into it to report a wrongly typed field in
// JSON terms before the SDK (whose message names Go types) sees the request.
var newParams = map[string]struct {
	zero     func() any
	required bool
}{
	"initialize":                       {func() any { return new(mcp.InitializeParams) }, true},
	"ping":                             {func() any { return new(mcp.PingParams) }, false},
	"server/discover":                  {func() any { return new(mcp.DiscoverParams) }, false},
	"tools/list":                       {func() any { return new(mcp.ListToolsParams) }, false},
	"tools/call":                       {func() any { return new(mcp.CallToolParamsRaw) }, true},
	"prompts/list":                     {func() any { return new(mcp.ListPromptsParams) }, false},
	"prompts/get":                      {func() any { return new(mcp.GetPromptParams) }, true},
	"resources/list":                   {func() any { return new(mcp.ListResourcesParams) }, false},
	"resources/templates/list":         {func() any { return new(mcp.ListResourceTemplatesParams) }, false},
	"resources/read":                   {func() any { return new(mcp.ReadResourceParams) }, true},
	"resources/subscribe":              {func() any { return new(mcp.SubscribeParams) }, true},
	"resources/unsubscribe":            {func() any { return new(mcp.UnsubscribeParams) }, true},
	"subscriptions/listen":             {func() any { return new(mcp.SubscriptionsListenParams) }, true},
	"completion/complete":              {func() any { return new(mcp.CompleteParams) }, true},
	"logging/setLevel":                 {func() any { return new(mcp.SetLoggingLevelParams) }, true},
	"notifications/initialized":        {func() any { return new(mcp.InitializedParams) }, false},
	"notifications/cancelled":          {func() any { return new(mcp.CancelledParams) }, false},
	"notifications/progress":           {func() any { return new(mcp.ProgressNotificationParams) }, true},
	"notifications/roots/list_changed": {func() any { return new(mcp.RootsListChangedParams) }, false},
}

// wireError is a malformed request's answer: an HTTP status and a JSON-RPC error.
type wireError struct {
	status  int
	id      json.RawMessage // nil: unknown, answered as null
	code    int
	message string
}

func (e *wireError) Error() string { return e.message }

func invalid(id json.RawMessage, format string, args ...any) *wireError {
	return &wireError{status: http.StatusBadRequest, id: id, code: CodeInvalidRequest, message: fmt.Sprintf(format, args...)}
}

// writeRPCError writes a JSON-RPC error response, as the Streamable HTTP transport allows for
// input the server cannot accept.
func writeRPCError(w http.ResponseWriter, e *wireError) {
	id := e.id
	if id == nil {
		id = json.RawMessage("null")
	}
	body, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{e.code, e.message}})
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// checkPOST validates a POST's headers and body before the SDK reads it, puts the body back
// for the SDK and returns it, with its members when it is one message (not a batch). version
// is the request's protocol revision as far as it is known (the MCP-Protocol-Version header,
// else the session's negotiated one, else "").
func (h *Handler) checkPOST(r *http.Request, version string) ([]byte, map[string]json.RawMessage, *wireError) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		if ct == "" {
			ct = "none"
		}
		return nil, nil, &wireError{status: http.StatusUnsupportedMediaType, code: CodeInvalidRequest,
			message: "send the JSON-RPC message with Content-Type: application/json (this request had " + ct + ")"}
	}
	if !acceptsBoth(r.Header.Values("Accept")) {
		return nil, nil, &wireError{status: http.StatusNotAcceptable, code: CodeInvalidRequest,
			message: "send Accept: application/json, text/event-stream (the server may answer with either)"}
	}
	max := h.opts.MaxRequestBytes
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, nil, invalid(nil, "reading the request body failed: send it again")
	}
	if int64(len(body)) > max {
		return nil, nil, &wireError{status: http.StatusRequestEntityTooLarge, code: CodeInvalidRequest,
			message: fmt.Sprintf("the request body is over the %d-byte limit: send a smaller message", max)}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	msg, werr := checkBody(body, version)
	return body, msg, werr
}

// acceptsBoth reports whether an Accept header allows both JSON and an event stream.
func acceptsBoth(values []string) bool {
	var j, s bool
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			base, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				j = true
			case "text/event-stream", "text/*":
				s = true
			case "*/*":
				j, s = true, true
			}
		}
	}
	return j && s
}

// checkBody validates a POST body: one JSON-RPC 2.0 message, whose members it returns, or a
// batch where the protocol revision still has them.
func checkBody(body []byte, version string) (map[string]json.RawMessage, *wireError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, &wireError{status: http.StatusBadRequest, code: CodeParseError,
			message: "the request body is empty: send one JSON-RPC 2.0 message"}
	}
	if err := syntaxError(trimmed); err != "" {
		return nil, &wireError{status: http.StatusBadRequest, code: CodeParseError,
			message: "the request body is not valid JSON (" + err + "): send one JSON-RPC 2.0 message"}
	}
	switch trimmed[0] {
	case '{':
		return parseMessage(trimmed)
	case '[':
		var batch []json.RawMessage
		_ = json.Unmarshal(trimmed, &batch)
		if len(batch) == 0 {
			return nil, invalid(nil, "the batch is empty: send one JSON-RPC 2.0 message")
		}
		if version == "" {
			version = versionNoHeader
		}
		if version >= versionNoBatches {
			return nil, invalid(nil, "JSON-RPC batches are not part of MCP %s: send each message in its own POST", version)
		}
		for i, m := range batch {
			if err := checkMessage(m); err != nil {
				return nil, invalid(nil, "message %d of the batch: %s", i+1, err.message)
			}
		}
		return nil, nil
	default:
		return nil, invalid(nil, "the body is JSON %s, not a JSON-RPC 2.0 message: send an object with jsonrpc \"2.0\" and a method", jsonKind(trimmed))
	}
}

// syntaxError describes why b is not JSON, or is "". Numbers are kept as text, so one beyond
// float64's range (valid JSON, which a plugin may take as it is) is not an error.
func syntaxError(b []byte) string {
	if json.Valid(b) { // no allocation; the decoder below only explains what is wrong
		return ""
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := dec.Decode(&v)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	} else if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("trailing data")
		}
	}
	var se *json.SyntaxError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return fmt.Sprintf("%s at byte %d", strings.TrimPrefix(se.Error(), "json: "), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it ends early"
	default:
		return "it does not parse"
	}
}

// jsonKind names the JSON type of a valid JSON value.
func jsonKind(b []byte) string {
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// checkMessage validates one JSON-RPC 2.0 message (a valid JSON value): a request, a
// notification or a response to a server's request.
func checkMessage(raw json.RawMessage) *wireError {
	_, werr := parseMessage(raw)
	return werr
}

// parseMessage is [checkMessage], returning the message's members when it is valid.
func parseMessage(raw json.RawMessage) (map[string]json.RawMessage, *wireError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, invalid(nil, "a JSON-RPC 2.0 message is an object, not %s", jsonKind(raw))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid(nil, "the message does not parse as an object")
	}
	idRaw, hasID := m["id"]
	var id json.RawMessage
	if hasID {
		if !validID(idRaw) {
			return nil, invalid(nil, "id must be a string or an integer, not %s", describe(idRaw))
		}
		id = idRaw
	}
	if v, ok := m["jsonrpc"]; !ok || string(bytes.TrimSpace(v)) != `"2.0"` {
		if !ok {
			return nil, invalid(id, `the message has no "jsonrpc" member: set "jsonrpc": "2.0"`)
		}
		return nil, invalid(id, `"jsonrpc" must be the string "2.0", not %s`, describe(v))
	}
	methodRaw, hasMethod := m["method"]
	if !hasMethod {
		_, hasResult := m["result"]
		_, hasError := m["error"]
		switch {
		case !hasResult && !hasError:
			return nil, invalid(id, `the message has no "method": a request or notification needs one (a response needs "result" or "error")`)
		case hasResult && hasError:
			return nil, invalid(id, `a response carries "result" or "error", not both`)
		case !hasID:
			return nil, invalid(id, `a response needs the "id" of the request it answers`)
		}
		return m, nil
	}
	var method string
	if err := json.Unmarshal(methodRaw, &method); err != nil {
		return nil, invalid(id, `"method" must be a string, not %s`, describe(methodRaw))
	}
	if method == "" {
		return nil, invalid(id, `"method" is empty: name an MCP method such as "tools/list"`)
	}
	spec, known := newParams[method]
	if !known {
		if hasID {
			return nil, &wireError{status: http.StatusNotFound, id: id, code: CodeMethodNotFound,
				message: fmt.Sprintf("%q is not a method this MCP server serves", method)}
		}
		return m, nil // an unknown notification is the SDK's to ignore
	}
	params, hasParams := m["params"]
	if hasParams && string(bytes.TrimSpace(params)) == "null" {
		hasParams = false
	}
	badParams := func(format string, args ...any) *wireError {
		return &wireError{status: http.StatusBadRequest, id: id, code: CodeInvalidParams,
			message: method + ": " + fmt.Sprintf(format, args...)}
	}
	if !hasParams {
		if spec.required {
			return nil, badParams(`"params" is required`)
		}
		return m, nil
	}
	if p := bytes.TrimSpace(params); p[0] != '{' {
		return nil, badParams(`"params" must be an object, not %s`, describe(params))
	}
	if err := json.Unmarshal(params, spec.zero()); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, badParams("params.%s must be %s, not %s", te.Field, jsonType(te.Type), te.Value)
		}
		return nil, badParams(`"params" do not match the method's schema in the MCP specification`)
	}
	if method == "tools/call" {
		var p struct {
			Name      json.RawMessage `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		_ = json.Unmarshal(params, &p)
		var name string
		if json.Unmarshal(p.Name, &name) != nil || name == "" {
			return nil, badParams(`params.name must name the tool to call`)
		}
		if a := bytes.TrimSpace(p.Arguments); len(a) > 0 && string(a) != "null" && a[0] != '{' {
			return nil, badParams("params.arguments must be an object, not %s", describe(a))
		}
	}
	return m, nil
}

// validID reports whether an id is a string or an integer (MCP: never null).
func validID(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	if raw[0] == '"' {
		var s string
		return json.Unmarshal(raw, &s) == nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return false
	}
	_, err := n.Int64()
	return err == nil
}

// describe names a JSON value's type for an error message.
func describe(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	return jsonKind(raw)
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}

// guardWriter turns the SDK's plain-text error answers (a wrong session, a method other than
// GET, POST and DELETE, an unsupported protocol version) into JSON-RPC error responses, and
// keeps Go internals out of their messages. Everything else passes through.
type guardWriter struct {
	http.ResponseWriter
	sessionID string // sent as Mcp-Session-Id with a successful answer (to initialize)
	status    int    // the intercepted status; 0 while passing through
	passing   bool   // headers went out unchanged
	buf       bytes.Buffer
}

func (g *guardWriter) WriteHeader(status int) {
	if g.passing || g.status != 0 {
		return
	}
	if status >= 400 && strings.HasPrefix(g.Header().Get("Content-Type"), "text/plain") {
		g.status = status
		return
	}
	g.passing = true
	if g.sessionID != "" && status < 300 {
		g.Header().Set("Mcp-Session-Id", g.sessionID)
	}
	g.ResponseWriter.WriteHeader(status)
}

func (g *guardWriter) Write(b []byte) (int, error) {
	if !g.passing && g.status == 0 {
		g.WriteHeader(http.StatusOK)
	}
	if g.status != 0 {
		if g.buf.Len() < 4096 {
			g.buf.Write(b)
		}
		return len(b), nil
	}
	return g.ResponseWriter.Write(b)
}

// Flush implements http.Flusher for the SDK's event streams.
func (g *guardWriter) Flush() {
	if g.status != 0 {
		return
	}
	if !g.passing {
		g.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(g.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// finish writes the JSON-RPC answer of an intercepted error.
func (g *guardWriter) finish() {
	if g.status == 0 {
		return
	}
	msg := strings.TrimSpace(g.buf.String())
	e := &wireError{status: g.status, code: CodeInvalidRequest, message: msg}
	switch {
	case g.status == http.StatusNotFound:
		e.code, e.message = CodeSessionNotFound, "session not found: it ended or expired; start a new one with initialize"
	case g.status == http.StatusMethodNotAllowed:
		e.message = "HTTP method not allowed: POST JSON-RPC messages (GET opens a session's event stream; the stateless revision has none)"
	case g.status >= 500:
		e.code, e.message = CodeInternalError, "internal error: try again; the server log has the details"
	case !clean(msg):
		e.message = fmt.Sprintf("the request was refused (HTTP %d): check it against the MCP Streamable HTTP transport", g.status)
	}
	writeRPCError(g.ResponseWriter, e)
}

// clean reports whether an SDK message is fit to show a client: short, and naming no Go type,
// package or decoder.
func clean(msg string) bool {
	if msg == "" || len(msg) > 300 {
		return false
	}
	for _, bad := range []string{"jsonrpc2", "json:", "unmarshal", "wireDecode", "Go ", "Go value", "mcp.", "*", ".go", "interface {}"} {
		if strings.Contains(msg, bad) {
			return false
		}
	}
	return true
}
