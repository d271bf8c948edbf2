package pdktest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/pdk"
	"github.com/plugboard/plugboard/pdk/pdktest"
)

// The probe connector exercises every fake host import; its handlers report host errors in
// their output so the tests can see the raw codes.
func init() {
	pdk.Connector(pdk.Info{
		Name:    "probe",
		Version: "0.1.0",
		Auth: abi.Auth{
			Types:  []string{abi.AuthNone, abi.AuthAPIKey, abi.AuthBasic},
			APIKey: &abi.APIKeyAuth{In: "header", Name: "X-Api-Key", Prefix: "Key "},
		},
		ConnectionParams: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"base_url":  map[string]any{"type": "string", "format": "uri"},
				"other_url": map[string]any{"type": "string", "format": "uri"},
			},
		},
		Hosts:        []string{"{base_url}", "{other_url}"},
		Capabilities: &abi.Capabilities{Reveal: []string{"api_key"}},
		Limits:       &abi.Limits{TimeoutMS: 5000},
	})
	pdk.Action("fetch", fetch)
	pdk.Action("secrets", secrets)
	pdk.Action("state", state)
	pdk.Action("bad_output", func(ctx *pdk.Context, _ struct{}) (badOutput, error) { return badOutput{N: "seven"}, nil },
		pdk.OutputSchema(`{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`))
	pdk.Action("leaky", func(ctx *pdk.Context, _ struct{}) (struct{}, error) {
		return struct{}{}, &abi.Error{Code: abi.CodeHostNotAllowed, Message: "passed on raw"}
	})
	pdk.Action("pass_on", func(ctx *pdk.Context, in struct {
		URL string `json:"url"`
	}) (struct{}, error) {
		_, err := ctx.HTTP().GetJSON(in.URL, nil)
		return struct{}{}, err // the PDK's error of the host call, as it is
	})
	pdk.PollTrigger("tick", func(ctx *pdk.Context, p tickParams, cursor *string) (pdk.PollResult, error) {
		if cursor == nil {
			return pdk.PollResult{Cursor: "0"}, nil
		}
		return pdk.PollResult{Events: []pdk.Event{{ID: *cursor + "-" + p.Topic, Data: map[string]string{"topic": p.Topic}}}, Cursor: *cursor + "1"}, nil
	}, pdk.EventType[map[string]string]())
	pdk.OnTimer(func(ctx *pdk.Context, ev abi.TimerEvent) error {
		return ctx.KV().Set("fired", ev.Name, 0)
	})
}

type tickParams struct {
	Topic string `json:"topic"`
}

type badOutput struct {
	N string `json:"n"`
}

