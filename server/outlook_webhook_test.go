package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

func outlookIDs(evs []map[string]any) string {
	var ids []string
	for _, e := range evs {
		ids = append(ids, e["source_event_id"].(string))
	}
	return strings.Join(ids, ",")
}

// message_received end to end: the Graph subscription is created through the real server,
// whose hook URL answers Graph's validation before the 201; notifications become events for a
// queue and a push subscriber; forgeries are refused; lifecycle notifications lead to a
// reauthorizing PATCH, a new subscription, and a delta catch-up; short lifetimes are renewed,
// also after a restart; the last subscriber's DELETE deletes the Graph subscription.
func TestOutlookMessageReceivedEndToEnd(t *testing.T) {
	oa := startOAuthServer(t)
	fake := graphfake.New(t, graphfake.Options{ValidToken: oa.Valid})
	ts := startPublicServer(t, func(o *Options) { o.Triggers.Tick = 50 * time.Millisecond })
	e := &oauthEnv{testServer: ts, oa: oa}
	e.must(201, e.upload("outlook"))
	doc := e.must(201, e.do("POST", "/v1/connections", map[string]any{
		"id": "m365", "connectors": []string{"outlook"}, "params": map[string]any{"base_url": fake.URL},
		"auth": map[string]any{"type": "oauth2", "client_id": oauthClientID, "client_secret": oauthClientSecret,
			"authorization_url": oa.Issuer + "/authorize", "token_url": oa.Issuer + "/token"},
	})).json(t)
	if _, r := e.consent(doc["consent_url"].(string)); r.Status != 200 {
		t.Fatalf("consent: %d %s", r.Status, r.Body)
	}

	sub := map[string]any{"connector": "outlook", "trigger": "message_received", "connection": "m365", "params": map[string]any{}}
	sub["delivery"] = map[string]any{"type": "queue"}
	q := e.must(201, e.do("POST", "/v1/subscriptions", sub)).json(t)["id"].(string)
	subs := fake.Subscriptions()
	if len(subs) != 1 || !strings.HasPrefix(subs[0].NotificationURL, ts.opts.PublicURL+"/hooks/") || subs[0].Resource != "me/mailFolders('inbox')/messages" {
		t.Fatalf("Graph subscriptions = %+v", subs)
	}
	if d := fake.Deliveries(); len(d) != 1 || d[0].Kind != "validation" || d[0].Status != 200 || !strings.HasPrefix(d[0].URL, subs[0].NotificationURL+"?validationToken=") {
		t.Fatalf("deliveries = %+v, want the validation through /hooks/{token}", d)
	}
	rc := newReceiver(t)
	sub["delivery"] = map[string]any{"type": "webhook", "url": rc.URL}
	push := e.must(201, e.do("POST", "/v1/subscriptions", sub)).json(t)
	rc.setSecret(push["signing_secret"].(string))
	if n := len(fake.Subscriptions()); n != 1 {
		t.Fatalf("%d Graph subscriptions for two subscribers of one source, want 1", n)
	}

	// A notification becomes the message's event, for both subscribers.
	m1 := fake.Deliver("inbox", graphfake.NewMessage{Subject: "first", From: "alex@contoso.example"})
	if d := fake.Deliveries(); d[len(d)-1].Kind != "notification" || d[len(d)-1].Status != 202 {
		t.Fatalf("the notification was answered %+v", d[len(d)-1])
	}
	got := e.drain(q, 1, 10*time.Second)
	data, _ := got[0]["data"].(map[string]any)
	if got[0]["type"] != "outlook.message_received" || got[0]["event_type"] != "created" || got[0]["source_event_id"] != m1.ID || data["subject"] != "first" {
		t.Fatalf("event = %v", got[0])
	}
	eventually(t, 10*time.Second, "the push subscriber to get the message", func() bool { return len(rc.events()) == 1 })

	// A forgery is refused, and produces nothing.
	s := fake.Subscriptions()[0]
	forged, _ := json.Marshal(map[string]any{"value": []any{map[string]any{"subscriptionId": s.ID, "clientState": "guessed", "changeType": "created",
		"resourceData": map[string]any{"id": m1.ID}}}})
	if status, err := fake.ForgeNotification(s.NotificationURL, forged); err != nil || status != 401 {
		t.Fatalf("the forgery was answered %d %v, want 401", status, err)
	}
	if evs := e.pull(q, "max=10&wait_s=1"); len(evs) != 0 {
		t.Fatalf("a forgery produced events: %v", evs)
	}

	// reauthorizationRequired: the host renews at once, a PATCH that reauthorizes.
	if status, err := fake.SendLifecycle(s.ID, "reauthorizationRequired"); err != nil || status != 202 {
		t.Fatalf("reauthorizationRequired answered %d %v", status, err)
	}
	eventually(t, 10*time.Second, "a PATCH of the subscription", func() bool { return fake.CountRequests("PATCH", "/subscriptions/"+s.ID) == 1 })

	// subscriptionRemoved: renew finds it gone and creates a new one; events keep flowing.
	if status, err := fake.SendLifecycle(s.ID, "subscriptionRemoved"); err != nil || status != 202 {
		t.Fatalf("subscriptionRemoved answered %d %v", status, err)
	}
	eventually(t, 10*time.Second, "a new Graph subscription", func() bool {
		l := fake.Subscriptions()
		return len(l) == 1 && l[0].ID != s.ID
	})
	// Graph notifies the new subscription at once, maybe before the host has stored its state:
	// the clientState is what the plugin checks, so the notification is accepted either way.
	m2 := fake.Deliver("inbox", graphfake.NewMessage{Subject: "second"})
	if d := fake.Deliveries(); d[len(d)-1].Kind != "notification" || d[len(d)-1].Status != 202 {
		t.Fatalf("the new subscription's first notification: %+v", d[len(d)-1])
	}
	if got := e.drain(q, 1, 10*time.Second); outlookIDs(got) != m2.ID {
		t.Fatalf("after the new subscription: %s", outlookIDs(got))
	}

	// missed: messages whose notifications were lost are caught up with the delta link.
	s = fake.Subscriptions()[0]
	fake.PauseNotifications(true)
	m3 := fake.Deliver("inbox", graphfake.NewMessage{Subject: "third, missed"})
	m4 := fake.Deliver("inbox", graphfake.NewMessage{Subject: "fourth, missed"})
	if status, err := fake.SendLifecycle(s.ID, "missed"); err != nil || status != 202 {
		t.Fatalf("missed answered %d %v", status, err)
	}
	fake.PauseNotifications(false)
	if got := e.drain(q, 2, 10*time.Second); outlookIDs(got) != m3.ID+","+m4.ID {
		t.Fatalf("caught up %s, want msg-3 and msg-4", outlookIDs(got))
	}
	eventually(t, 10*time.Second, "the push subscriber to get all four", func() bool { return len(rc.events()) == 4 })

	// Short lifetimes: renewals (PATCH) keep the subscription alive, also after a restart.
	fake.SetMaxExpiration(3 * time.Second)
	fake.SendLifecycle(s.ID, "reauthorizationRequired") // the next PATCH grants 3 s
	patches := func() int { return fake.CountRequests("PATCH", "/subscriptions/") }
	before := patches()
	eventually(t, 15*time.Second, "renewals of a 3 s subscription", func() bool { return patches() >= before+3 })
	ts2 := ts.restart()
	before = patches()
	eventually(t, 15*time.Second, "renewals after the restart", func() bool { return patches() >= before+2 })
	if l := fake.Subscriptions(); len(l) != 1 || l[0].ID != s.ID {
		t.Fatalf("after renewals: %+v, want %s alive", l, s.ID)
	}

	// The last subscriber's DELETE deletes the Graph subscription.
	ts2.must(204, ts2.do("DELETE", "/v1/subscriptions/"+q, nil))
	if fake.CountRequests("DELETE", "/subscriptions/") != 0 {
		t.Fatal("the Graph subscription was deleted while a subscriber remained")
	}
	ts2.must(204, ts2.do("DELETE", "/v1/subscriptions/"+push["id"].(string), nil))
	eventually(t, 10*time.Second, "the Graph subscription to be deleted", func() bool {
		return fake.CountRequests("DELETE", "/subscriptions/"+s.ID) == 1 && len(fake.Subscriptions()) == 0
	})
}
