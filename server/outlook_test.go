package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

// outlookEnv is a server with the real outlook.wasm, and a Graph fake that accepts the tokens of
// the real OAuth server.
type outlookEnv struct{ *graphEnv }

func newOutlookServer(t *testing.T, edit func(*Options)) *outlookEnv {
	t.Helper()
	return &outlookEnv{newGraphEnv(t, edit, "outlook")}
}

// createOutlookConnection creates the oauth2 connection id with the header (a key) given,
// completes the consent and returns the connection document.
func (e *outlookEnv) createOutlookConnection(id string, params map[string]any, header ...string) {
	e.t.Helper()
	p := map[string]any{"base_url": e.fake.URL}
	for k, v := range params {
		p[k] = v
	}
	doc := e.must(201, e.do("POST", "/v1/connections", map[string]any{
		"id": id, "connectors": []string{"outlook"}, "params": p,
		"auth": map[string]any{"type": "oauth2", "client_id": oauthClientID, "client_secret": oauthClientSecret,
			"authorization_url": e.oa.Issuer + "/authorize", "token_url": e.oa.Issuer + "/token"},
	}, header...)).json(e.t)
	if _, r := e.consent(doc["consent_url"].(string)); r.Status != 200 {
		e.t.Fatalf("consent: %d %s", r.Status, r.Body)
	}
}

func newOutlookEnv(t *testing.T, edit func(*Options)) *outlookEnv {
	e := newOutlookServer(t, edit)
	e.createOutlookConnection("mail", nil)
	return e
}

func (e *outlookEnv) call(action string, input map[string]any, header ...string) response {
	e.t.Helper()
	return e.do("POST", "/v1/connectors/outlook/actions/"+action, map[string]any{"connection": "mail", "input": input}, header...)
}

func (e *outlookEnv) output(action string, input map[string]any, header ...string) map[string]any {
	e.t.Helper()
	return e.must(200, e.call(action, input, header...)).json(e.t)["output"].(map[string]any)
}

// Every outlook action through the real server, host and OAuth flow, and Graph's throttling:
// a GET answered 429 with Retry-After 1 is retried by the host, a POST is not and comes back
// as 429 rate_limited with Retry-After.
func TestOutlookActionsEndToEnd(t *testing.T) {
	e := newOutlookEnv(t, nil)
	fake := e.fake
	old := fake.Deliver("inbox", graphfake.NewMessage{Subject: "Welcome", From: "megan@contoso.example", Received: time.Now().Add(-time.Hour)})
	fresh := fake.Deliver("inbox", graphfake.NewMessage{Subject: "Budget", Body: "<b>Q3</b>", ContentType: "html", From: "megan@contoso.example"})

	list := e.output("list_messages", map[string]any{"top": 1})
	msgs := list["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["id"] != fresh.ID || list["next_cursor"] == nil {
		t.Fatalf("list = %v", list)
	}
	next := e.output("list_messages", map[string]any{"cursor": list["next_cursor"]})
	if m := next["messages"].([]any); len(m) != 1 || m[0].(map[string]any)["id"] != old.ID || next["next_cursor"] != nil {
		t.Fatalf("second page = %v", next)
	}
	if r := e.call("list_messages", map[string]any{"filter": "subject eq 'x'"}); r.Status != 400 || r.code(t) != "invalid_input" ||
		!strings.Contains(string(r.Body), "ErrorInvalidUrlQueryFilter") {
		t.Errorf("a refused filter: %d %s", r.Status, r.Body)
	}
	got := e.output("get_message", map[string]any{"id": fresh.ID})
	if body := got["body"].(map[string]any); body["content_type"] != "html" || body["content"] != "<b>Q3</b>" || got["subject"] != "Budget" {
		t.Errorf("get = %v", got)
	}
	if r := e.call("get_message", map[string]any{"id": "AAMkAGmissing"}); r.Status != 404 || r.code(t) != "not_found" {
		t.Errorf("a missing message: %d %s", r.Status, r.Body)
	}
	if m := e.output("mark_read", map[string]any{"id": fresh.ID}); m["is_read"] != true {
		t.Errorf("mark_read = %v", m)
	}
	moved := e.output("move_message", map[string]any{"id": old.ID, "folder": "archive"})
	if moved["id"] == old.ID || len(fake.Messages("archive")) != 1 {
		t.Errorf("moved = %v", moved)
	}
	if s := e.output("send_mail", map[string]any{"to": []string{"megan@contoso.example"}, "subject": "Hi", "body": "hello"}); s["sent"] != true {
		t.Errorf("send = %v", s)
	}
	if r := e.output("reply", map[string]any{"id": fresh.ID, "comment": "Thanks"}); r["replied"] != true {
		t.Errorf("reply = %v", r)
	}
	sent := fake.Sent()
	if len(sent) != 2 || sent[0].Subject != "RE: Budget" || sent[1].Subject != "Hi" {
		t.Errorf("sent = %+v", sent)
	}
	if r := e.call("send_mail", map[string]any{"to": []string{}}); r.Status != 400 || r.code(t) != "invalid_input" {
		t.Errorf("no recipients: %d %s", r.Status, r.Body)
	}

	// A throttled GET is retried by the host after Retry-After and succeeds.
	before := fake.CountRequests("GET", "/messages/"+fresh.ID)
	fake.Throttle("/messages/"+fresh.ID, 1, http.StatusTooManyRequests, 1)
	start := time.Now()
	if m := e.output("get_message", map[string]any{"id": fresh.ID}); m["id"] != fresh.ID {
		t.Errorf("after the retry: %v", m)
	}
	if n := fake.CountRequests("GET", "/messages/"+fresh.ID); n != before+2 || time.Since(start) < 900*time.Millisecond {
		t.Errorf("%d GETs of the message, %d before, %s: want the 429 and a retry after about 1 s", n, before, time.Since(start))
	}
	// A throttled POST is not retried: 429 rate_limited with Retry-After.
	fake.Throttle("/sendMail", 1, http.StatusTooManyRequests, 30)
	r := e.call("send_mail", map[string]any{"to": []string{"megan@contoso.example"}, "subject": "again"})
	if r.Status != http.StatusTooManyRequests || r.code(t) != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Errorf("a throttled send: %d Retry-After=%q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if n := fake.CountRequests("POST", "/sendMail"); n != 2 {
		t.Errorf("%d sendMail requests, want 2 (the throttled one not retried)", n)
	}
}

