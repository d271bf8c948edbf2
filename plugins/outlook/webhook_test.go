package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

const hookSecret = "source-secret-0123456789"

// hookHost plays the platform's side of a webhook source for the unit tests: a callback URL
// (an httptest server) that turns each request into the receive step of the harness with the
// source's secret and current state, and answers what receive answers.
type hookHost struct {
	*httptest.Server
	h      *pdktest.Harness
	params string

	mu       sync.Mutex
	state    json.RawMessage
	results  []abi.WebhookResult
	statuses []int
}

func newHookHost(t *testing.T, h *pdktest.Harness, params string) *hookHost {
	hh := &hookHost{h: h, params: params}
	hh.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &abi.InboundRequest{Method: r.Method, Path: r.URL.Path, Query: map[string]string{}, Headers: map[string]string{},
			BodyBase64: base64.StdEncoding.EncodeToString(body)}
		for k, vs := range r.URL.Query() {
			req.Query[k] = strings.Join(vs, ",")
		}
		for k, vs := range r.Header {
			req.Headers[k] = strings.Join(vs, ", ")
		}
		res, e := hh.receive(req)
		if e != nil {
			http.Error(w, e.Message, 500)
			return
		}
		status := 200
		if res.Response != nil {
			status = res.Response.Status
			for k, v := range res.Response.Headers {
				w.Header().Set(k, v)
			}
		}
		hh.mu.Lock()
		hh.results = append(hh.results, res)
		hh.statuses = append(hh.statuses, status)
		hh.mu.Unlock()
		w.WriteHeader(status)
		if res.Response != nil {
			w.Write([]byte(res.Response.Body))
		}
	}))
	t.Cleanup(hh.Close)
	return hh
}

func (hh *hookHost) receive(req *abi.InboundRequest) (abi.WebhookResult, *abi.Error) {
	hh.mu.Lock()
	st := hh.state
	hh.mu.Unlock()
	return hh.h.Webhook(abi.WebhookRequest{Op: abi.WebhookReceive, Trigger: "message_received", Params: json.RawMessage(hh.params),
		Secret: hookSecret, State: st, Request: req})
}

func (hh *hookHost) setState(st json.RawMessage) {
	hh.mu.Lock()
	hh.state = st
	hh.mu.Unlock()
}

// step runs subscribe or renew and keeps the state it returns.
func (hh *hookHost) step(t *testing.T, op string) abi.WebhookResult {
	t.Helper()
	hh.mu.Lock()
	st := hh.state
	hh.mu.Unlock()
	res, e := hh.h.Webhook(abi.WebhookRequest{Op: op, Trigger: "message_received", Params: json.RawMessage(hh.params),
		CallbackURL: hh.URL + "/hooks/tok", Secret: hookSecret, State: st})
	if e != nil {
		t.Fatalf("%s: %+v", op, e)
	}
	if len(res.State) > 0 {
		hh.setState(res.State)
	}
	return res
}

func (hh *hookHost) subID(t *testing.T) string {
	t.Helper()
	hh.mu.Lock()
	defer hh.mu.Unlock()
	var st hookState
	if err := json.Unmarshal(hh.state, &st); err != nil {
		t.Fatal(err)
	}
	return st.SubscriptionID
}

func (hh *hookHost) last() (abi.WebhookResult, int) {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	return hh.results[len(hh.results)-1], hh.statuses[len(hh.statuses)-1]
}

func hookHarness(t *testing.T, fake *graphfake.Fake, user string) *pdktest.Harness {
	params := map[string]any{"base_url": fake.URL}
	if user != "" {
		params["user"] = user
	}
	return pdktest.New(t, pdktest.Options{
		Connection: &abi.Connection{ID: "m365", Params: params},
		Credential: pdktest.Credential{AccessToken: graphfake.Token},
	})
}

