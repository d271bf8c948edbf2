package pdktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/pdk"
)

// Options configures a [Harness]. The zero value is a call without a connection.
type Options struct {
	// Connection is the connection every call carries (its id and non-secret params); nil means
	// calls have none. Params it lacks get the defaults of the manifest's connection_params, as
	// when the server creates a connection; the params expand the manifest's "{param}" hosts.
	Connection *abi.Connection
	// Credential is the connection's secret side. The zero value is auth type none. Its type
	// must be one the manifest accepts.
	Credential Credential
	// AllowedOrigins, when non-nil, are the connection's own hosts (recorded when it was
	// created): a request must match them as well as the manifest's hosts. Nil means the
	// connection was created with the manifest's expanded hosts, the usual case.
	AllowedOrigins []string
	// ApprovedReveal lists the credential fields an operator approved for reveal; the manifest
	// must list them in capabilities.reveal as well. Nil approves none.
	ApprovedReveal []string
	// Timeout sets each call's deadline from its start. Zero computes it as the host does: the
	// smallest of the action's timeout_ms, the manifest's limits.timeout_ms and 60 s, or 30 s
	// when none is given.
	Timeout time.Duration
	// MaxRequests bounds the outbound requests of one call (too_many_requests); zero means 100.
	MaxRequests int
	// MaxResponseBytes caps an upstream response body (too_large); zero means 10 MiB.
	MaxResponseBytes int64
	// Transport carries the fake plugboard_http's requests; nil means a private
	// http.Transport, closed when the test ends.
	Transport http.RoundTripper
}

// Credential is the fake connection's secrets, injected by the fake plugboard_http as the
// manifest's auth settings say and used by the fake plugboard_credential.
type Credential struct {
	// Type is abi.AuthNone, AuthAPIKey, AuthBasic or AuthOAuth2. Empty means: api_key when
	// APIKey is set, basic when Username is, oauth2 when AccessToken is, none otherwise.
	Type string
	// APIKey is the api_key secret.
	APIKey string
	// Username and Password are the basic auth secrets.
	Username, Password string
	// AccessToken is the oauth2 access token, sent as "Bearer <token>".
	AccessToken string
	// Secrets are extra secret fields ("signing_secret"), for hmac_sha256 and reveal.
	Secrets map[string]string
}

func (c Credential) authType() string {
	switch {
	case c.Type != "":
		return c.Type
	case c.APIKey != "":
		return abi.AuthAPIKey
	case c.Username != "":
		return abi.AuthBasic
	case c.AccessToken != "":
		return abi.AuthOAuth2
	}
	return abi.AuthNone
}

// field returns the secret field name of the credential, as plugboard_credential names them.
func (c Credential) field(name string) (string, bool) {
	switch name {
	case "api_key":
		return c.APIKey, c.APIKey != ""
	case "username":
		return c.Username, c.Username != ""
	case "password":
		return c.Password, c.Password != ""
	case "access_token":
		return c.AccessToken, c.AccessToken != ""
	}
	v, ok := c.Secrets[name]
	return v, ok
}

// Harness runs the connector registered in the test binary (by the init functions of the
// package under test) against a fake host. It is safe for concurrent use.
type Harness struct {
	t        testing.TB
	opts     Options
	manifest abi.Manifest
	origins  []string // manifest hosts expanded with the connection's params
	client   *http.Client
	schemas  map[string]*check.Schema

	mu       sync.Mutex
	calls    int
	requests []abi.HTTPRequest
	logs     []string
	kv       map[string]kvEntry
	kvBytes  int
	timers   []Timer
	timerSeq int
	slept    time.Duration
}

// Timer is a pending timer set through the fake plugboard_timer.
type Timer struct {
	ID      string
	Name    string
	Delay   time.Duration
	Payload json.RawMessage
}

type kvEntry struct {
	value   json.RawMessage
	expires time.Time
}

// New returns a harness for the registered connector. It fails the test at once when the
// connector's registrations or manifest are invalid, or when opts do not fit the manifest.
func New(t testing.TB, opts Options) *Harness {
	t.Helper()
	h := &Harness{t: t, opts: opts, kv: map[string]kvEntry{}, schemas: map[string]*check.Schema{}}
	h.manifest = h.describe()
	if opts.MaxRequests == 0 {
		h.opts.MaxRequests = 100
	}
	if opts.MaxResponseBytes == 0 {
		h.opts.MaxResponseBytes = 10 << 20
	}
	typ := opts.Credential.authType()
	if !h.manifest.HasAuthType(typ) {
		t.Fatalf("pdktest: credential type %q is not one of the manifest's auth.types %v", typ, h.manifest.Auth.Types)
	}
	if typ != abi.AuthNone && opts.Connection == nil {
		t.Fatalf("pdktest: a %s credential needs Options.Connection", typ)
	}
	var params map[string]any
	if opts.Connection != nil {
		params = withDefaults(h.manifest.ConnectionParams, opts.Connection.Params)
		h.opts.Connection = &abi.Connection{ID: opts.Connection.ID, Params: params}
	}
	origins, err := abi.ExpandHosts(h.manifest.Hosts, params)
	if err != nil {
		t.Fatalf("pdktest: expanding the manifest's hosts with the connection's params: %v", err)
	}
	h.origins = origins
	transport := opts.Transport
	if transport == nil {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		transport = tr
	}
	h.client = &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return h
}