type fetchInput struct {
	URL       string `json:"url"`
	Method    string `json:"method,omitempty"`
	NoAuth    bool   `json:"no_auth,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

type fetchOutput struct {
	Status int        `json:"status,omitempty"`
	Body   string     `json:"body,omitempty"`
	Error  *abi.Error `json:"error,omitempty"`
}

func fetch(ctx *pdk.Context, in fetchInput) (fetchOutput, error) {
	resp, err := ctx.HTTP().Do(pdk.Request{Method: in.Method, URL: in.URL, NoAuth: in.NoAuth, Timeout: time.Duration(in.TimeoutMS) * time.Millisecond})
	var ae *abi.Error
	if errors.As(err, &ae) {
		return fetchOutput{Error: ae}, nil
	}
	if err != nil {
		return fetchOutput{}, err
	}
	return fetchOutput{Status: resp.Status, Body: resp.Text()}, nil
}

type secretsInput struct {
	Field string `json:"field"`
	Data  string `json:"data"`
}

type secretsOutput struct {
	MAC         []byte `json:"mac,omitempty"`
	MACError    string `json:"mac_error,omitempty"`
	Revealed    string `json:"revealed,omitempty"`
	RevealError string `json:"reveal_error,omitempty"`
}

func code(err error) string {
	var ae *abi.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func secrets(ctx *pdk.Context, in secretsInput) (secretsOutput, error) {
	var out secretsOutput
	mac, err := ctx.Credential().HMACSHA256(in.Field, []byte(in.Data))
	out.MAC, out.MACError = mac, code(err)
	v, err := ctx.Credential().Reveal(in.Field)
	out.Revealed, out.RevealError = v, code(err)
	return out, nil
}

type stateInput struct {
	Op    string          `json:"op" enum:"set,get,delete,timer,cancel,sleep"`
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	MS    int64           `json:"ms,omitempty"`
}

type stateOutput struct {
	Found bool            `json:"found"`
	Value json.RawMessage `json:"value,omitempty"`
	ID    string          `json:"id,omitempty"`
	Error string          `json:"error,omitempty"`
}

func state(ctx *pdk.Context, in stateInput) (stateOutput, error) {
	var out stateOutput
	var err error
	switch in.Op {
	case "set":
		err = ctx.KV().Set(in.Key, in.Value, time.Duration(in.MS)*time.Millisecond)
	case "get":
		out.Found, err = ctx.KV().Get(in.Key, &out.Value)
	case "delete":
		err = ctx.KV().Delete(in.Key)
	case "timer":
		out.ID, err = ctx.Timer().Set(in.Key, time.Duration(in.MS)*time.Millisecond, in.Value)
	case "cancel":
		err = ctx.Timer().Cancel(in.Key)
	case "sleep":
		err = ctx.Timer().Sleep(time.Duration(in.MS) * time.Millisecond)
	}
	out.Error = code(err)
	return out, nil
}

// whoami answers with what it saw: the method and the credentials. /redirect?to=URL&status=N
// redirects, /loop redirects to itself, /slow never answers, /big is 4 KiB.
func whoami(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			<-r.Context().Done()
			return
		case "/big":
			w.Write(make([]byte, 4096))
			return
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
			return
		case "/redirect":
			status := http.StatusFound
			if r.URL.Query().Get("status") == "303" {
				status = http.StatusSeeOther
			}
			http.Redirect(w, r, r.URL.Query().Get("to"), status)
			return
		}
		user, pass, _ := r.BasicAuth()
		io.WriteString(w, r.Method+" key="+r.Header.Get("X-Api-Key")+" basic="+user+":"+pass)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func connection(base, other string) *abi.Connection {
	params := map[string]any{"base_url": base}
	if other != "" {
		params["other_url"] = other
	}
	return &abi.Connection{ID: "probe-conn", Params: params}
}

func TestFakeHTTP(t *testing.T) {
	srv, other, outside := whoami(t), whoami(t), whoami(t)
	key := pdktest.Credential{APIKey: "s3cret"}
	tests := []struct {
		name    string
		opts    pdktest.Options
		input   fetchInput
		status  int
		body    string
		errCode string
	}{
		{name: "the api key is injected as the manifest says", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/x"}, status: 200, body: "GET key=Key s3cret basic=:"},
		{name: "auth false sends no credentials", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/x", NoAuth: true}, status: 200, body: "GET key= basic=:"},
		{name: "basic auth is injected", opts: pdktest.Options{Credential: pdktest.Credential{Username: "ann", Password: "pw"}},
			input: fetchInput{URL: srv.URL + "/x", Method: "DELETE"}, status: 200, body: "DELETE key= basic=ann:pw"},
		{name: "an origin outside the manifest's hosts is host_not_allowed", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: outside.URL + "/x"}, errCode: abi.CodeHostNotAllowed},
		{name: "an origin outside the connection's hosts is host_not_allowed", opts: pdktest.Options{Credential: key, AllowedOrigins: []string{srv.URL}},
			input: fetchInput{URL: other.URL + "/x"}, errCode: abi.CodeHostNotAllowed},
		{name: "a same-origin redirect keeps the credentials", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/redirect?to=/final"}, status: 200, body: "GET key=Key s3cret basic=:"},
		{name: "a redirect to another allowed origin drops the credentials", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/redirect?to=" + other.URL + "/final"}, status: 200, body: "GET key= basic=:"},
		{name: "a redirect back to the first origin after leaving it sends no credentials", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/redirect?to=" + url.QueryEscape(other.URL+"/redirect?to="+srv.URL+"/final")}, status: 200, body: "GET key= basic=:"},
		{name: "a redirect to a refused origin answers the refusal", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/redirect?to=" + outside.URL + "/final"}, errCode: abi.CodeHostNotAllowed},
		{name: "303 turns into GET", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/redirect?status=303&to=/final", Method: "PUT"}, status: 200, body: "GET key=Key s3cret basic=:"},
		{name: "more than 10 redirects is too_many_redirects", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/loop"}, errCode: abi.CodeTooManyRedirects},
		{name: "a body over the cap is too_large", opts: pdktest.Options{Credential: key, MaxResponseBytes: 1024},
			input: fetchInput{URL: srv.URL + "/big"}, errCode: abi.CodeTooLarge},
		{name: "the request timeout is enforced", opts: pdktest.Options{Credential: key},
			input: fetchInput{URL: srv.URL + "/slow", TimeoutMS: 50}, errCode: abi.CodeTimeout},
		{name: "the call deadline is enforced", opts: pdktest.Options{Credential: key, Timeout: 100 * time.Millisecond},
			input: fetchInput{URL: srv.URL + "/slow"}, errCode: abi.CodeTimeout},
		{name: "a URL outside the hosts is refused before dialing", opts: pdktest.Options{},
			input: fetchInput{URL: "http://127.0.0.1:1/x"}, errCode: abi.CodeHostNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Connection = connection(srv.URL, other.URL)
			h := pdktest.New(t, tt.opts)
			var out fetchOutput
			if err := h.InvokeInto("fetch", tt.input, &out); err != nil {
				t.Fatal(err)
			}
			if tt.errCode != "" {
				if out.Error == nil || out.Error.Code != tt.errCode {
					t.Errorf("got %+v, want error %s", out, tt.errCode)
				}
				return
			}
			if out.Error != nil || out.Status != tt.status || out.Body != tt.body {
				t.Errorf("got %+v, want %d %q", out, tt.status, tt.body)
			}
		})
	}
}

func TestFakeHTTPNetworkErrorAndBudget(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{Connection: connection("http://127.0.0.1:1", ""), MaxRequests: 1})
	var out fetchOutput
	if err := h.InvokeInto("fetch", fetchInput{URL: "http://127.0.0.1:1/x"}, &out); err != nil || out.Error == nil || out.Error.Code != abi.CodeNetwork {
		t.Errorf("closed port: %+v %v", out, err)
	}
	if got := h.Requests(); len(got) != 1 || got[0].URL != "http://127.0.0.1:1/x" || got[0].Method != "GET" {
		t.Errorf("requests = %+v", got)
	}
}

func TestFakeCredential(t *testing.T) {
	mac := func(key, data string) []byte {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(data))
		return m.Sum(nil)
	}
	cred := pdktest.Credential{APIKey: "k", Secrets: map[string]string{"signing_secret": "shh"}}
	tests := []struct {
		name     string
		approved []string
		field    string
		want     secretsOutput
	}{
		{"hmac with an extra secret; reveal of an unlisted field is denied", nil, "signing_secret",
			secretsOutput{MAC: mac("shh", "payload"), RevealError: abi.CodeDenied}},
		{"reveal needs the operator's approval", nil, "api_key",
			secretsOutput{MAC: mac("k", "payload"), RevealError: abi.CodeDenied}},
		{"an approved and listed field is revealed", []string{"api_key"}, "api_key",
			secretsOutput{MAC: mac("k", "payload"), Revealed: "k"}},
		{"an unknown field", []string{"api_key"}, "nope",
			secretsOutput{MACError: abi.CodeInvalidRequest, RevealError: abi.CodeDenied}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pdktest.New(t, pdktest.Options{Connection: connection("https://x.example", ""), Credential: cred, ApprovedReveal: tt.approved})
			var out secretsOutput
			if err := h.InvokeInto("secrets", secretsInput{Field: tt.field, Data: "payload"}, &out); err != nil {
				t.Fatal(err)
			}
			if string(out.MAC) != string(tt.want.MAC) || out.MACError != tt.want.MACError || out.Revealed != tt.want.Revealed || out.RevealError != tt.want.RevealError {
				t.Errorf("got %+v, want %+v", out, tt.want)
			}
		})
	}
}

func TestFakeKVAndTimers(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{Timeout: time.Second})
	step := func(in stateInput) stateOutput {
		t.Helper()
		var out stateOutput
		if err := h.InvokeInto("state", in, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := step(stateInput{Op: "set", Key: "k", Value: json.RawMessage(`{"a":[1,2]}`)}); out.Error != "" {
		t.Fatalf("set: %+v", out)
	}
	if out := step(stateInput{Op: "get", Key: "k"}); !out.Found || string(out.Value) != `{"a":[1,2]}` {
		t.Errorf("get: %+v", out)
	}
	if kv := h.KV(); string(kv["k"]) != `{"a":[1,2]}` {
		t.Errorf("KV() = %v", kv)
	}
	step(stateInput{Op: "delete", Key: "k"})
	if out := step(stateInput{Op: "get", Key: "k"}); out.Found {
		t.Errorf("get after delete: %+v", out)
	}
	if out := step(stateInput{Op: "set", Key: strings.Repeat("k", 257), Value: json.RawMessage(`1`)}); out.Error != abi.CodeTooLarge {
		t.Errorf("a long key: %+v", out)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 64<<10) + `"`)
	if out := step(stateInput{Op: "set", Key: "big", Value: big}); out.Error != abi.CodeTooLarge {
		t.Errorf("a big value: %+v", out)
	}

	if out := step(stateInput{Op: "timer", Key: "renew", MS: 500}); out.Error != abi.CodeInvalidRequest {
		t.Errorf("a timer under a second: %+v", out)
	}
	first := step(stateInput{Op: "timer", Key: "renew", MS: 60000, Value: json.RawMessage(`{"n":1}`)})
	second := step(stateInput{Op: "timer", Key: "other", MS: 1000})
	step(stateInput{Op: "cancel", Key: second.ID})
	timers := h.Timers()
	if len(timers) != 1 || timers[0].ID != first.ID || timers[0].Name != "renew" || timers[0].Delay != time.Minute || string(timers[0].Payload) != `{"n":1}` {
		t.Fatalf("timers = %+v", timers)
	}
	if err := h.FireTimer(first.ID); err != nil {
		t.Fatal(err)
	}
	if kv := h.KV(); string(kv["fired"]) != `"renew"` || len(h.Timers()) != 0 {
		t.Errorf("after firing: kv %v timers %v", kv, h.Timers())
	}

	if out := step(stateInput{Op: "sleep", MS: 200}); out.Error != "" {
		t.Errorf("a short sleep: %+v", out)
	}
	if out := step(stateInput{Op: "sleep", MS: 5000}); out.Error != abi.CodeDeadline {
		t.Errorf("a sleep past the deadline: %+v", out)
	}
	if h.Slept() != 200*time.Millisecond {
		t.Errorf("slept %v", h.Slept())
	}
}