func TestMessageReceivedSubscribe(t *testing.T) {
	for _, c := range []struct{ user, resource string }{
		{"", "me/mailFolders('inbox')/messages"},
		{graphfake.UserID, "users/" + graphfake.UserID + "/mailFolders('archive')/messages"},
	} {
		fake := graphfake.New(t)
		h := hookHarness(t, fake, c.user)
		params := `{}`
		if c.user != "" {
			params = `{"folder":"archive"}`
		}
		hh := newHookHost(t, h, params)
		res := hh.step(t, abi.WebhookSubscribe)
		subs := fake.Subscriptions()
		if len(subs) != 1 {
			t.Fatalf("subscriptions = %+v", subs)
		}
		s := subs[0]
		if s.ClientState != hookSecret || s.Resource != c.resource || s.ChangeType != "created" ||
			s.NotificationURL != hh.URL+"/hooks/tok" || s.LifecycleNotificationURL != s.NotificationURL || s.LatestSupportedTLSVersion != "v1_2" {
			t.Errorf("subscription = %+v", s)
		}
		if hh.subID(t) != s.ID {
			t.Errorf("state %s does not name subscription %s", hh.state, s.ID)
		}
		// Graph's answer is authoritative; renew_at comes before it.
		at, err := time.Parse(time.RFC3339, res.RenewAt)
		if err != nil || !at.Before(s.ExpirationDateTime) || s.ExpirationDateTime.Sub(at) > time.Hour+time.Second {
			t.Errorf("renew_at %q for expiration %v", res.RenewAt, s.ExpirationDateTime)
		}
		if d := time.Until(s.ExpirationDateTime); d < 6*24*time.Hour || d > graphfake.MaxMessageSubscription {
			t.Errorf("expiration %v ahead, want just under Graph's maximum", d)
		}
		// The validation handshake reached receive before the 201 and was echoed.
		ds := fake.Deliveries()
		if len(ds) != 1 || ds[0].Kind != "validation" || ds[0].Status != 200 {
			t.Fatalf("deliveries = %+v", ds)
		}
		r, _ := hh.last()
		if len(r.Events) != 0 || r.Response == nil || !strings.HasPrefix(r.Response.Headers["Content-Type"], "text/plain") {
			t.Errorf("the handshake's receive = %+v", r)
		}
	}
}

func TestMessageReceivedValidationTokenIsEchoed(t *testing.T) {
	h := hookHarness(t, graphfake.New(t), "")
	tok := "Validation: Testing client application reachability <b>&'"
	res, e := h.Webhook(abi.WebhookRequest{Op: abi.WebhookReceive, Trigger: "message_received", Params: json.RawMessage(`{}`), Secret: hookSecret,
		Request: &abi.InboundRequest{Method: "POST", Path: "/hooks/x", Query: map[string]string{"validationToken": tok}}})
	if e != nil {
		t.Fatal(e)
	}
	if r := res.Response; r == nil || r.Status != 200 || r.Body != tok || !strings.HasPrefix(r.Headers["Content-Type"], "text/plain") || len(res.Events) != 0 {
		t.Fatalf("receive = %+v", res)
	}
}

func TestMessageReceivedRefusesForgedNotifications(t *testing.T) {
	fake := graphfake.New(t)
	h := hookHarness(t, fake, "")
	hh := newHookHost(t, h, `{}`)
	hh.step(t, abi.WebhookSubscribe)
	id := hh.subID(t)
	forged := func(clientState, subID string) map[string]any {
		return map[string]any{"subscriptionId": subID, "clientState": clientState, "changeType": "created",
			"resource": "Users/x/Messages/m1", "resourceData": map[string]any{"id": "m1"}, "tenantId": graphfake.TenantID}
	}
	for name, items := range map[string][]any{
		"a wrong clientState":      {forged("guess", id)},
		"no clientState":           {forged("", id)},
		"a batch of forgeries":     {forged("a", id), forged("b", id)},
		"a lifecycle notification": {map[string]any{"subscriptionId": id, "clientState": "nope", "lifecycleEvent": "subscriptionRemoved"}},
	} {
		body, _ := json.Marshal(map[string]any{"value": items})
		status, err := fake.ForgeNotification(hh.URL+"/hooks/tok", body)
		if err != nil || status != 401 {
			t.Errorf("%s: answered %d %v, want 401", name, status, err)
			continue
		}
		if r, _ := hh.last(); len(r.Events) != 0 || r.RenewAt != "" {
			t.Errorf("%s: receive = %+v, want no events", name, r)
		}
	}
	// The right clientState from a subscription the state does not name yet (the one renew
	// creates after subscriptionRemoved) is accepted.
	body, _ := json.Marshal(map[string]any{"value": []any{forged(hookSecret, "its-replacement")}})
	if status, err := fake.ForgeNotification(hh.URL+"/hooks/tok", body); err != nil || status != 202 {
		t.Errorf("a notification of the replacing subscription answered %d %v, want 202", status, err)
	}
	warned := false
	for _, l := range h.Logs() {
		warned = warned || strings.HasPrefix(strings.ToLower(l), "warn: message_received: notification")
	}
	if !warned {
		t.Error("no WARN line for the forged notifications")
	}
}

