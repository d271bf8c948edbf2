package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Three push and three queue subscriptions with the same source share one poller: the upstream
// sees one poll per interval, and every subscription receives every new item exactly once, in
// order, as the plugin produced it. Items that existed before the baseline are not delivered.
func TestTriggerFanOutOnePollerPerSource(t *testing.T) {
	f := newFeed(t)
	f.add(3) // history: the baseline poll records it, nothing is delivered
	ts := triggerServer(t, f, nil)
	params := map[string]any{"page_size": 4}

	var pushes []*receiver
	var pushSubs, queueSubs []string
	source := ""
	for i := range 3 {
		rc := newReceiver(t)
		doc := ts.pushTo(rc, "items", params)
		pushes = append(pushes, rc)
		pushSubs = append(pushSubs, doc["id"].(string))
		q := ts.subscribe("items", params, map[string]any{"type": "queue"})
		if q["signing_secret"] != nil {
			t.Fatalf("a queue subscription got a signing secret")
		}
		queueSubs = append(queueSubs, q["id"].(string))
		for _, d := range []map[string]any{doc, q} {
			src := d["source"].(map[string]any)["id"].(string)
			if source == "" {
				source = src
			}
			if src != source {
				t.Fatalf("subscription %d has source %s, want the shared %s", i, src, source)
			}
		}
	}
	start := time.Now()
	startPolls := f.pollCount()

	var items []feedItem
	for range 3 {
		items = append(items, f.add(5)...) // 5 items with page_size 4: a poll with more: true
		time.Sleep(1200 * time.Millisecond)
	}
	for i, rc := range pushes {
		eventually(t, 20*time.Second, fmt.Sprintf("push subscriber %d to get %d events", i, len(items)), func() bool { return len(rc.events()) >= len(items) })
	}
	for i, sub := range queueSubs {
		checkEvents(t, sub, ts.drain(sub, len(items), 20*time.Second), items)
		if evs := ts.pull(sub, "max=100"); len(evs) != 0 {
			t.Fatalf("queue %d: %d more events after all were acked", i, len(evs))
		}
	}
	for i, rc := range pushes {
		checkEvents(t, pushSubs[i], rc.events(), items)
		if rc.bad != 0 {
			t.Fatalf("push subscriber %d got %d deliveries that did not verify", i, rc.bad)
		}
	}

	// One source, one poller: about one poll a second (plus one extra per page), not six.
	elapsed := time.Since(start)
	polls := f.pollCount() - startPolls
	maxPolls := int(elapsed.Seconds()/0.9) + 1 + 3
	if polls > maxPolls {
		t.Fatalf("%d upstream polls in %s for 6 subscriptions of one source; want at most %d (one per 1 s interval plus one per extra page)", polls, elapsed, maxPolls)
	}
	t.Logf("%d upstream polls in %s for 6 subscriptions", polls, elapsed.Round(time.Millisecond))

	doc := ts.must(200, ts.do("GET", "/v1/subscriptions/"+pushSubs[0], nil)).json(t)
	counts := doc["counts"].(map[string]any)
	if counts["delivered"].(float64) != float64(len(items)) || counts["pending"].(float64) != 0 || doc["last_polled_at"] == nil ||
		doc["last_event_at"] == nil || doc["last_error"] != nil || doc["source"].(map[string]any)["subscribers"].(float64) != 6 {
		t.Fatalf("subscription status = %v", doc)
	}
	if push := doc["push"].(map[string]any); push["last_status"].(float64) != 204 {
		t.Fatalf("push status = %v", push)
	}
	list := ts.must(200, ts.do("GET", "/v1/subscriptions", nil)).json(t)["subscriptions"].([]any)
	if len(list) != 6 {
		t.Fatalf("list has %d subscriptions, want 6", len(list))
	}
	metrics := string(ts.do("GET", "/metrics", nil).Body)
	for _, m := range []string{`plugboard_trigger_events_total{connector="trig",trigger="items"} 15`, `plugboard_subscription_pending_events{connector="trig",trigger="items"} 0`,
		`plugboard_deliveries_total{connector="trig",trigger="items",outcome="204"} 45`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// A failing poll keeps the cursor, backs off and shows in last_error; once the upstream
// recovers every item is delivered. A failing baseline creates nothing and answers 502.
func TestTriggerPollErrorsKeepTheCursor(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, func(o *Options) {
		// One upstream failure is one failed poll: no plugboard_http retries, no breaker.
		o.Host.Egress.Retry.MaxRetries = -1
		o.Host.Egress.Breaker.Failures = -1
	})

	f.mu.Lock()
	f.failAll = true
	f.mu.Unlock()
	r := ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
		"delivery": map[string]any{"type": "queue"}})
	if r.Status != http.StatusBadGateway || r.json(t)["source"] != "plugin" {
		t.Fatalf("baseline failure answered %d %s, want 502 from the plugin", r.Status, r.Body)
	}
	if list := ts.must(200, ts.do("GET", "/v1/subscriptions", nil)).json(t)["subscriptions"].([]any); len(list) != 0 {
		t.Fatalf("a failed baseline left %d subscriptions", len(list))
	}
	f.mu.Lock()
	f.failAll = false
	f.mu.Unlock()

	sub := ts.subscribe("items", nil, map[string]any{"type": "queue"})["id"].(string)
	f.mu.Lock()
	f.failNext = 2
	f.mu.Unlock()
	items := f.add(3)
	eventually(t, 20*time.Second, "last_error to show the failing poll", func() bool {
		doc := ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)
		le, _ := doc["last_error"].(map[string]any)
		return le != nil && le["code"] == "unavailable"
	})
	checkEvents(t, sub, ts.drain(sub, 3, 20*time.Second), items)
	doc := ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)
	if doc["last_error"] != nil {
		t.Fatalf("last_error = %v after a successful poll, want null", doc["last_error"])
	}
}

