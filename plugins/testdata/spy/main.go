// Command spy is a test plugin that reports what the guest sees of the host: raw HTTP answers
// and errors, credential answers, kv and timer answers, and the request documents themselves,
// so host and server tests can assert on them (for example that no secret reaches the guest).
// Host errors are returned inside the output, never as the call's error, so tests see the
// host's own codes.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o spy.wasm ./plugins/testdata/spy
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

func main() {}

func init() {
	pdk.Connector(pdk.Info{
		Name:    "spy",
		Version: "1.0.0",
		Title:   "Spy",
		Auth: abi.Auth{
			Types:  []string{abi.AuthAPIKey, abi.AuthBasic, abi.AuthOAuth2},
			APIKey: &abi.APIKeyAuth{In: "header", Name: "X-Api-Key"},
			// OAuth tests override both endpoints per connection with a local OAuth server's.
			OAuth2: &abi.OAuth2Auth{AuthorizationURL: "https://auth.spy.invalid/authorize",
				TokenURL: "https://auth.spy.invalid/token", Scopes: []string{"spy.read"}},
		},
		ConnectionParams: `{"type":"object","properties":{"base_url":{"type":"string","format":"uri"},"echo_url":{"type":"string","format":"uri","description":"a second origin, reached by redirects in tests"}},"required":["base_url"]}`,
		Hosts:            []string{"{base_url}", "{echo_url}"},
		Capabilities:     &abi.Capabilities{Reveal: []string{"api_key"}},
	})
	pdk.Action("fetch", fetch, pdk.Description("Calls plugboard_http and returns the answer or the host's error as the guest saw it."))
	pdk.Action("reveal", reveal, pdk.Description("Calls plugboard_credential reveal."))
	pdk.Action("hmac", hmacAction, pdk.Description("Calls plugboard_credential hmac_sha256."))
	pdk.Action("count", count, pdk.Description("Increments an instance-global counter and returns it with the connection id: shows which instance served the call."))
	pdk.Action("whoami", whoami, pdk.Description("Returns the raw InvokeRequest the guest received."))
	pdk.Action("kv", kv, pdk.Description("Calls plugboard_kv."))
	pdk.Action("timer", timer, pdk.Description("Calls plugboard_timer set or cancel."))
	pdk.Action("sleep", sleep, pdk.Description("Calls plugboard_timer sleep."))
	pdk.PollTrigger("me", pollMe, pdk.Description("GETs {base_url}/me at every poll and emits one event per successful poll: shows when polls run, and with which credentials."),
		pdk.Interval(time.Second, time.Second))
	pdk.OnTimer(func(ctx *pdk.Context, ev abi.TimerEvent) error {
		// A payload {"ping": true} reports every firing upstream, GET {base_url}/timer-fired?name=
		// NAME, so a test counts firings exactly, whichever node fires.
		var p struct {
			Ping bool `json:"ping"`
		}
		if json.Unmarshal(ev.Payload, &p) == nil && p.Ping {
			var ack json.RawMessage
			if _, err := ctx.HTTP().GetJSON(ctx.Param("base_url")+"/timer-fired?name="+url.QueryEscape(ev.Name), &ack); err != nil {
				return err
			}
		}
		// Record the event so a test can see the timer fired, with what.
		return ctx.KV().Set("spy:last_timer", json.RawMessage(ctx.Request()), 0)
	})
}

// hostError is a host import's error as the guest received it.
type hostError struct {
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Retryable bool            `json:"retryable,omitempty"`
	Details   json.RawMessage `json:"details,omitempty"`
}

// asHostError returns the *abi.Error in err, or an internal one for anything else.
func asHostError(err error) *hostError {
	if err == nil {
		return nil
	}
	var ae *abi.Error
	if !errors.As(err, &ae) {
		return &hostError{Code: "guest_error", Message: err.Error()}
	}
	return &hostError{Code: ae.Code, Message: ae.Message, Retryable: ae.Retryable, Details: ae.Details}
}

// FetchInput is the input of fetch.
type FetchInput struct {
	URL       string            `json:"url" jsonschema:"Absolute URL"`
	Method    string            `json:"method,omitempty" jsonschema:"HTTP method, GET when absent"`
	Auth      *bool             `json:"auth,omitempty" jsonschema:"false sends the request without credentials"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      string            `json:"body,omitempty"`
	TimeoutMS int64             `json:"timeout_ms,omitempty"`
}

// FetchOutput is the answer of plugboard_http as the guest saw it.
type FetchOutput struct {
	Status     int               `json:"status,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       string            `json:"body,omitempty"`
	BodyBase64 string            `json:"body_base64,omitempty"`
	Error      *hostError        `json:"error,omitempty"`
}

func fetch(ctx *pdk.Context, in FetchInput) (FetchOutput, error) {
	req := pdk.Request{Method: in.Method, URL: in.URL, Headers: in.Headers, Timeout: time.Duration(in.TimeoutMS) * time.Millisecond}
	if in.Body != "" {
		req.Body = []byte(in.Body)
	}
	if in.Auth != nil && !*in.Auth {
		req.NoAuth = true
	}
	resp, err := ctx.HTTP().Do(req)
	if err != nil {
		return FetchOutput{Error: asHostError(err)}, nil
	}
	out := FetchOutput{Status: resp.Status, Headers: resp.Headers}
	if utf8.Valid(resp.Body) { // what the host sent as body; anything else came as body_base64
		out.Body = string(resp.Body)
	} else {
		out.BodyBase64 = base64.StdEncoding.EncodeToString(resp.Body)
	}
	return out, nil
}