// withDefaults returns a copy of params with absent top-level params set to the defaults of
// the connection_params schema.
func withDefaults(schema json.RawMessage, params map[string]any) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		out[k] = v
	}
	var s struct {
		Properties map[string]struct {
			Default any `json:"default"`
		} `json:"properties"`
	}
	if json.Unmarshal(schema, &s) == nil {
		for k, p := range s.Properties {
			if _, ok := out[k]; !ok && p.Default != nil {
				out[k] = p.Default
			}
		}
	}
	return out
}

// describe runs plugboard_describe as the host does at upload (every import denied) and parses
// the manifest strictly, with every rule of ABI.md section 3.
func (h *Harness) describe() abi.Manifest {
	h.t.Helper()
	out, err := pdk.Dispatch(nil, abi.ExportDescribe, nil)
	if err != nil {
		h.t.Fatalf("pdktest: plugboard_describe failed: %v", err)
	}
	m, err := check.ParseManifest(out)
	if err != nil {
		h.t.Fatalf("pdktest: plugboard_describe returned an invalid manifest: %v\n%s", err, out)
	}
	again, _ := pdk.Dispatch(nil, abi.ExportDescribe, nil)
	if string(again) != string(out) {
		h.t.Fatalf("pdktest: plugboard_describe is not deterministic:\n%s\n%s", out, again)
	}
	return *m
}

// Describe returns the connector's manifest, parsed and validated as the host does at upload.
func (h *Harness) Describe() abi.Manifest { return h.manifest }

// Origins returns the origins the connector may reach with this harness's connection: the
// manifest's hosts with "{param}" entries expanded.
func (h *Harness) Origins() []string { return append([]string(nil), h.origins...) }

// Invoke calls the action with input (any value that encodes to a JSON object, a
// json.RawMessage, or nil for {}), as the host would: it validates input against the action's
// input_schema first (a failure is the invalid_input error the API would answer, with the
// schema errors in Details), then calls plugboard_invoke and checks the result document.
//
// It fails the test when the action does not exist, when the result document breaks the ABI,
// or when the output does not match the action's output_schema. Otherwise it returns the
// output object or the guest's error.
func (h *Harness) Invoke(action string, input any) (json.RawMessage, *abi.Error) {
	h.t.Helper()
	a, ok := h.manifest.Action(action)
	if !ok {
		h.t.Fatalf("pdktest: the manifest has no action %q", action)
	}
	in := h.encode("input", input)
	if e := h.validate("input", a.InputSchema, in); e != nil {
		return nil, e
	}
	req := abi.InvokeRequest{Action: action, Input: in, Common: h.common(a.TimeoutMS)}
	out := h.run(abi.ExportInvoke, req)
	var res abi.InvokeResult
	if err := abi.DecodeStrict(out, &res); err != nil {
		h.t.Fatalf("pdktest: %s: the result is not an InvokeResult: %v\n%s", action, err, out)
	}
	switch {
	case res.Error != nil && res.Output != nil:
		h.t.Fatalf("pdktest: %s: the result has both output and error: %s", action, out)
	case res.Error != nil:
		h.checkError(action, res.Error)
		return nil, res.Error
	case len(res.Output) == 0 || res.Output[0] != '{':
		h.t.Fatalf("pdktest: %s: the output is not a JSON object: %s", action, out)
	}
	if len(a.OutputSchema) > 0 {
		if e := h.validate("output", a.OutputSchema, res.Output); e != nil {
			h.t.Errorf("pdktest: %s: the output does not match the output_schema: %s\n%s", action, e.Details, res.Output)
		}
	}
	return res.Output, nil
}

// InvokeInto is [Harness.Invoke] decoding the output into out.
func (h *Harness) InvokeInto(action string, input, out any) *abi.Error {
	h.t.Helper()
	raw, e := h.Invoke(action, input)
	if e != nil {
		return e
	}
	if err := json.Unmarshal(raw, out); err != nil {
		h.t.Fatalf("pdktest: %s: decoding the output into %T: %v", action, out, err)
	}
	return nil
}