func TestPoll(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{})
	res, err := h.Poll("tick", tickParams{Topic: "a"}, nil)
	if err != nil || res.Cursor != "0" || len(res.Events) != 0 {
		t.Fatalf("baseline: %+v %v", res, err)
	}
	res, err = h.Poll("tick", tickParams{Topic: "a"}, &res.Cursor)
	if err != nil || res.Cursor != "01" || len(res.Events) != 1 || res.Events[0].ID != "0-a" || string(res.Events[0].Data) != `{"topic":"a"}` {
		t.Fatalf("second poll: %+v %v", res, err)
	}
	if _, err := h.Poll("tick", map[string]any{"topic": 1}, nil); err == nil || err.Code != abi.CodeInvalidInput {
		t.Errorf("bad params: %+v", err)
	}
}

func TestInvalidInputIsAnsweredLikeTheAPI(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{})
	_, err := h.Invoke("state", map[string]any{"op": "explode", "extra": true})
	if err == nil || err.Code != abi.CodeInvalidInput || !strings.Contains(err.Message, "input/op") {
		t.Fatalf("got %+v", err)
	}
	var d struct {
		Errors []check.SchemaError `json:"errors"`
	}
	if json.Unmarshal(err.Details, &d) != nil || len(d.Errors) != 2 {
		t.Errorf("details = %s", err.Details)
	}
}

