package pdk

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// Host is how the pdk reaches the Plugboard host. In a plugin built for wasip1 it is the real
// host: Call goes to the extism:host/user imports of ABI.md section 5 and Log to Extism's log
// functions. Native code supplies its own, as the pdktest harness does, and passes it to
// [Dispatch].
type Host interface {
	// Call sends request, a JSON document, to the host import named function (one of
	// abi.HostImports) and returns the JSON reply. A refusal is a reply of the form
	// {"error": {...}}; Call itself never fails.
	Call(function string, request []byte) []byte
	// Log writes one line to the host log.
	Log(level LogLevel, message string)
}

// LogLevel is the severity of a log line.
type LogLevel int

// Log levels, in increasing severity.
const (
	LogDebug LogLevel = iota
	LogInfo
	LogWarn
	LogError
)

// String returns the level's lower-case name.
func (l LogLevel) String() string {
	switch l {
	case LogDebug:
		return "debug"
	case LogInfo:
		return "info"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Context is what a handler gets for one call: the connection, the correlation ID, the
// deadline, a logger, and the host capabilities (HTTP, credentials, timers, kv). It is valid only
// during the call that created it.
type Context struct {
	host     Host
	common   abi.Common
	deadline time.Time
	request  json.RawMessage
}

func newContext(host Host, common abi.Common, request []byte) *Context {
	c := &Context{host: host, common: common, request: request}
	if common.DeadlineUnixMS > 0 {
		c.deadline = time.UnixMilli(common.DeadlineUnixMS)
	}
	return c
}

// Connection returns the non-secret view of the connection the call runs with (its id and
// params), or nil when the call has no connection (a connector with auth type none may be
// called without one).
func (c *Context) Connection() *abi.Connection { return c.common.Connection }

// Param returns the string value of the connection param name, or "" when there is no
// connection, no such param, or its value is not a string.
func (c *Context) Param(name string) string {
	if c.common.Connection == nil {
		return ""
	}
	s, _ := c.common.Connection.Params[name].(string)
	return s
}

// CorrelationID returns the call's correlation ID, to quote in logs or upstream requests.
func (c *Context) CorrelationID() string { return c.common.CorrelationID }

// Deadline returns the time by which the call must return; the host stops the plugin after it.
// It is the zero time when the host gave none.
func (c *Context) Deadline() time.Time { return c.deadline }

// Request returns the request document of the call exactly as the host sent it (for example
// the whole InvokeRequest). Handlers seldom need it; it is there for debugging and tests.
func (c *Context) Request() json.RawMessage { return c.request }

// Log writes msg to the host log, which tags it with the connector, the connection and the
// correlation ID. Never log secrets or whole upstream bodies.
func (c *Context) Log(level LogLevel, msg string) { c.host.Log(level, msg) }

// Logf formats its arguments as fmt.Sprintf does and logs the result.
func (c *Context) Logf(level LogLevel, format string, args ...any) {
	c.host.Log(level, fmt.Sprintf(format, args...))
}

// HTTP returns the client for outbound HTTP through the plugboard_http import.
func (c *Context) HTTP() *HTTPClient { return &HTTPClient{ctx: c} }

// Credential returns the client for the plugboard_credential import.
func (c *Context) Credential() *Credentials { return &Credentials{ctx: c} }

// Timer returns the client for the plugboard_timer import.
func (c *Context) Timer() *Timers { return &Timers{ctx: c} }

// KV returns the client for the plugboard_kv import.
func (c *Context) KV() *KVStore { return &KVStore{ctx: c} }

// call sends req to a host import and decodes the reply into reply. It fails only when the
// request cannot be encoded or the reply is not JSON (a host bug); refusals are in the reply.
func (c *Context) call(function string, req, reply any) *abi.Error {
	b, err := json.Marshal(req)
	if err != nil {
		return errInternalf("%s: encoding the request: %v", function, err)
	}
	out := c.host.Call(function, b)
	if err := json.Unmarshal(out, reply); err != nil {
		return errInternalf("%s: malformed reply from the host: %v", function, err)
	}
	return nil
}

// denyHost answers every import with denied, as the host does during describe.
type denyHost struct{}

// Call answers denied.
func (denyHost) Call(function string, _ []byte) []byte {
	b, _ := json.Marshal(abi.ErrorReply{Error: &abi.Error{Code: abi.CodeDenied, Message: function + " is not available here"}})
	return b
}

// Log drops the line.
func (denyHost) Log(LogLevel, string) {}