// Poll calls plugboard_poll for the trigger with params and cursor (nil for the first poll).
func (h *Harness) Poll(trigger string, params any, cursor *string) (abi.PollResult, *abi.Error) {
	h.t.Helper()
	tr := h.trigger(trigger, abi.TriggerPoll)
	p := h.encode("params", params)
	if e := h.validate("params", tr.ParamsSchema, p); e != nil {
		return abi.PollResult{}, e
	}
	out := h.run(abi.ExportPoll, abi.PollRequest{Trigger: trigger, Params: p, Cursor: cursor, Common: h.common(0)})
	var res abi.PollResult
	if err := abi.DecodeStrict(out, &res); err != nil {
		h.t.Fatalf("pdktest: %s: the result is not a PollResult: %v\n%s", trigger, err, out)
	}
	if res.Error != nil {
		h.checkError(trigger, res.Error)
		return abi.PollResult{}, res.Error
	}
	return res, nil
}

// Webhook calls plugboard_webhook with req; the harness fills the common fields (connection,
// correlation ID, deadline).
func (h *Harness) Webhook(req abi.WebhookRequest) (abi.WebhookResult, *abi.Error) {
	h.t.Helper()
	tr := h.trigger(req.Trigger, abi.TriggerWebhook)
	if len(req.Params) == 0 {
		req.Params = json.RawMessage("{}")
	}
	if e := h.validate("params", tr.ParamsSchema, req.Params); e != nil {
		return abi.WebhookResult{}, e
	}
	req.Common = h.common(0)
	out := h.run(abi.ExportWebhook, req)
	var res abi.WebhookResult
	if err := abi.DecodeStrict(out, &res); err != nil {
		h.t.Fatalf("pdktest: %s: the result is not a WebhookResult: %v\n%s", req.Trigger, err, out)
	}
	if res.Error != nil {
		h.checkError(req.Trigger, res.Error)
		return abi.WebhookResult{}, res.Error
	}
	return res, nil
}

// FireTimer removes the pending timer id and delivers its event to plugboard_on_timer, as the
// host does when the timer is due. It fails the test when no such timer is pending.
func (h *Harness) FireTimer(id string) *abi.Error {
	h.t.Helper()
	h.mu.Lock()
	var found *Timer
	for i, tm := range h.timers {
		if tm.ID == id {
			found = &tm
			h.timers = append(h.timers[:i], h.timers[i+1:]...)
			break
		}
	}
	h.mu.Unlock()
	if found == nil {
		h.t.Fatalf("pdktest: no pending timer %q", id)
	}
	out := h.run(abi.ExportOnTimer, abi.TimerEvent{Name: found.Name, Payload: found.Payload, Common: h.common(0)})
	var res abi.TimerResult
	if err := abi.DecodeStrict(out, &res); err != nil {
		h.t.Fatalf("pdktest: timer %s: the result is not a TimerResult: %v\n%s", found.Name, err, out)
	}
	if res.Error != nil {
		h.checkError("timer "+found.Name, res.Error)
	}
	return res.Error
}

// Timers returns the pending timers, in the order they were set.
func (h *Harness) Timers() []Timer {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Timer(nil), h.timers...)
}

// KV returns a snapshot of the fake plugboard_kv store (expired keys excluded).
func (h *Harness) KV() map[string]json.RawMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]json.RawMessage{}
	now := time.Now()
	for k, e := range h.kv {
		if e.expires.IsZero() || now.Before(e.expires) {
			out[k] = e.value
		}
	}
	return out
}

// Requests returns the plugboard_http requests the connector made, as it sent them (before
// the host injected credentials), in order, across all calls.
func (h *Harness) Requests() []abi.HTTPRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]abi.HTTPRequest(nil), h.requests...)
}

// Logs returns the lines the connector logged, as "level: message".
func (h *Harness) Logs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.logs...)
}

// Slept returns the total time the connector slept with the timer import's sleep. The fake
// does not block: it only checks the deadline and adds up the time.
func (h *Harness) Slept() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.slept
}

func (h *Harness) trigger(name, kind string) abi.Trigger {
	h.t.Helper()
	for _, tr := range h.manifest.Triggers {
		if tr.Name == name && tr.Kind == kind {
			return tr
		}
	}
	h.t.Fatalf("pdktest: the manifest has no %s trigger %q", kind, name)
	return abi.Trigger{}
}