func TestAHostCodeReturnedByAHandlerIsMapped(t *testing.T) {
	_, err := pdktest.New(t, pdktest.Options{}).Invoke("leaky", nil)
	if err == nil || err.Code != abi.CodeInternal || string(err.Details) != `{"host_code":"host_not_allowed"}` {
		t.Errorf("got %+v", err)
	}
}

// TestAHostRefusalPassedOnKeepsItsCode: a handler that returns the PDK's error of a refused
// host call reports it with the host's code kept, for the API to answer with.
func TestAHostRefusalPassedOnKeepsItsCode(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{Connection: &abi.Connection{ID: "c", Params: map[string]any{"base_url": "https://api.example.com"}}})
	_, err := h.Invoke("pass_on", map[string]any{"url": "https://elsewhere.example/x"})
	if err == nil || pdk.HostCode(err) != abi.CodeHostNotAllowed || !strings.Contains(err.Message, "https://elsewhere.example") {
		t.Fatalf("got %+v, want the host's host_not_allowed kept", err)
	}
	if status, _ := abi.HostErrorStatus(pdk.HostCode(err)); status != http.StatusForbidden {
		t.Errorf("the API would answer %d, want 403", status)
	}
}

func TestDescribe(t *testing.T) {
	m := pdktest.New(t, pdktest.Options{}).Describe()
	if m.Name != "probe" || len(m.Actions) != 6 || len(m.Triggers) != 1 {
		t.Errorf("manifest = %+v", m)
	}
}

