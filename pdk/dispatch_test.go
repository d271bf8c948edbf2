package pdk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
)

type issueInput struct {
	Owner  string   `json:"owner" jsonschema:"Repository owner"`
	Repo   string   `json:"repo"`
	Title  string   `json:"title"`
	Labels []string `json:"labels,omitempty"`
}

type issueOutput struct {
	Number int    `json:"number"`
	Title  string `json:"title"`
}

type pollParams struct {
	Repo string `json:"repo"`
}

// testTable registers a small connector the way a plugin's init functions would.
func testTable() *table {
	var tb table
	tb.setConnector(Info{
		Name:             "demo",
		Version:          "1.0.0",
		Title:            "Demo",
		Auth:             abi.Auth{Types: []string{abi.AuthAPIKey}, APIKey: &abi.APIKeyAuth{In: "header", Name: "Authorization", Prefix: "Bearer "}},
		ConnectionParams: `{"type":"object","properties":{"base_url":{"type":"string","format":"uri","default":"https://api.example.com"}}}`,
		Hosts:            []string{"{base_url}"},
		Limits:           &abi.Limits{TimeoutMS: 10000},
	})
	tb.addAction(newAction("create_issue", func(ctx *Context, in issueInput) (issueOutput, error) {
		switch in.Title {
		case "boom":
			panic("kaboom")
		case "nil":
			var m map[string]int
			m["x"] = 1 // a runtime panic, not a trap
		case "bad":
			return issueOutput{}, Errorf(abi.CodeInvalidInput, "title %q is not allowed", in.Title)
		case "plain":
			return issueOutput{}, errors.New("plain failure")
		case "host":
			_, err := ctx.HTTP().Do(Request{URL: "https://elsewhere.example"})
			return issueOutput{}, err
		}
		return issueOutput{Number: 7, Title: in.Title}, nil
	}, []Option{Title("Create an issue"), Description("Opens an issue."), Destructive(), Timeout(5 * time.Second)}))
	tb.addAction(newAction("get_thing", func(ctx *Context, in struct{}) (*issueOutput, error) {
		return nil, nil
	}, []Option{ReadOnly(), Idempotent()}))
	tb.addTrigger(newPollTrigger("new_issue", func(ctx *Context, p pollParams, cursor *string) (PollResult, error) {
		if cursor == nil {
			return PollResult{Cursor: "0"}, nil
		}
		return PollResult{
			Events: []Event{{ID: "1", Type: "opened", Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Data: issueOutput{Number: 1, Title: p.Repo}}},
			Cursor: "1",
		}, nil
	}, []Option{EventType[issueOutput](), Interval(2*time.Minute, 30*time.Second)}))
	tb.addTrigger(newWebhookTrigger("issue_event", Webhook[pollParams]{
		Subscribe: func(ctx *Context, sub WebhookSubscription[pollParams]) (WebhookState, error) {
			return WebhookState{State: map[string]string{"hook": sub.Params.Repo + sub.CallbackURL}, RenewAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
		},
		Receive: func(ctx *Context, d WebhookDelivery[pollParams]) (WebhookReceipt, error) {
			return WebhookReceipt{
				Events:   []Event{{ID: d.Request.Headers["X-Delivery"], Data: json.RawMessage(d.Body)}},
				Response: &abi.WebhookResponse{Status: 202},
			}, nil
		},
	}, nil))
	tb.setOnTimer(func(ctx *Context, ev abi.TimerEvent) error {
		if ev.Name == "fail" {
			return Errorf(abi.CodeUnavailable, "later")
		}
		return nil
	})
	return &tb
}

func TestDescribeBuildsAValidManifest(t *testing.T) {
	tb := testTable()
	out, err := tb.dispatch(nil, abi.ExportDescribe, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := check.ParseManifest(out)
	if err != nil {
		t.Fatalf("the manifest does not validate: %v\n%s", err, out)
	}
	if len(m.Actions) != 2 || len(m.Triggers) != 2 {
		t.Fatalf("got %d actions and %d triggers", len(m.Actions), len(m.Triggers))
	}
	ci := m.Actions[0]
	if ci.Name != "create_issue" || ci.Title != "Create an issue" || ci.Description != "Opens an issue." || ci.TimeoutMS != 5000 ||
		ci.Annotations == nil || !ci.Annotations.Destructive || ci.Annotations.ReadOnly {
		t.Errorf("create_issue = %+v", ci)
	}
	gt := m.Actions[1]
	if gt.Title != "Get thing" || gt.Annotations == nil || !gt.Annotations.ReadOnly || !gt.Annotations.Idempotent {
		t.Errorf("get_thing = %+v", gt)
	}
	if string(gt.InputSchema) != `{"type":"object","additionalProperties":false}` {
		t.Errorf("get_thing input schema = %s", gt.InputSchema)
	}
	poll := m.Triggers[0]
	if poll.Kind != abi.TriggerPoll || poll.DefaultIntervalS != 120 || poll.MinIntervalS != 30 || len(poll.EventSchema) == 0 {
		t.Errorf("new_issue = %+v", poll)
	}
	if m.Triggers[1].Kind != abi.TriggerWebhook {
		t.Errorf("issue_event = %+v", m.Triggers[1])
	}
	if got := m.RequiredExports(); len(got) != 4 {
		t.Errorf("required exports = %v", got)
	}
	again, _ := tb.dispatch(nil, abi.ExportDescribe, nil)
	if string(again) != string(out) {
		t.Errorf("describe is not deterministic:\n%s\n%s", out, again)
	}
}

func TestRegistrationErrors(t *testing.T) {
	type scalarOut = string
	tests := []struct {
		name     string
		register func(tb *table)
		want     string
	}{
		{"no connector", func(tb *table) {}, "pdk.Connector was not called"},
		{"connector twice", func(tb *table) {
			tb.setConnector(Info{Name: "b", Version: "1.0.0"})
		}, "pdk.Connector called twice"},
		{"output that is not an object", func(tb *table) {
			tb.addAction(newAction("a", func(*Context, struct{}) (scalarOut, error) { return "", nil }, nil))
		}, `pdk.Action("a"): output: string does not encode as a JSON object`},
		{"input that is not an object", func(tb *table) {
			tb.addAction(newAction("a", func(*Context, []string) (struct{}, error) { return struct{}{}, nil }, nil))
		}, `pdk.Action("a"): input: []string does not encode as a JSON object`},
		{"bad action name", func(tb *table) {
			tb.addAction(newAction("Create-Issue", func(*Context, struct{}) (struct{}, error) { return struct{}{}, nil }, nil))
		}, `pdk.Action("Create-Issue"): the name must match`},
		{"duplicate names across actions and triggers", func(tb *table) {
			tb.addAction(newAction("x", func(*Context, struct{}) (struct{}, error) { return struct{}{}, nil }, nil))
			tb.addTrigger(newPollTrigger("x", func(*Context, struct{}, *string) (PollResult, error) { return PollResult{}, nil }, nil))
		}, `pdk.Trigger("x"): the name is already registered`},
		{"an option for actions on a trigger", func(tb *table) {
			tb.addTrigger(newPollTrigger("p", func(*Context, struct{}, *string) (PollResult, error) { return PollResult{}, nil }, []Option{ReadOnly()}))
		}, "option ReadOnly does not apply to poll triggers"},
		{"an interval on an action", func(tb *table) {
			tb.addAction(newAction("a", func(*Context, struct{}) (struct{}, error) { return struct{}{}, nil }, []Option{Interval(time.Minute, 0)}))
		}, "option Interval does not apply to actions"},
		{"a schema override that is not an object schema", func(tb *table) {
			tb.addAction(newAction("a", func(*Context, struct{}) (struct{}, error) { return struct{}{}, nil }, []Option{InputSchema(`{"type":"string"}`)}))
		}, `InputSchema: the schema must have "type": "object"`},
		{"a webhook without Receive", func(tb *table) {
			tb.addTrigger(newWebhookTrigger("w", Webhook[struct{}]{Subscribe: func(*Context, WebhookSubscription[struct{}]) (WebhookState, error) { return WebhookState{}, nil }}, nil))
		}, "Webhook.Subscribe and Webhook.Receive are required"},
		{"OnTimer twice", func(tb *table) {
			tb.setOnTimer(func(*Context, abi.TimerEvent) error { return nil })
			tb.setOnTimer(func(*Context, abi.TimerEvent) error { return nil })
		}, "pdk.OnTimer called twice"},
		{"connection params that are not JSON", func(tb *table) {
			tb.info = nil
			tb.setConnector(Info{Name: "a", Version: "1.0.0", ConnectionParams: "{"})
		}, "ConnectionParams: not a JSON Schema object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tb table
			if tt.name != "no connector" {
				tb.setConnector(Info{Name: "a", Version: "1.0.0", Auth: abi.Auth{Types: []string{abi.AuthNone}}})
			}
			tt.register(&tb)
			_, err := tb.dispatch(nil, abi.ExportDescribe, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("describe error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// recordingHost answers every import with a fixed reply and records the requests.
type recordingHost struct {
	reply    map[string]string
	requests map[string][]string
	logs     []string
}

func (h *recordingHost) Call(function string, request []byte) []byte {
	if h.requests == nil {
		h.requests = map[string][]string{}
	}
	h.requests[function] = append(h.requests[function], string(request))
	if r, ok := h.reply[function]; ok {
		return []byte(r)
	}
	return []byte(`{"error":{"code":"denied","message":"no"}}`)
}

func (h *recordingHost) Log(level LogLevel, message string) {
	h.logs = append(h.logs, level.String()+": "+message)
}

func invoke(t *testing.T, tb *table, host Host, req string) abi.InvokeResult {
	t.Helper()
	out, err := tb.dispatch(host, abi.ExportInvoke, []byte(req))
	if err != nil {
		t.Fatal(err)
	}
	var res abi.InvokeResult
	if err := abi.DecodeStrict(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if (res.Error == nil) == (res.Output == nil) {
		t.Fatalf("want exactly one of output and error: %s", out)
	}
	return res
}

func TestInvoke(t *testing.T) {
	tb := testTable()
	tests := []struct {
		name    string
		request string
		output  string
		code    string
		message string
	}{
		{"success", `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"Bug"}}`, `{"number":7,"title":"Bug"}`, "", ""},
		{"an unknown input field is invalid_input", `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"t","extra":1}}`, "", abi.CodeInvalidInput, `input: decoding JSON: json: unknown field "extra"`},
		{"a wrong input type is invalid_input", `{"action":"create_issue","input":{"owner":1}}`, "", abi.CodeInvalidInput, ""},
		{"an input that is not an object is invalid_input", `{"action":"create_issue","input":[1]}`, "", abi.CodeInvalidInput, ""},
		{"a missing input decodes as {}", `{"action":"get_thing"}`, "", abi.CodeInternal, "the handler returned null, not a JSON object"},
		{"a guest error keeps its code", `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"bad"}}`, "", abi.CodeInvalidInput, `title "bad" is not allowed`},
		{"a plain error is internal", `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"plain"}}`, "", abi.CodeInternal, "plain failure"},
		{"a panic is recovered as internal", `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"boom"}}`, "", abi.CodeInternal, "the connector panicked: kaboom"},
		{"a runtime panic is recovered as internal", `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"nil"}}`, "", abi.CodeInternal, "the connector panicked: assignment to entry in nil map"},
		{"a host refusal is mapped to a guest code", `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"host"}}`, "", abi.CodeInternal, "no"},
		{"an unknown action", `{"action":"nope","input":{}}`, "", abi.CodeInvalidInput, `unknown action "nope"`},
		{"a request that is not JSON", `{"action":`, "", abi.CodeInternal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := &recordingHost{}
			res := invoke(t, tb, host, tt.request)
			if tt.code == "" {
				if res.Error != nil || string(res.Output) != tt.output {
					t.Errorf("got output %s error %+v, want %s", res.Output, res.Error, tt.output)
				}
				return
			}
			if res.Error == nil || res.Error.Code != tt.code || tt.message != "" && res.Error.Message != tt.message {
				t.Errorf("got error %+v, want code %s message %q", res.Error, tt.code, tt.message)
			}
		})
	}
}

func TestPanicIsLoggedWithItsStack(t *testing.T) {
	host := &recordingHost{}
	invoke(t, testTable(), host, `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"boom"},"correlation_id":"c_1"}`)
	if len(host.logs) != 1 || !strings.HasPrefix(host.logs[0], "error: panic in handler: kaboom") || !strings.Contains(host.logs[0], "goroutine") {
		t.Errorf("logs = %q", host.logs)
	}
}

func TestContextCarriesTheCommonFields(t *testing.T) {
	var tb table
	tb.setConnector(Info{Name: "ctx", Version: "1.0.0", Auth: abi.Auth{Types: []string{abi.AuthNone}}})
	type seen struct {
		ID       string          `json:"id"`
		Param    string          `json:"param"`
		Corr     string          `json:"corr"`
		Deadline int64           `json:"deadline"`
		Raw      json.RawMessage `json:"raw"`
	}
	tb.addAction(newAction("look", func(ctx *Context, _ struct{}) (seen, error) {
		s := seen{Param: ctx.Param("base_url"), Corr: ctx.CorrelationID(), Raw: ctx.Request()}
		if c := ctx.Connection(); c != nil {
			s.ID = c.ID
		}
		if !ctx.Deadline().IsZero() {
			s.Deadline = ctx.Deadline().UnixMilli()
		}
		return s, nil
	}, nil))
	req := `{"action":"look","input":{},"connection":{"id":"c1","params":{"base_url":"https://x.example"}},"correlation_id":"c_9","deadline_unix_ms":1764300000000}`
	res := invoke(t, &tb, nil, req)
	var got seen
	if err := json.Unmarshal(res.Output, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "c1" || got.Param != "https://x.example" || got.Corr != "c_9" || got.Deadline != 1764300000000 || string(got.Raw) != req {
		t.Errorf("got %+v", got)
	}
	res = invoke(t, &tb, nil, `{"action":"look","input":{},"connection":null}`)
	if err := json.Unmarshal(res.Output, &got); err != nil || got.ID != "" || got.Param != "" || got.Deadline != 0 {
		t.Errorf("without a connection: %+v", got)
	}
}

func TestPollWebhookAndTimerDispatch(t *testing.T) {
	tb := testTable()
	run := func(export, req string) string {
		t.Helper()
		out, err := tb.dispatch(nil, export, []byte(req))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	tests := []struct {
		name, export, request, want string
	}{
		{"the first poll sets a baseline", abi.ExportPoll, `{"trigger":"new_issue","params":{"repo":"o/r"},"cursor":null}`, `{"cursor":"0"}`},
		{"later polls return events", abi.ExportPoll, `{"trigger":"new_issue","params":{"repo":"o/r"},"cursor":"0"}`,
			`{"events":[{"id":"1","type":"opened","time":"2025-01-02T03:04:05Z","data":{"number":1,"title":"o/r"}}],"cursor":"1"}`},
		{"poll params are decoded strictly", abi.ExportPoll, `{"trigger":"new_issue","params":{"nope":1}}`,
			`{"error":{"code":"invalid_input","message":"params: decoding JSON: json: unknown field \"nope\""}}`},
		{"an unknown trigger", abi.ExportPoll, `{"trigger":"issue_event","params":{}}`,
			`{"error":{"code":"invalid_input","message":"unknown poll trigger \"issue_event\""}}`},
		{"subscribe returns the state", abi.ExportWebhook, `{"op":"subscribe","trigger":"issue_event","params":{"repo":"o/r"},"callback_url":"https://pb/hooks/x","secret":"s"}`,
			`{"state":{"hook":"o/rhttps://pb/hooks/x"},"renew_at":"2030-01-01T00:00:00Z"}`},
		{"renew falls back to subscribe", abi.ExportWebhook, `{"op":"renew","trigger":"issue_event","params":{"repo":"a"},"callback_url":"/c","state":{}}`,
			`{"state":{"hook":"a/c"},"renew_at":"2030-01-01T00:00:00Z"}`},
		{"unsubscribe without a handler is a no-op", abi.ExportWebhook, `{"op":"unsubscribe","trigger":"issue_event","params":{},"state":{}}`, `{}`},
		{"receive turns a request into events", abi.ExportWebhook,
			`{"op":"receive","trigger":"issue_event","params":{},"request":{"method":"POST","path":"/hooks/x","query":{},"headers":{"X-Delivery":"d1"},"body_base64":"eyJhIjoxfQ=="}}`,
			`{"events":[{"id":"d1","data":{"a":1}}],"response":{"status":202}}`},
		{"an unknown op", abi.ExportWebhook, `{"op":"explode","trigger":"issue_event","params":{}}`,
			`{"error":{"code":"internal","message":"unknown webhook op \"explode\""}}`},
		{"a timer", abi.ExportOnTimer, `{"name":"renew","payload":{}}`, `{}`},
		{"a failing timer", abi.ExportOnTimer, `{"name":"fail","payload":null}`, `{"error":{"code":"unavailable","message":"later"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(tt.export, tt.request); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	if _, err := tb.dispatch(nil, "plugboard_nope", nil); err == nil {
		t.Error("an unknown export did not fail")
	}
}

func TestTimerWithoutHandler(t *testing.T) {
	var tb table
	tb.setConnector(Info{Name: "x", Version: "1.0.0", Auth: abi.Auth{Types: []string{abi.AuthNone}}})
	out, _ := tb.dispatch(nil, abi.ExportOnTimer, []byte(`{"name":"t"}`))
	if !strings.Contains(string(out), `"code":"internal"`) {
		t.Errorf("got %s", out)
	}
}

func FuzzInvoke(f *testing.F) {
	f.Add(`{"action":"create_issue","input":{"owner":"o","repo":"r","title":"Bug"}}`)
	f.Add(`{"action":"create_issue","input":{"labels":[1,2]}}`)
	f.Add(`{"action":"get_thing","input":null}`)
	f.Add(`[]`)
	tb := testTable()
	f.Fuzz(func(t *testing.T, req string) {
		out, err := tb.dispatch(&recordingHost{}, abi.ExportInvoke, []byte(req))
		if err != nil {
			t.Fatal(err)
		}
		var res abi.InvokeResult
		if err := abi.DecodeStrict(out, &res); err != nil || (res.Error == nil) == (res.Output == nil) {
			t.Fatalf("bad result %s: %v", out, err)
		}
	})
}

func TestATypedNilErrorIsNoError(t *testing.T) {
	var tb table
	tb.setConnector(Info{Name: "x", Version: "1.0.0", Auth: abi.Auth{Types: []string{abi.AuthNone}}})
	tb.addAction(newAction("a", func(*Context, struct{}) (issueOutput, error) {
		var e *abi.Error
		return issueOutput{Number: 1}, e
	}, nil))
	tb.addTrigger(newPollTrigger("p", func(*Context, struct{}, *string) (PollResult, error) {
		var e *abi.Error
		return PollResult{Cursor: "c"}, e
	}, nil))
	if res := invoke(t, &tb, nil, `{"action":"a","input":{}}`); string(res.Output) != `{"number":1,"title":""}` {
		t.Errorf("invoke = %s %+v", res.Output, res.Error)
	}
	if out, _ := tb.dispatch(nil, abi.ExportPoll, []byte(`{"trigger":"p","params":{}}`)); string(out) != `{"cursor":"c"}` {
		t.Errorf("poll = %s", out)
	}
}

// nilPointerError has a pointer receiver that dereferences, like many custom error types.
type nilPointerError struct{ msg string }

func (e *nilPointerError) Error() string { return e.msg }

func TestAnErrorThatPanicsIsInternal(t *testing.T) {
	var tb table
	tb.setConnector(Info{Name: "x", Version: "1.0.0", Auth: abi.Auth{Types: []string{abi.AuthNone}}})
	tb.addAction(newAction("a", func(*Context, struct{}) (issueOutput, error) {
		var e *nilPointerError
		return issueOutput{}, e
	}, nil))
	res := invoke(t, &tb, &recordingHost{}, `{"action":"a","input":{}}`)
	if res.Error == nil || res.Error.Code != abi.CodeInternal || !strings.Contains(res.Error.Message, "panicked") {
		t.Errorf("got %+v", res.Error)
	}
}

// TestAHostRefusalKeepsItsCode: a handler that returns the error of a host call unchanged
// reports a guest error whose details keep the host's code and the host's own details, which the
// server turns into the host's code and status (ABI.md section 4).
func TestAHostRefusalKeepsItsCode(t *testing.T) {
	tb := testTable()
	host := &recordingHost{reply: map[string]string{abi.ImportHTTP: `{"error":{"code":"private_address",` +
		`"message":"127.0.0.1 is a loopback address","details":{"address":"127.0.0.1","allow":"127.0.0.0/8"}}}`}}
	res := invoke(t, tb, host, `{"action":"create_issue","input":{"owner":"o","repo":"r","title":"host"}}`)
	e := res.Error
	if e == nil || e.Code != abi.CodeInternal || e.Message != "127.0.0.1 is a loopback address" {
		t.Fatalf("error = %+v, want internal with the host's message", e)
	}
	if want := `{"address":"127.0.0.1","allow":"127.0.0.0/8","host_code":"private_address"}`; string(e.Details) != want {
		t.Errorf("details = %s, want %s", e.Details, want)
	}
	if got := HostCode(e); got != abi.CodePrivateAddress {
		t.Errorf("HostCode = %q, want private_address", got)
	}
}