// Queue delivery: leases, redelivery after the lease with the same ids, ack counts, replay,
// long-polling, and the queue bound with its overflow status.
func TestTriggerQueueLeaseAckReplayAndBound(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, func(o *Options) {
		o.Triggers.LeaseFor = time.Second
		o.Triggers.MaxQueue = 5
	})
	t0 := time.Now().UTC()
	sub := ts.subscribe("items", nil, map[string]any{"type": "queue"})["id"].(string)
	items := f.add(3)
	eventually(t, 10*time.Second, "3 pending events", func() bool {
		return ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)["counts"].(map[string]any)["pending"].(float64) == 3
	})
	first := ts.pull(sub, "max=2")
	second := ts.pull(sub, "max=100")
	checkEvents(t, sub, append(first, second...), items)
	if evs := ts.pull(sub, "max=100"); len(evs) != 0 {
		t.Fatalf("leased events came back at once: %v", evs)
	}
	// Not acked: after the 1 s lease they come back, with the same ids.
	// The two pulls' leases end a moment apart, so the events may come back in two pulls.
	var again []map[string]any
	for i := 0; i < 5 && len(again) < 3; i++ {
		again = append(again, ts.pull(sub, "max=100&wait_s=5")...)
	}
	checkEvents(t, sub, again, items)
	if again[0]["id"] != first[0]["id"] {
		t.Fatalf("redelivered id %v, want the same %v", again[0]["id"], first[0]["id"])
	}
	ids := []string{again[0]["id"].(string), again[1]["id"].(string), again[2]["id"].(string)}
	if n := ts.ack(sub, append(ids, "evt_unknown_1")...); n != 3 {
		t.Fatalf("acked %d, want 3", n)
	}
	if n := ts.ack(sub, ids...); n != 0 {
		t.Fatalf("acking again counted %d, want 0", n)
	}

	// Long poll: a pull waiting for events returns when the next poll produces one.
	got := make(chan []map[string]any, 1)
	go func() { got <- ts.pull(sub, "max=10&wait_s=10") }()
	time.Sleep(100 * time.Millisecond)
	more := f.add(1)
	select {
	case evs := <-got:
		checkEvents(t, sub, evs, more)
		ts.ack(sub, evs[0]["id"].(string))
	case <-time.After(15 * time.Second):
		t.Fatal("long poll did not return")
	}

	// Replay re-enqueues stored events under their original ids.
	r := ts.must(200, ts.do("POST", "/v1/subscriptions/"+sub+"/replay", map[string]any{"since": t0.Format(time.RFC3339Nano)}))
	if n := r.json(t)["replayed"].(float64); n != 4 {
		t.Fatalf("replayed %v, want 4", n)
	}
	replayed := ts.drain(sub, 4, 10*time.Second)
	checkEvents(t, sub, replayed, append(items, more...))
	if replayed[0]["id"] != ids[0] {
		t.Fatalf("replayed id %v, want the original %v", replayed[0]["id"], ids[0])
	}

	// The bound: 5 pending at most; more are dropped for this subscription, counted, shown.
	f.add(8)
	eventually(t, 10*time.Second, "the queue to overflow", func() bool {
		doc := ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)
		return doc["status"] == "overflow"
	})
	doc := ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)
	c := doc["counts"].(map[string]any)
	if c["pending"].(float64) != 5 || c["dropped"].(float64) != 3 || !strings.Contains(doc["status_reason"].(string), "replay") || doc["lag_s"].(float64) <= 0 {
		t.Fatalf("overflowed subscription = %v", doc)
	}
	ts.drain(sub, 5, 10*time.Second)
	if doc := ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t); doc["status"] != "active" {
		t.Fatalf("status after draining = %v, want active", doc["status"])
	}
	if r := ts.do("GET", "/v1/subscriptions/"+sub+"/events?max=0", nil); r.Status != 400 {
		t.Fatalf("max=0 answered %d", r.Status)
	}
}