// recorder is a testing.TB that records failures instead of failing the real test.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper()             {}
func (r *recorder) Log(...any)          {}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Errorf(f string, a ...any) {
	r.failures = append(r.failures, "error: "+sprintf(f, a...))
}
func (r *recorder) Fatalf(f string, a ...any) {
	r.failures = append(r.failures, "fatal: "+sprintf(f, a...))
	runtime.Goexit()
}

func sprintf(f string, a ...any) string { return strings.TrimSpace(fmt.Sprintf(f, a...)) }

// run calls f with a recorder on its own goroutine, so Fatalf can stop it.
func run(t *testing.T, f func(tb testing.TB)) []string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.failures
}

func TestHarnessCatchesConnectorBugs(t *testing.T) {
	tests := []struct {
		name string
		f    func(tb testing.TB)
		want string
	}{
		{"an output that does not match the output schema", func(tb testing.TB) {
			pdktest.New(tb, pdktest.Options{}).Invoke("bad_output", nil)
		}, "error: pdktest: bad_output: the output does not match the output_schema"},
		{"a credential type the manifest does not accept", func(tb testing.TB) {
			pdktest.New(tb, pdktest.Options{Connection: connection("https://x.example", ""), Credential: pdktest.Credential{AccessToken: "t"}})
		}, `fatal: pdktest: credential type "oauth2" is not one of the manifest's auth.types`},
		{"an unknown action", func(tb testing.TB) {
			pdktest.New(tb, pdktest.Options{}).Invoke("nope", nil)
		}, `fatal: pdktest: the manifest has no action "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failures := run(t, tt.f)
			if len(failures) != 1 || !strings.HasPrefix(failures[0], tt.want) {
				t.Errorf("failures = %q, want one starting with %q", failures, tt.want)
			}
		})
	}
}
