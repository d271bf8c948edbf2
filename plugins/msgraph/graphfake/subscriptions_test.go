package graphfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// subEndpoint is a client's notification endpoint: it answers the validation handshake as
// answer says and records the notifications it receives.
type subEndpoint struct {
	*httptest.Server
	mu     sync.Mutex
	answer func(w http.ResponseWriter, token string)
	bodies [][]byte
}

func newSubEndpoint(t *testing.T) *subEndpoint {
	e := &subEndpoint{answer: func(w http.ResponseWriter, token string) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(token))
	}}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			e.mu.Lock()
			a := e.answer
			e.mu.Unlock()
			a(w, tok)
			return
		}
		b, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.bodies = append(e.bodies, b)
		e.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *subEndpoint) setAnswer(a func(w http.ResponseWriter, token string)) {
	e.mu.Lock()
	e.answer = a
	e.mu.Unlock()
}

// received returns the notification collections received, decoded.
func (e *subEndpoint) received(t *testing.T) [][]map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out [][]map[string]any
	for _, b := range e.bodies {
		var c struct {
			Value []map[string]any `json:"value"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("a notification body is not a collection: %s", b)
		}
		out = append(out, c.Value)
	}
	return out
}

// subCall sends an authorized request to the fake and returns the status and decoded body.
func subCall(t *testing.T, f *Fake, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.URL+"/v1.0"+path, rd)
	req.Header.Set("Authorization", "Bearer "+Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func subErr(doc map[string]any) string {
	e, _ := doc["error"].(map[string]any)
	return e["code"].(string) + ": " + e["message"].(string)
}

func subBody(u string, exp time.Time) map[string]any {
	return map[string]any{"changeType": "created", "notificationUrl": u, "lifecycleNotificationUrl": u,
		"resource": "me/mailFolders('inbox')/messages", "expirationDateTime": exp.UTC().Format(time.RFC3339),
		"clientState": "s3cret", "latestSupportedTlsVersion": "v1_2"}
}

func TestSubscriptionHandshakeComesBeforeTheSubscription(t *testing.T) {
	f := New(t)
	e := newSubEndpoint(t)
	var seenDuring []Subscription
	e.setAnswer(func(w http.ResponseWriter, token string) {
		seenDuring = f.Subscriptions()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(token))
	})
	status, doc := subCall(t, f, "POST", "/subscriptions", subBody(e.URL, time.Now().Add(24*time.Hour)))
	if status != 201 {
		t.Fatalf("create = %d %v", status, doc)
	}
	if len(seenDuring) != 0 {
		t.Errorf("the subscription existed during its validation: %v", seenDuring)
	}
	for _, k := range []string{"id", "resource", "applicationId", "changeType", "clientState", "notificationUrl", "lifecycleNotificationUrl", "expirationDateTime", "creatorId", "latestSupportedTlsVersion"} {
		if doc[k] == nil || doc[k] == "" {
			t.Errorf("the subscription document has no %s: %v", k, doc)
		}
	}
	ds := f.Deliveries()
	// The same URL for both: one validation.
	if len(ds) != 1 || ds[0].Kind != "validation" || ds[0].Status != 200 || !strings.Contains(ds[0].URL, "validationToken=") || len(ds[0].Body) != 0 {
		t.Fatalf("deliveries = %+v, want one validation answered 200", ds)
	}
	if subs := f.Subscriptions(); len(subs) != 1 || subs[0].ClientState != "s3cret" || subs[0].ID != doc["id"] {
		t.Fatalf("subscriptions = %+v", subs)
	}
}

func TestSubscriptionHandshakeFailures(t *testing.T) {
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter, token string)
	}{
		{"a wrong body", func(w http.ResponseWriter, token string) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("not " + token))
		}},
		{"an encoded token", func(w http.ResponseWriter, token string) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(strings.ReplaceAll(token, " ", "%20")))
		}},
		{"a status that is not 200", func(w http.ResponseWriter, token string) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(202)
			w.Write([]byte(token))
		}},
		{"a JSON content type", func(w http.ResponseWriter, token string) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(token))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := New(t)
			e := newSubEndpoint(t)
			e.setAnswer(c.answer)
			status, doc := subCall(t, f, "POST", "/subscriptions", subBody(e.URL, time.Now().Add(time.Hour)))
			if status != 400 || !strings.Contains(subErr(doc), "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.") {
				t.Fatalf("create = %d %v, want 400 validation failed", status, doc)
			}
			if len(f.Subscriptions()) != 0 {
				t.Fatal("a subscription exists after a failed validation")
			}
		})
	}
	t.Run("a different lifecycle URL is validated too", func(t *testing.T) {
		f := New(t)
		good, bad := newSubEndpoint(t), newSubEndpoint(t)
		bad.setAnswer(func(w http.ResponseWriter, _ string) { w.WriteHeader(500) })
		body := subBody(good.URL, time.Now().Add(time.Hour))
		body["lifecycleNotificationUrl"] = bad.URL
		if status, doc := subCall(t, f, "POST", "/subscriptions", body); status != 400 {
			t.Fatalf("create = %d %v, want 400", status, doc)
		}
		if n := len(f.Deliveries()); n != 2 {
			t.Fatalf("%d validations, want 2", n)
		}
	})
}

func TestSubscriptionHandshakeTimeout(t *testing.T) {
	f := New(t)
	e := newSubEndpoint(t)
	release := make(chan struct{})
	defer close(release)
	e.setAnswer(func(w http.ResponseWriter, token string) {
		select {
		case <-release:
		case <-time.After(12 * time.Second):
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(token))
	})
	start := time.Now()
	status, doc := subCall(t, f, "POST", "/subscriptions", subBody(e.URL, time.Now().Add(time.Hour)))
	if status != 400 || time.Since(start) > 11500*time.Millisecond {
		t.Fatalf("create = %d %v after %v, want 400 after 10 s", status, doc, time.Since(start))
	}
	if d := f.Deliveries(); len(d) != 1 || d[0].Err == "" {
		t.Fatalf("deliveries = %+v, want one that timed out", d)
	}
}

func TestSubscriptionValidation(t *testing.T) {
	f := New(t)
	e := newSubEndpoint(t)
	now := time.Now()
	cases := []struct {
		name   string
		edit   func(map[string]any)
		status int
		want   string
	}{
		{"an expiration beyond Graph's maximum", func(b map[string]any) {
			b["expirationDateTime"] = now.Add(MaxMessageSubscription + time.Hour).UTC().Format(time.RFC3339)
		}, 400, "Subscription expiration can only be 10080 minutes in the future."},
		{"an expiration in the past", func(b map[string]any) {
			b["expirationDateTime"] = now.Add(-time.Minute).UTC().Format(time.RFC3339)
		}, 400, "must be in the future"},
		{"no changeType", func(b map[string]any) { delete(b, "changeType") }, 400, "'changeType' is required"},
		{"an unknown changeType", func(b map[string]any) { b["changeType"] = "created,moved" }, 400, "Invalid changeType"},
		{"no notificationUrl", func(b map[string]any) { delete(b, "notificationUrl") }, 400, "'notificationUrl' is required"},
		{"a resource the fake does not know", func(b map[string]any) { b["resource"] = "me/events" }, 400, "not supported"},
		{"another user's mailbox", func(b map[string]any) { b["resource"] = "users/someone-else/messages" }, 404, "ErrorInvalidUser"},
		{"a clientState over 128 characters", func(b map[string]any) { b["clientState"] = strings.Repeat("x", 129) }, 400, "128 characters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := subBody(e.URL, now.Add(time.Hour))
			c.edit(b)
			status, doc := subCall(t, f, "POST", "/subscriptions", b)
			if status != c.status || !strings.Contains(subErr(doc), c.want) {
				t.Fatalf("create = %d %v, want %d %q", status, doc, c.status, c.want)
			}
		})
	}
	t.Run("the user's UPN and me/messages are accepted", func(t *testing.T) {
		b := subBody(e.URL, now.Add(time.Hour))
		b["resource"] = "users/" + UserPrincipalName + "/messages"
		if status, doc := subCall(t, f, "POST", "/subscriptions", b); status != 201 {
			t.Fatalf("create = %d %v", status, doc)
		}
	})
	t.Run("an expiration under 45 minutes is raised to 45 minutes", func(t *testing.T) {
		status, doc := subCall(t, f, "POST", "/subscriptions", subBody(e.URL, time.Now().Add(time.Minute)))
		if status != 201 {
			t.Fatalf("create = %d %v", status, doc)
		}
		exp, _ := time.Parse(time.RFC3339Nano, doc["expirationDateTime"].(string))
		if d := time.Until(exp); d < 44*time.Minute || d > 46*time.Minute {
			t.Fatalf("granted %v ahead, want 45 minutes", d)
		}
	})
}

func TestSubscriptionRenewExpiryAndDelete(t *testing.T) {
	f := New(t)
	e := newSubEndpoint(t)
	f.SetMaxExpiration(1500 * time.Millisecond)
	status, doc := subCall(t, f, "POST", "/subscriptions", subBody(e.URL, time.Now().Add(24*time.Hour)))
	if status != 201 {
		t.Fatalf("create = %d %v", status, doc)
	}
	id := doc["id"].(string)
	exp, _ := time.Parse(time.RFC3339Nano, doc["expirationDateTime"].(string))
	if d := time.Until(exp); d > 1500*time.Millisecond {
		t.Fatalf("SetMaxExpiration did not clamp: %v ahead", d)
	}
	// PATCH renews, with the same maximum check.
	if status, doc := subCall(t, f, "PATCH", "/subscriptions/"+id, map[string]any{"expirationDateTime": time.Now().Add(MaxMessageSubscription + time.Hour).UTC().Format(time.RFC3339)}); status != 400 {
		t.Fatalf("PATCH beyond the maximum = %d %v", status, doc)
	}
	time.Sleep(700 * time.Millisecond)
	status, doc = subCall(t, f, "PATCH", "/subscriptions/"+id, map[string]any{"expirationDateTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	if status != 200 {
		t.Fatalf("PATCH = %d %v", status, doc)
	}
	renewed, _ := time.Parse(time.RFC3339Nano, doc["expirationDateTime"].(string))
	if !renewed.After(exp) {
		t.Fatalf("the renewal did not extend: %v then %v", exp, renewed)
	}
	if s := f.Subscriptions(); len(s) != 1 || s[0].Renewed != 1 {
		t.Fatalf("subscriptions = %+v, want one renewed once", s)
	}
	if status, _ := subCall(t, f, "POST", "/subscriptions/"+id+"/reauthorize", nil); status != 204 {
		t.Fatalf("reauthorize = %d", status)
	}
	// Expiry is enforced: after the granted time the subscription is gone.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && len(f.Subscriptions()) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	if status, doc := subCall(t, f, "GET", "/subscriptions/"+id, nil); status != 404 || !strings.HasPrefix(subErr(doc), "ResourceNotFound") {
		t.Fatalf("GET of an expired subscription = %d %v", status, doc)
	}
	for _, m := range []string{"PATCH", "DELETE"} {
		if status, _ := subCall(t, f, m, "/subscriptions/"+id, map[string]any{"expirationDateTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}); status != 404 {
			t.Fatalf("%s of an expired subscription = %d", m, status)
		}
	}
	// DELETE of a live one.
	f.SetMaxExpiration(0)
	_, doc = subCall(t, f, "POST", "/subscriptions", subBody(e.URL, time.Now().Add(time.Hour)))
	id = doc["id"].(string)
	if status, doc := subCall(t, f, "GET", "/subscriptions", nil); status != 200 || len(doc["value"].([]any)) != 1 {
		t.Fatalf("list = %d %v", status, doc)
	}
	if status, _ := subCall(t, f, "DELETE", "/subscriptions/"+id, nil); status != 204 {
		t.Fatalf("DELETE = %d", status)
	}
	if status, _ := subCall(t, f, "DELETE", "/subscriptions/"+id, nil); status != 404 {
		t.Fatalf("second DELETE = %d", status)
	}
}

func TestSubscriptionNotificationsAreBatched(t *testing.T) {
	f := New(t)
	inbox, all := newSubEndpoint(t), newSubEndpoint(t)
	_, a := subCall(t, f, "POST", "/subscriptions", subBody(inbox.URL, time.Now().Add(time.Hour)))
	b := subBody(all.URL, time.Now().Add(time.Hour))
	b["resource"], b["clientState"] = "users/"+UserID+"/messages", "other"
	_, other := subCall(t, f, "POST", "/subscriptions", b)

	f.Batch(func() {
		f.messageCreated("AAMkInboxId", "inbox", "msg-1")
		f.messageCreated("AAMkInboxId", "inbox", "msg-2")
		f.messageCreated("AAMkArchiveId", "archive", "msg-3")
	})
	got := inbox.received(t)
	if len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("the inbox endpoint got %v, want one collection of 2", got)
	}
	n := got[0][1]
	rd := n["resourceData"].(map[string]any)
	if n["subscriptionId"] != a["id"] || n["clientState"] != "s3cret" || n["changeType"] != "created" || n["tenantId"] != TenantID ||
		n["resource"] != "Users/"+UserID+"/Messages/msg-2" || rd["id"] != "msg-2" || rd["@odata.type"] != "#Microsoft.Graph.Message" ||
		n["subscriptionExpirationDateTime"] == nil {
		t.Fatalf("notification = %v", n)
	}
	if g := all.received(t); len(g) != 1 || len(g[0]) != 3 || g[0][2]["subscriptionId"] != other["id"] || g[0][2]["clientState"] != "other" {
		t.Fatalf("the all-messages endpoint got %v, want one collection of 3", g)
	}
	// Outside a batch: one notification each; paused: none.
	f.messageCreated("AAMkInboxId", "inbox", "msg-4")
	f.PauseNotifications(true)
	f.messageCreated("AAMkInboxId", "inbox", "msg-5")
	f.PauseNotifications(false)
	if got := inbox.received(t); len(got) != 2 || got[1][0]["resourceData"].(map[string]any)["id"] != "msg-4" {
		t.Fatalf("the inbox endpoint got %v", got)
	}
	notes := 0
	for _, d := range f.Deliveries() {
		if d.Kind == "notification" {
			notes++
			if d.Status != 202 {
				t.Errorf("a delivery recorded status %d, want 202", d.Status)
			}
		}
	}
	if notes != 4 {
		t.Fatalf("%d notification deliveries recorded, want 4", notes)
	}
}

func TestSubscriptionLifecycleNotifications(t *testing.T) {
	f := New(t)
	e := newSubEndpoint(t)
	_, doc := subCall(t, f, "POST", "/subscriptions", subBody(e.URL, time.Now().Add(time.Hour)))
	id := doc["id"].(string)
	for _, ev := range []string{"reauthorizationRequired", "missed", "subscriptionRemoved"} {
		status, err := f.SendLifecycle(id, ev)
		if err != nil || status != 202 {
			t.Fatalf("%s: %d %v", ev, status, err)
		}
	}
	got := e.received(t)
	if len(got) != 3 {
		t.Fatalf("received %v", got)
	}
	for i, ev := range []string{"reauthorizationRequired", "missed", "subscriptionRemoved"} {
		n := got[i][0]
		if n["lifecycleEvent"] != ev || n["subscriptionId"] != id || n["clientState"] != "s3cret" || n["tenantId"] != TenantID {
			t.Errorf("lifecycle notification %d = %v", i, n)
		}
	}
	if len(f.Subscriptions()) != 0 {
		t.Fatal("subscriptionRemoved did not remove the subscription")
	}
	if _, err := f.SendLifecycle(id, "missed"); err == nil {
		t.Fatal("a lifecycle notification of a removed subscription was sent")
	}
	if _, err := f.SendLifecycle(id, "exploded"); err == nil {
		t.Fatal("an unknown lifecycle event was accepted")
	}
	if status, err := f.ForgeNotification(e.URL, []byte(`{"value":[]}`)); err != nil || status != 202 {
		t.Fatalf("forge = %d %v", status, err)
	}
	if d := f.Deliveries(); d[len(d)-1].Kind != "forged" {
		t.Fatalf("last delivery = %+v", d[len(d)-1])
	}
}