// Push retries follow the schedule and honour Retry-After; a 410 disables the subscription.
func TestTriggerPushRetriesAndGone(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, func(o *Options) {
		o.Triggers.RetrySchedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	})
	rc := newReceiver(t)
	rc.answer(500, 503)
	rc.retryAft = "1"
	sub := ts.pushTo(rc, "items", nil)["id"].(string)
	items := f.add(2)
	start := time.Now()
	eventually(t, 15*time.Second, "the deliveries after two failures", func() bool { return len(rc.events()) == 2 })
	if el := time.Since(start); el < 2*time.Second {
		t.Fatalf("delivered after %s: the receiver's Retry-After: 1 (twice) was not honoured", el)
	}
	checkEvents(t, sub, rc.events(), items)
	// The receiver saw the last delivery just before the server recorded it.
	var push map[string]any
	eventually(t, 5*time.Second, "4 attempts ending in 204", func() bool {
		push = ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)["push"].(map[string]any)
		return push["attempts"].(float64) == 4 && push["last_status"].(float64) == 204
	})

	// Retries exhausted: the event counts as failed and the queue moves on.
	rc.retryAft = ""
	rc.answer(500, 500, 500, 500)
	items = f.add(2)
	eventually(t, 15*time.Second, "the second item after the first one failed", func() bool { return len(rc.events()) == 3 })
	checkEvents(t, sub, rc.events()[2:], items[1:])
	eventually(t, 5*time.Second, "1 failed event", func() bool {
		c := ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)["counts"].(map[string]any)
		return c["failed"].(float64) == 1 && c["delivered"].(float64) == 3
	})

	rc.answer(410)
	f.add(1)
	eventually(t, 10*time.Second, "410 to disable the subscription", func() bool {
		return ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)["status"] == "disabled"
	})
	f.add(1)
	time.Sleep(1500 * time.Millisecond)
	if n := len(rc.events()); n != 3 {
		t.Fatalf("a disabled subscription got %d deliveries, want 3", n)
	}
}