func TestMessageReceivedLifecycleAsksForARenewal(t *testing.T) {
	for _, ev := range []string{"reauthorizationRequired", "subscriptionRemoved"} {
		fake := graphfake.New(t)
		h := hookHarness(t, fake, "")
		hh := newHookHost(t, h, `{}`)
		hh.step(t, abi.WebhookSubscribe)
		before := time.Now().Add(-time.Second)
		status, err := fake.SendLifecycle(hh.subID(t), ev)
		if err != nil || status != 202 {
			t.Fatalf("%s answered %d %v", ev, status, err)
		}
		r, _ := hh.last()
		at, err := time.Parse(time.RFC3339, r.RenewAt)
		if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) || len(r.Events) != 0 {
			t.Fatalf("%s: receive = %+v, want renew_at now", ev, r)
		}
		// The renewal the host then runs: a PATCH that reauthorizes, or a new subscription.
		old := hh.subID(t)
		hh.step(t, abi.WebhookRenew)
		subs := fake.Subscriptions()
		if len(subs) != 1 {
			t.Fatalf("%s: subscriptions after renew = %+v", ev, subs)
		}
		switch ev {
		case "reauthorizationRequired":
			if subs[0].ID != old || subs[0].Renewed != 1 {
				t.Errorf("reauthorizationRequired: renew did not PATCH %s: %+v", old, subs[0])
			}
		case "subscriptionRemoved":
			if subs[0].ID == old || hh.subID(t) != subs[0].ID {
				t.Errorf("subscriptionRemoved: renew did not create a new subscription: %+v, state %s", subs, hh.state)
			}
		}
	}
}

func TestMessageReceivedRenewAndUnsubscribe(t *testing.T) {
	fake := graphfake.New(t)
	fake.SetMaxExpiration(time.Minute)
	h := hookHarness(t, fake, "")
	hh := newHookHost(t, h, `{}`)
	first := hh.step(t, abi.WebhookSubscribe)
	id := hh.subID(t)
	exp := fake.Subscriptions()[0].ExpirationDateTime
	at, _ := time.Parse(time.RFC3339, first.RenewAt)
	// A minute's lifetime renews 12 s before the end (a fifth).
	if d := exp.Sub(at); d < 10*time.Second || d > 14*time.Second {
		t.Errorf("renew_at is %v before the expiration, want 12 s", d)
	}
	time.Sleep(1100 * time.Millisecond)
	res := hh.step(t, abi.WebhookRenew)
	subs := fake.Subscriptions()
	if len(subs) != 1 || subs[0].ID != id || subs[0].Renewed != 1 || !subs[0].ExpirationDateTime.After(exp) {
		t.Fatalf("after renew: %+v (expiration was %v)", subs, exp)
	}
	if res.RenewAt == "" || fake.CountRequests("PATCH", "/subscriptions/"+id) != 1 {
		t.Fatalf("renew = %+v", res)
	}
	// Deleted upstream: renew creates a new one.
	req, _ := http.NewRequest("DELETE", fake.URL+"/v1.0/subscriptions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+graphfake.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("deleting upstream: %v %v", resp, err)
	}
	hh.step(t, abi.WebhookRenew)
	subs = fake.Subscriptions()
	if len(subs) != 1 || subs[0].ID == id || hh.subID(t) != subs[0].ID {
		t.Fatalf("renew after a 404 did not recreate: %+v", subs)
	}
	// Unsubscribe deletes it, and a second unsubscribe (404) is done too.
	for range 2 {
		if _, e := h.Webhook(abi.WebhookRequest{Op: abi.WebhookUnsubscribe, Trigger: "message_received", Params: json.RawMessage(`{}`), State: hh.state}); e != nil {
			t.Fatal(e)
		}
	}
	if n := len(fake.Subscriptions()); n != 0 {
		t.Fatalf("%d subscriptions after unsubscribe", n)
	}
	for k := range h.KV() {
		if strings.HasPrefix(k, "message_received/delta/") {
			t.Errorf("kv key %s left after unsubscribe", k)
		}
	}
}

// hookNotification is Graph's created notification of message msgID.
func hookNotification(subID, clientState, msgID string) map[string]any {
	res := "Users/" + graphfake.UserID + "/Messages/" + msgID
	return map[string]any{"subscriptionId": subID, "clientState": clientState, "changeType": "created", "resource": res,
		"resourceData": map[string]any{"@odata.type": "#Microsoft.Graph.Message", "@odata.id": res, "id": msgID}, "tenantId": graphfake.TenantID}
}

// hookEvents returns the events of every receive so far, in order.
func (hh *hookHost) events() []abi.Event {
	hh.mu.Lock()
	defer hh.mu.Unlock()
	var out []abi.Event
	for _, r := range hh.results {
		out = append(out, r.Events...)
	}
	return out
}