// The seed scenario: app A (role connections) creates the Microsoft 365 connection and
// completes the consent; app B (an invoker scoped to outlook and that connection) lists, reads
// and sends mail with it, never sees a token, and is refused another connection.
func TestOutlookSeedScenarioSharedConnection(t *testing.T) {
	e := newOutlookServer(t, nil)
	_, a := e.createKey("app-a", roleConnections, nil)
	e.createOutlookConnection("mail", nil, asKey(a)...)
	e.createOutlookConnection("other", nil)
	_, b := e.createKey("app-b", roleInvoker, map[string]any{"connectors": []string{"outlook"}, "connections": []string{"mail"}})
	d := e.fake.Deliver("inbox", graphfake.NewMessage{Subject: "For app B", Body: "secret-free body"})

	var bodies []string
	list := e.must(200, e.call("list_messages", nil, asKey(b)...))
	bodies = append(bodies, string(list.Body))
	if m := list.json(t)["output"].(map[string]any)["messages"].([]any); len(m) != 1 || m[0].(map[string]any)["id"] != d.ID {
		t.Fatalf("list = %s", list.Body)
	}
	got := e.must(200, e.call("get_message", map[string]any{"id": d.ID}, asKey(b)...))
	bodies = append(bodies, string(got.Body))
	sent := e.must(200, e.call("send_mail", map[string]any{"to": []string{"megan@contoso.example"}, "subject": "from B"}, asKey(b)...))
	bodies = append(bodies, string(sent.Body))
	if s := e.fake.Sent(); len(s) != 1 || s[0].Subject != "from B" {
		t.Errorf("sent = %+v", s)
	}
	conn := e.do("GET", "/v1/connections/mail", nil, asKey(b)...)
	bodies = append(bodies, string(conn.Body))
	r := e.do("POST", "/v1/connectors/outlook/actions/list_messages", map[string]any{"connection": "other", "input": map[string]any{}}, asKey(b)...)
	if r.Status != 403 || r.code(t) != "forbidden" {
		t.Errorf("app B on another connection: %d %s", r.Status, r.Body)
	}
	bodies = append(bodies, string(r.Body))

	var secrets []string
	for _, q := range e.fake.Requests() {
		if tok, ok := strings.CutPrefix(q.Authorization, "Bearer "); ok {
			secrets = append(secrets, tok)
		}
	}
	secrets = append(secrets, e.oa.Stats().RefreshIssued...)
	if len(secrets) < 2 {
		t.Fatalf("found %d tokens to look for", len(secrets))
	}
	for _, s := range secrets {
		for _, body := range bodies {
			if strings.Contains(body, s) {
				t.Errorf("a response to app B holds a token: %s", body)
			}
		}
	}
}

// new_message with queue delivery: old mail is not replayed, two new messages arrive once each.
func TestOutlookNewMessageEndToEnd(t *testing.T) {
	e := newOutlookEnv(t, func(o *Options) { o.Triggers.Tick = 50 * time.Millisecond })
	fake := e.fake
	fake.Deliver("inbox", graphfake.NewMessage{Subject: "old", Received: time.Now().Add(-time.Minute)})
	sub := e.must(201, e.do("POST", "/v1/subscriptions", map[string]any{"connector": "outlook", "trigger": "new_message",
		"connection": "mail", "params": map[string]any{}, "interval_s": 15, "delivery": map[string]any{"type": "queue"}})).json(t)["id"].(string)
	if n := fake.CountRequests("GET", "/messages/delta"); n < 1 {
		t.Fatalf("%d delta requests after the subscription, want the baseline", n)
	}
	a := fake.Deliver("inbox", graphfake.NewMessage{Subject: "first", Received: time.Now().Add(time.Second)})
	b := fake.Deliver("inbox", graphfake.NewMessage{Subject: "second", Received: time.Now().Add(time.Second)})
	evs := e.drain(sub, 2, 40*time.Second)
	var ids []string
	for _, ev := range evs {
		if ev["type"] != "outlook.new_message" || ev["event_type"] != "created" {
			t.Errorf("event %v", ev)
		}
		ids = append(ids, ev["source_event_id"].(string))
	}
	if strings.Join(ids, ",") != a.ID+","+b.ID {
		t.Fatalf("events %v, want %s,%s", ids, a.ID, b.ID)
	}
	if d := evs[0]["data"].(map[string]any); d["subject"] != "first" {
		t.Errorf("data = %v", d)
	}
	if more := e.pull(sub, "max=10&wait_s=1"); len(more) != 0 {
		t.Errorf("more events than the new mail: %v", more)
	}
}