// FieldInput names a credential field.
type FieldInput struct {
	Field string `json:"field"`
}

// RevealOutput is what plugboard_credential reveal answered.
type RevealOutput struct {
	Value string     `json:"value,omitempty"`
	Error *hostError `json:"error,omitempty"`
}

func reveal(ctx *pdk.Context, in FieldInput) (RevealOutput, error) {
	v, err := ctx.Credential().Reveal(in.Field)
	return RevealOutput{Value: v, Error: asHostError(err)}, nil
}

// HMACInput is the input of hmac.
type HMACInput struct {
	Field string `json:"field"`
	Data  string `json:"data" jsonschema:"Text to sign"`
}

// HMACOutput is what plugboard_credential hmac_sha256 answered.
type HMACOutput struct {
	MACBase64 string     `json:"mac_base64,omitempty"`
	Error     *hostError `json:"error,omitempty"`
}

func hmacAction(ctx *pdk.Context, in HMACInput) (HMACOutput, error) {
	mac, err := ctx.Credential().HMACSHA256(in.Field, []byte(in.Data))
	out := HMACOutput{Error: asHostError(err)}
	if err == nil {
		out.MACBase64 = base64.StdEncoding.EncodeToString(mac)
	}
	return out, nil
}

// WhoamiOutput carries the raw request.
type WhoamiOutput struct {
	Request json.RawMessage `json:"request" jsonschema:"The InvokeRequest exactly as received"`
}

// calls counts the calls this instance served; it lives as long as the instance.
var calls int

// CountOutput is the answer of count.
type CountOutput struct {
	Calls      int    `json:"calls"`
	Connection string `json:"connection"`
}

func count(ctx *pdk.Context, _ struct{}) (CountOutput, error) {
	calls++
	out := CountOutput{Calls: calls}
	if c := ctx.Connection(); c != nil {
		out.Connection = c.ID
	}
	return out, nil
}

func whoami(ctx *pdk.Context, _ struct{}) (WhoamiOutput, error) {
	return WhoamiOutput{Request: ctx.Request()}, nil
}

// KVInput is one plugboard_kv operation.
type KVInput struct {
	Op    string          `json:"op" enum:"get,set,delete"`
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
	TTLS  int64           `json:"ttl_s,omitempty"`
}

// KVOutput is what plugboard_kv answered.
type KVOutput struct {
	Found bool            `json:"found"`
	Value json.RawMessage `json:"value,omitempty"`
	Error *hostError      `json:"error,omitempty"`
}

func kv(ctx *pdk.Context, in KVInput) (KVOutput, error) {
	var out KVOutput
	var err error
	switch in.Op {
	case abi.KVGet:
		var v json.RawMessage
		out.Found, err = ctx.KV().Get(in.Key, &v)
		out.Value = v
	case abi.KVSet:
		value := in.Value
		if len(value) == 0 {
			value = json.RawMessage("null")
		}
		err = ctx.KV().Set(in.Key, value, time.Duration(in.TTLS)*time.Second)
	case abi.KVDelete:
		err = ctx.KV().Delete(in.Key)
	}
	out.Error = asHostError(err)
	return out, nil
}

// TimerInput is one plugboard_timer set or cancel.
type TimerInput struct {
	Op      string          `json:"op" enum:"set,cancel"`
	Name    string          `json:"name,omitempty"`
	DelayMS int64           `json:"delay_ms,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	ID      string          `json:"id,omitempty"`
}

// TimerOutput is what plugboard_timer answered.
type TimerOutput struct {
	ID    string     `json:"id,omitempty"`
	Error *hostError `json:"error,omitempty"`
}

func timer(ctx *pdk.Context, in TimerInput) (TimerOutput, error) {
	var out TimerOutput
	var err error
	if in.Op == abi.TimerSet {
		var payload any
		if len(in.Payload) > 0 {
			payload = in.Payload
		}
		out.ID, err = ctx.Timer().Set(in.Name, time.Duration(in.DelayMS)*time.Millisecond, payload)
	} else {
		err = ctx.Timer().Cancel(in.ID)
	}
	out.Error = asHostError(err)
	return out, nil
}

// SleepInput is the input of sleep.
type SleepInput struct {
	MS int64 `json:"ms" minimum:"0"`
}

// SleepOutput reports the sleep.
type SleepOutput struct {
	SleptMS int64      `json:"slept_ms"`
	Error   *hostError `json:"error,omitempty"`
}

func sleep(ctx *pdk.Context, in SleepInput) (SleepOutput, error) {
	start := time.Now()
	err := ctx.Timer().Sleep(time.Duration(in.MS) * time.Millisecond)
	return SleepOutput{SleptMS: time.Since(start).Milliseconds(), Error: asHostError(err)}, nil
}

// MeParams are the me trigger's params (none).
type MeParams struct{}

// pollMe GETs {base_url}/me; the baseline poll records nothing, later polls emit one event
// numbered by the cursor.
func pollMe(ctx *pdk.Context, _ MeParams, cursor *string) (pdk.PollResult, error) {
	var me json.RawMessage
	if _, err := ctx.HTTP().GetJSON(ctx.Param("base_url")+"/me", &me); err != nil {
		return pdk.PollResult{}, err
	}
	if cursor == nil {
		return pdk.PollResult{Cursor: "0"}, nil
	}
	n := len(*cursor) // the cursor grows by one character a poll: a unique, ordered event id
	return pdk.PollResult{Cursor: *cursor + "0", Events: []pdk.Event{{ID: fmt.Sprint(n), Data: me}}}, nil
}