// A webhook source: subscribed upstream at the first subscription (after the Graph-style
// handshake), events from inbound requests fanned out, forged signatures refused, renewal at
// renew_at, and one upstream unsubscribe when the last subscriber leaves.
func TestTriggerWebhookSourceLifecycle(t *testing.T) {
	f := newFeed(t)
	f.handshake = true
	ts := triggerServer(t, f, nil)
	params := map[string]any{"channel": "news", "renew_s": 1}
	rc1, rc2 := newReceiver(t), newReceiver(t)
	sub1 := ts.pushTo(rc1, "hook", params)["id"].(string)
	q := ts.subscribe("hook", params, map[string]any{"type": "queue"})["id"].(string)
	sub2 := ts.pushTo(rc2, "hook", params)["id"].(string)
	h := f.hook() // one upstream registration for three subscriptions
	if !strings.HasPrefix(h.Callback, ts.http.URL+"/hooks/") || h.Channel != "news" || len(h.Secret) < 20 {
		t.Fatalf("upstream registration = %+v", h)
	}

	items := []feedItem{{ID: "e1", Type: "posted", Time: "2026-11-28T09:00:01Z", Data: json.RawMessage(`{"text":"hello"}`)},
		{ID: "e2", Type: "edited", Time: "2026-11-28T09:00:02Z", Data: json.RawMessage(`{"text":"hello!"}`)}}
	if status, body := f.send(h, false, items...); status != 202 || body != "accepted" {
		t.Fatalf("inbound delivery answered %d %q, want the plugin's 202", status, body)
	}
	if status, _ := f.send(h, true, feedItem{ID: "forged", Data: json.RawMessage(`{}`)}); status != 401 {
		t.Fatalf("forged signature answered %d, want 401", status)
	}
	f.send(h, false, items[0]) // a redelivery by the upstream: deduplicated
	for _, rc := range []*receiver{rc1, rc2} {
		eventually(t, 10*time.Second, "webhook events to be pushed", func() bool { return len(rc.events()) >= 2 })
	}
	checkEvents(t, sub1, rc1.events(), items)
	checkEvents(t, sub2, rc2.events(), items)
	checkEvents(t, q, ts.drain(q, 2, 5*time.Second), items)

	eventually(t, 10*time.Second, "a renewal", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.renewals >= 2
	})

	ts.must(204, ts.do("DELETE", "/v1/subscriptions/"+sub1, nil))
	ts.must(204, ts.do("DELETE", "/v1/subscriptions/"+q, nil))
	if f.mu.Lock(); len(f.deleted) != 0 {
		t.Fatalf("unsubscribed upstream with a subscriber left")
	}
	f.mu.Unlock()
	ts.must(204, ts.do("DELETE", "/v1/subscriptions/"+sub2, nil))
	f.mu.Lock()
	deleted := append([]string(nil), f.deleted...)
	f.mu.Unlock()
	if len(deleted) != 1 || deleted[0] != h.ID {
		t.Fatalf("upstream deletions = %v, want [%s]", deleted, h.ID)
	}
	if status, _ := f.send(h, false, items...); status != 404 {
		t.Fatalf("the stopped source's hook URL answered %d, want 404", status)
	}
	ts.must(404, ts.do("GET", "/v1/subscriptions/"+sub2, nil))
}