// encode turns a test's value into a JSON object document.
func (h *Harness) encode(what string, v any) json.RawMessage {
	h.t.Helper()
	var raw []byte
	switch x := v.(type) {
	case nil:
		raw = []byte("{}")
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	case string:
		raw = []byte(x)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			h.t.Fatalf("pdktest: encoding the %s: %v", what, err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		h.t.Fatalf("pdktest: the %s is not JSON: %s", what, raw)
	}
	return raw
}

// validate checks doc against schema as the server does, answering the server's invalid_input.
func (h *Harness) validate(what string, schema, doc json.RawMessage) *abi.Error {
	h.t.Helper()
	h.mu.Lock()
	s, ok := h.schemas[string(schema)]
	h.mu.Unlock()
	if !ok {
		var err error
		if s, err = check.CompileSchema(schema); err != nil {
			h.t.Fatalf("pdktest: compiling the %s schema: %v", what, err)
		}
		h.mu.Lock()
		h.schemas[string(schema)] = s
		h.mu.Unlock()
	}
	errs := s.Validate(doc)
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = what + e.Path + ": " + e.Message
	}
	return pdk.WithDetails(&abi.Error{Code: abi.CodeInvalidInput, Message: strings.Join(msgs, "; ")},
		map[string]any{"errors": errs})
}

// checkError fails the test when a guest error breaks ABI.md section 4.
func (h *Harness) checkError(what string, e *abi.Error) {
	h.t.Helper()
	if e.Code == "" || e.Message == "" {
		h.t.Errorf("pdktest: %s: an error document needs code and message: %+v", what, e)
	}
	if pdk.IsHostCode(e.Code) {
		h.t.Errorf("pdktest: %s: the guest reported the host code %q; map it to a guest code (pdk.FromHostError)", what, e.Code)
	}
	if len(e.Details) > 0 && e.Details[0] != '{' {
		h.t.Errorf("pdktest: %s: error details must be a JSON object: %s", what, e.Details)
	}
}

// common builds the fields every request carries, with the deadline the host would compute.
func (h *Harness) common(actionTimeoutMS int64) abi.Common {
	h.mu.Lock()
	h.calls++
	n := h.calls
	h.mu.Unlock()
	timeout := h.opts.Timeout
	if timeout == 0 {
		const serverMax = 60 * time.Second
		timeout = serverMax
		given := false
		if actionTimeoutMS > 0 {
			timeout, given = min(timeout, time.Duration(actionTimeoutMS)*time.Millisecond), true
		}
		if l := h.manifest.Limits; l != nil && l.TimeoutMS > 0 {
			timeout, given = min(timeout, time.Duration(l.TimeoutMS)*time.Millisecond), true
		}
		if !given {
			timeout = 30 * time.Second
		}
	}
	return abi.Common{
		Connection:     h.opts.Connection,
		CorrelationID:  fmt.Sprintf("c_pdktest_%d", n),
		DeadlineUnixMS: time.Now().Add(timeout).UnixMilli(),
	}
}

// run encodes req and dispatches it to export with a fresh per-call host.
func (h *Harness) run(export string, req any) []byte {
	h.t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		h.t.Fatalf("pdktest: encoding the %s request: %v", export, err)
	}
	var common struct {
		abi.Common
	}
	_ = json.Unmarshal(in, &common)
	host := &callHost{h: h, deadline: time.UnixMilli(common.DeadlineUnixMS)}
	out, err := pdk.Dispatch(host, export, in)
	if err != nil {
		h.t.Fatalf("pdktest: %s failed (the Wasm export would return non-zero): %v", export, err)
	}
	return out
}

// callHost is the fake host of one call: it knows the call's deadline and request budget.
type callHost struct {
	h        *Harness
	deadline time.Time
	requests int
}

// Call implements pdk.Host.
func (c *callHost) Call(function string, request []byte) []byte {
	var reply any
	switch function {
	case abi.ImportHTTP:
		reply = c.http(request)
	case abi.ImportCredential:
		reply = c.credential(request)
	case abi.ImportTimer:
		reply = c.timer(request)
	case abi.ImportKV:
		reply = c.kv(request)
	default:
		reply = abi.ErrorReply{Error: &abi.Error{Code: abi.CodeDenied, Message: "no host function " + function}}
	}
	b, err := json.Marshal(reply)
	if err != nil {
		b, _ = json.Marshal(abi.ErrorReply{Error: &abi.Error{Code: abi.CodeInvalidRequest, Message: err.Error()}})
	}
	return b
}

// Log implements pdk.Host.
func (c *callHost) Log(level pdk.LogLevel, message string) {
	line := level.String() + ": " + message
	c.h.mu.Lock()
	c.h.logs = append(c.h.logs, line)
	c.h.mu.Unlock()
	c.h.t.Log("plugin " + line)
}

func hostErr(code, format string, args ...any) *abi.Error {
	return &abi.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