func TestMessageReceivedNotificationsBecomeEvents(t *testing.T) {
	fake := graphfake.New(t)
	h := hookHarness(t, fake, "")
	hh := newHookHost(t, h, `{}`)
	hh.step(t, abi.WebhookSubscribe)
	// Two messages close together: one batched notification with both.
	var a, b graphfake.Message
	fake.Batch(func() {
		a = fake.Deliver("inbox", graphfake.NewMessage{Subject: "hello", From: "alex@contoso.example"})
		b = fake.Deliver("inbox", graphfake.NewMessage{Subject: "again"})
		fake.Deliver("archive", graphfake.NewMessage{Subject: "elsewhere"})
	})
	r, status := hh.last()
	if status != 202 || len(r.Events) != 2 {
		t.Fatalf("receive = %d %+v, want 202 with two events", status, r)
	}
	for i, want := range []graphfake.Message{a, b} {
		ev := r.Events[i]
		var m Message
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			t.Fatal(err)
		}
		at, _ := time.Parse(time.RFC3339Nano, ev.Time)
		wantAt, _ := time.Parse(time.RFC3339Nano, want.ReceivedDateTime)
		if ev.ID != want.ID || ev.Type != "created" || !at.Equal(wantAt) || m.ID != want.ID || m.Subject != want.Subject {
			t.Errorf("event %d = %+v, want message %s %q", i, ev, want.ID, want.Subject)
		}
	}
	if m := string(r.Events[0].Data); !strings.Contains(m, "alex@contoso.example") {
		t.Errorf("the event's data lacks the sender: %s", m)
	}
	// Fetched with new_message's fields.
	fetched := false
	for _, rq := range h.Requests() {
		fetched = fetched || strings.Contains(rq.URL, "/me/messages/"+a.ID+"?%24select=")
	}
	if !fetched {
		t.Errorf("no GET of the message with $select")
	}

	// A batch with one forged item keeps the valid ones; a message that is gone is skipped.
	id := hh.subID(t)
	c := fake.Deliver("junkemail", graphfake.NewMessage{Subject: "not watched, but notified by hand"})
	body, _ := json.Marshal(map[string]any{"value": []any{hookNotification(id, "forged", a.ID),
		hookNotification(id, hookSecret, "AAMkGone"), hookNotification(id, hookSecret, c.ID)}})
	status, err := fake.ForgeNotification(hh.URL+"/hooks/tok", body)
	if err != nil || status != 202 {
		t.Fatalf("mixed batch answered %d %v, want 202", status, err)
	}
	if r, _ := hh.last(); len(r.Events) != 1 || r.Events[0].ID != c.ID {
		t.Fatalf("mixed batch = %+v, want only %s", r.Events, c.ID)
	}
}

func TestMessageReceivedMissedCatchesUpWithDelta(t *testing.T) {
	fake := graphfake.New(t)
	fake.Deliver("inbox", graphfake.NewMessage{Subject: "before the subscription"})
	h := hookHarness(t, fake, "")
	hh := newHookHost(t, h, `{}`)
	hh.step(t, abi.WebhookSubscribe)
	id := hh.subID(t)
	if _, ok := h.KV()[deltaKey(id)]; !ok {
		t.Fatalf("no delta link stored at subscribe: %v", h.KV())
	}
	fake.PauseNotifications(true)
	a := fake.Deliver("inbox", graphfake.NewMessage{Subject: "missed one"})
	b := fake.Deliver("inbox", graphfake.NewMessage{Subject: "missed two"})
	fake.PauseNotifications(false)
	if len(hh.events()) != 0 {
		t.Fatal("a paused notification arrived")
	}
	if status, err := fake.SendLifecycle(id, "missed"); err != nil || status != 202 {
		t.Fatalf("missed answered %d %v", status, err)
	}
	r, _ := hh.last()
	if len(r.Events) != 2 || r.Events[0].ID != a.ID || r.Events[1].ID != b.ID {
		t.Fatalf("events = %+v, want the two missed messages", r.Events)
	}
	// The link moved on: a second missed finds only what came after.
	fake.PauseNotifications(true)
	c := fake.Deliver("inbox", graphfake.NewMessage{Subject: "third"})
	fake.PauseNotifications(false)
	fake.SendLifecycle(id, "missed")
	if r, _ := hh.last(); len(r.Events) != 1 || r.Events[0].ID != c.ID {
		t.Fatalf("second catch-up = %+v, want %s only", r.Events, c.ID)
	}
}

func TestMessageReceivedRefusesABadFolder(t *testing.T) {
	fake := graphfake.New(t)
	h := hookHarness(t, fake, "")
	_, e := h.Webhook(abi.WebhookRequest{Op: abi.WebhookSubscribe, Trigger: "message_received", Params: json.RawMessage(`{"folder":"in')/x"}`),
		CallbackURL: "http://127.0.0.1:1/hooks/tok", Secret: hookSecret})
	if e == nil || e.Code != abi.CodeInvalidInput || !strings.Contains(e.Message, "folder") {
		t.Fatalf("subscribe = %+v, want invalid_input naming the folder", e)
	}
	if n := len(fake.Subscriptions()); n != 0 {
		t.Fatalf("%d subscriptions after a refused folder", n)
	}
}