// A receive that asks for a renewal (renew_at in its result: Graph's reauthorizationRequired)
// gets one at once, though its source has no renewal scheduled; a forged delivery cannot ask.
func TestTriggerWebhookReceiveAsksForRenewal(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, func(o *Options) { o.Triggers.Tick = 50 * time.Millisecond })
	ts.subscribe("hook", map[string]any{"channel": "news"}, map[string]any{"type": "queue"})
	h := f.hook()
	renewals := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.renewals
	}
	if status, _ := f.sendBody(h, true, map[string]any{"renew_now": true}); status != 401 {
		t.Fatalf("forged delivery answered %d, want 401", status)
	}
	time.Sleep(300 * time.Millisecond) // several scheduler ticks
	if n := renewals(); n != 0 {
		t.Fatalf("%d renewals without a renew_at or a genuine request", n)
	}
	if status, _ := f.sendBody(h, false, map[string]any{"renew_now": true}); status != 202 {
		t.Fatalf("delivery answered %d, want 202", status)
	}
	eventually(t, 5*time.Second, "the renewal the delivery asked for", func() bool { return renewals() == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := renewals(); n != 1 {
		t.Fatalf("%d renewals for one request: the renew result had no renew_at, so none was due after it", n)
	}
}

// Subscriptions refuse bad input with clear errors and keep the connection in use.
func TestTriggerBadRequests(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, nil)
	for _, c := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"unknown trigger", map[string]any{"connector": "trig", "trigger": "nope", "connection": "feed", "delivery": map[string]any{"type": "queue"}}, "trigger_not_found"},
		{"unknown connector", map[string]any{"connector": "nope", "trigger": "items", "connection": "feed", "delivery": map[string]any{"type": "queue"}}, "connector_not_found"},
		{"no delivery", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed"}, "invalid_request"},
		{"bad delivery type", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed", "delivery": map[string]any{"type": "email"}}, "invalid_request"},
		{"relative url", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed", "delivery": map[string]any{"type": "webhook", "url": "/x"}}, "invalid_request"},
		{"url with credentials", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed", "delivery": map[string]any{"type": "webhook", "url": "https://u:p@example.com/"}}, "invalid_request"},
		{"params not matching the schema", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed", "params": map[string]any{"page_size": "ten"}, "delivery": map[string]any{"type": "queue"}}, "invalid_params"},
		{"interval on a webhook trigger", map[string]any{"connector": "trig", "trigger": "hook", "connection": "feed", "interval_s": 5, "params": map[string]any{"channel": "c"}, "delivery": map[string]any{"type": "queue"}}, "invalid_request"},
		{"unknown connection", map[string]any{"connector": "trig", "trigger": "items", "connection": "nope", "delivery": map[string]any{"type": "queue"}}, "connection_not_found"},
		{"unknown field", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed", "delivery": map[string]any{"type": "queue"}, "intervall": 5}, "invalid_request"},
	} {
		r := ts.do("POST", "/v1/subscriptions", c.body)
		if r.Status/100 != 4 || r.code(t) != c.code {
			t.Errorf("%s: %d %s, want 4xx %s", c.name, r.Status, r.Body, c.code)
		}
	}
	sub := ts.subscribe("items", nil, map[string]any{"type": "queue"})["id"].(string)
	if r := ts.do("DELETE", "/v1/connections/feed", nil); r.Status != 409 || !strings.Contains(string(r.Body), sub) {
		t.Fatalf("deleting a connection in use answered %d %s", r.Status, r.Body)
	}
	if r := ts.do("POST", "/v1/subscriptions/"+sub+"/replay", map[string]any{"since": "yesterday"}); r.Status != 400 {
		t.Fatalf("bad since answered %d", r.Status)
	}
	ts.must(404, ts.do("GET", "/v1/subscriptions/sub_nope", nil))
	ts.must(404, ts.do("POST", "/hooks/nope", "{}"))
}

// Timers set with plugboard_timer fire plugboard_on_timer, also after a restart.
func TestPluginTimersFire(t *testing.T) {
	up := newFeed(t)
	ts := startServer(t, func(o *Options) { o.Triggers.Tick = 20 * time.Millisecond })
	ts.must(201, ts.upload("spy"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{"id": "c", "connectors": []string{"spy"},
		"auth": map[string]any{"type": "api_key", "api_key": "k"}, "params": map[string]any{"base_url": up.URL}}))
	lastTimer := func(ts *testServer) map[string]any {
		out := ts.must(200, ts.invoke("spy", "kv", map[string]any{"connection": "c", "input": map[string]any{"op": "get", "key": "spy:last_timer"}})).json(t)["output"].(map[string]any)
		if out["found"] != true {
			return nil
		}
		var ev map[string]any
		switch v := out["value"].(type) {
		case map[string]any:
			ev = v
		case string:
			_ = json.Unmarshal([]byte(v), &ev)
		}
		return ev
	}
	set := func(ts *testServer, name string, delay int) {
		ts.must(200, ts.invoke("spy", "timer", map[string]any{"connection": "c", "input": map[string]any{"op": "set", "name": name, "delay_ms": delay, "payload": map[string]any{"n": name}}}))
	}
	set(ts, "soon", 1000)
	eventually(t, 10*time.Second, "the timer to fire", func() bool { ev := lastTimer(ts); return ev != nil && ev["name"] == "soon" })
	ev := lastTimer(ts)
	if p, _ := ev["payload"].(map[string]any); p["n"] != "soon" || ev["connection"].(map[string]any)["id"] != "c" {
		t.Fatalf("timer event = %v", ev)
	}

	set(ts, "after-restart", 1500)
	ts = ts.restart()
	eventually(t, 15*time.Second, "the timer to fire after a restart", func() bool { ev := lastTimer(ts); return ev != nil && ev["name"] == "after-restart" })
}

// Subscriber URLs get the egress path's address checks: a push subscription to the cloud
// metadata address is refused at creation with the egress code (the server allows loopback,
// for the fake upstream, but not link-local). Refusals at delivery, of a name that resolves
// differently later, are in TestPushRefusedAtDeliveryShowsInLastError.
func TestTriggerPushRefusesPrivateAddresses(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, nil)
	r := ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed", "interval_s": 1,
		"delivery": map[string]any{"type": "webhook", "url": "http://169.254.169.254/latest/meta-data/"}})
	if detail, _ := r.json(t)["detail"].(string); r.Status != 400 || r.code(t) != "private_address" || !strings.Contains(detail, "169.254.169.254") {
		t.Fatalf("create answered %d %s, want 400 private_address naming the address", r.Status, r.Body)
	}
	if n := len(ts.must(200, ts.do("GET", "/v1/subscriptions", nil)).json(t)["subscriptions"].([]any)); n != 0 {
		t.Fatalf("%d subscriptions after the refusal, want none", n)
	}
}

// Polls pause while the connection needs consent again: no poll reaches the upstream, no
// refresh is attempted, and the subscription shows paused with what to do.
func TestTriggerPollsPauseWhileNeedsReauth(t *testing.T) {
	e := newOAuthEnv(t, func(o *Options) { o.Triggers.Tick = 20 * time.Millisecond })
	e.readyOAuth("oa")
	sub := e.must(201, e.do("POST", "/v1/subscriptions", map[string]any{"connector": "spy", "trigger": "me", "connection": "oa",
		"interval_s": 1, "delivery": map[string]any{"type": "queue"}})).json(t)["id"].(string)
	e.drain(sub, 2, 20*time.Second) // polling with the access token

	e.oa.Revoke()
	e.clock.Advance(time.Hour)
	e.oa.Expire()
	eventually(t, 10*time.Second, "the subscription to pause", func() bool {
		doc := e.must(200, e.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)
		return doc["status"] == "paused" && strings.Contains(doc["status_reason"].(string), "reauthorize")
	})
	seen, refreshes := len(e.api.seen()), e.oa.Stats().RefreshToken
	time.Sleep(2500 * time.Millisecond) // two intervals
	if n := len(e.api.seen()) - seen; n != 0 {
		t.Fatalf("%d polls reached the upstream while the connection needs consent", n)
	}
	if e.oa.Stats().RefreshToken != refreshes {
		t.Fatal("paused polls still asked for tokens")
	}
}

// A failing upstream unsubscribe is retried with backoff while the hook URL answers 410, and
// a new subscription meanwhile revives the source (its registration is still upstream) instead
// of registering a second one.
func TestTriggerWebhookUnsubscribeRetriedOrRevived(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, func(o *Options) {
		// One upstream failure is one failed unsubscribe: no plugboard_http retries, no breaker.
		o.Host.Egress.Retry.MaxRetries = -1
		o.Host.Egress.Breaker.Failures = -1
	})
	params := map[string]any{"channel": "news"}
	sub1 := ts.subscribe("hook", params, map[string]any{"type": "queue"})["id"].(string)
	h := f.hook()
	f.mu.Lock()
	f.failDel = 1000
	f.mu.Unlock()
	ts.must(204, ts.do("DELETE", "/v1/subscriptions/"+sub1, nil))
	if status, _ := f.send(h, false, feedItem{ID: "x", Data: json.RawMessage(`{}`)}); status != 410 {
		t.Fatalf("a stopping source's hook answered %d, want 410", status)
	}

	sub2 := ts.subscribe("hook", params, map[string]any{"type": "queue"})["id"].(string)
	if f.hook().ID != h.ID {
		t.Fatal("reviving the source registered a second upstream webhook")
	}
	items := []feedItem{{ID: "e1", Type: "posted", Time: "2026-11-28T09:00:01Z", Data: json.RawMessage(`{"text":"again"}`)}}
	if status, _ := f.send(h, false, items...); status != 202 {
		t.Fatalf("the revived source's hook answered %d", status)
	}
	checkEvents(t, sub2, ts.drain(sub2, 1, 5*time.Second), items)

	f.mu.Lock()
	f.failDel = 1
	f.mu.Unlock()
	ts.must(204, ts.do("DELETE", "/v1/subscriptions/"+sub2, nil))
	eventually(t, 20*time.Second, "the retried unsubscribe", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.deleted) == 1 && f.deleted[0] == h.ID
	})
	eventually(t, 5*time.Second, "the source to be deleted", func() bool {
		status, _ := f.send(h, false, items...)
		return status == 404
	})
}
