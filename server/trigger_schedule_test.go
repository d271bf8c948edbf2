package server

import (
	"net/http"
	"testing"
	"time"
)

// schedule is what a subscription document says of its source's polling.
type schedule struct {
	lastPolled, nextPoll time.Time
	intervalS            int // source.interval_s
}

// scheduleOf reads a subscription's last_polled_at, next_poll_at and source.interval_s.
func scheduleOf(t *testing.T, doc map[string]any) schedule {
	t.Helper()
	at := func(field string) time.Time {
		s, _ := doc[field].(string)
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("subscription %v: %s = %v, want an RFC 3339 time", doc["id"], field, doc[field])
		}
		if v.Location() != time.UTC {
			t.Fatalf("subscription %v: %s = %s, want UTC", doc["id"], field, s)
		}
		return v
	}
	iv, _ := doc["source"].(map[string]any)["interval_s"].(float64)
	return schedule{lastPolled: at("last_polled_at"), nextPoll: at("next_poll_at"), intervalS: int(iv)}
}

// within fails unless got is in [lo, hi].
func within(t *testing.T, what string, got, lo, hi time.Time) {
	t.Helper()
	if got.Before(lo) || got.After(hi) {
		t.Fatalf("%s = %s, want between %s and %s", what, got.Format(time.RFC3339Nano), lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano))
	}
}

// A subscription with a shorter interval joining a shared source reschedules its next poll at
// once, instead of waiting out the source's longer interval; so does a PATCH of interval_s.
// When the subscription with the shortest interval leaves (or lengthens its interval), the
// next poll moves back to the last poll plus the longer interval. next_poll_at shows each
// step, for poll subscriptions only.
func TestTriggerShorterIntervalReschedulesSharedSource(t *testing.T) {
	f := newFeed(t)
	ts := triggerServer(t, f, nil)
	create := func(intervalS int) map[string]any {
		return ts.must(201, ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
			"interval_s": intervalS, "delivery": map[string]any{"type": "queue"}})).json(t)
	}
	get := func(id string) map[string]any {
		return ts.must(200, ts.do("GET", "/v1/subscriptions/"+id, nil)).json(t)
	}
	patch := func(id string, body any) response { return ts.do("PATCH", "/v1/subscriptions/"+id, body) }
	// at reports whether a schedule is at an interval of ivS seconds: the next poll that long
	// after the last (±10% jitter from a poll, none from a reschedule).
	at := func(s schedule, ivS int) bool {
		iv := time.Duration(ivS) * time.Second
		return s.intervalS == ivS && !s.nextPoll.Before(s.lastPolled.Add(iv-iv/10)) && !s.nextPoll.After(s.lastPolled.Add(iv+iv/10))
	}
	mustBeAt := func(what string, s schedule, ivS int) {
		t.Helper()
		if !at(s, ivS) {
			t.Fatalf("%s: source.interval_s %d, last_polled_at %s, next_poll_at %s; want %d and the next poll %d s after the last", what, s.intervalS, s.lastPolled, s.nextPoll, ivS, ivS)
		}
	}
	// becomes waits for subscription id to show the schedule at ivS: a poll that was running
	// when the interval changed writes the schedule it began with, then corrects it.
	becomes := func(what, id string, ivS int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for s := scheduleOf(t, get(id)); !at(s, ivS); s = scheduleOf(t, get(id)) {
			if time.Now().After(deadline) {
				mustBeAt(what, s, ivS)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// pollsSoon checks that the source polls within a few seconds (not a minute).
	pollsSoon := func(what string) {
		t.Helper()
		before := f.pollCount()
		eventually(t, 3*time.Second, what, func() bool { return f.pollCount() > before })
	}

	slowDoc := create(60)
	slowID := slowDoc["id"].(string)
	first := scheduleOf(t, slowDoc)
	mustBeAt("a new source at 60 s", first, 60)

	// A subscription at 1 s joins: the next poll is at most a second after the last one.
	fast := create(1)
	fastID := fast["id"].(string)
	if fast["source"].(map[string]any)["id"] != slowDoc["source"].(map[string]any)["id"] {
		t.Fatalf("the 1 s subscription did not join the shared source: %v vs %v", fast["source"], slowDoc["source"])
	}
	joined := scheduleOf(t, fast)
	if joined.intervalS != 1 {
		t.Fatalf("after a 1 s subscription joined: source.interval_s = %d, want 1", joined.intervalS)
	}
	within(t, "next_poll_at after a 1 s subscription joined", joined.nextPoll, joined.lastPolled, time.Now().Add(1200*time.Millisecond))
	if !joined.nextPoll.Before(first.nextPoll.Add(-50 * time.Second)) {
		t.Fatalf("next_poll_at %s did not move earlier than %s", joined.nextPoll, first.nextPoll)
	}
	within(t, "the 60 s subscription's next_poll_at", scheduleOf(t, get(slowID)).nextPoll, joined.lastPolled, time.Now().Add(1200*time.Millisecond))
	pollsSoon("a poll within seconds of the 1 s subscription joining")
	items := f.add(2)
	checkEvents(t, slowID, ts.drain(slowID, len(items), 5*time.Second), items)
	checkEvents(t, fastID, ts.drain(fastID, len(items), 5*time.Second), items)
	polling := scheduleOf(t, get(slowID))
	within(t, "next_poll_at while polling every second", polling.nextPoll, polling.lastPolled, polling.lastPolled.Add(1200*time.Millisecond))

	// It lengthens its interval to 30 s, the shortest still, then leaves: the source goes back
	// to 60 s at once (no poll runs meanwhile to recompute it).
	ts.must(200, patch(fastID, map[string]any{"interval_s": 30}))
	becomes("after PATCH interval_s 30", fastID, 30)
	ts.must(http.StatusNoContent, ts.do("DELETE", "/v1/subscriptions/"+fastID, nil))
	mustBeAt("after the 30 s subscription left", scheduleOf(t, get(slowID)), 60)

	// PATCH interval_s: shorter polls at once, longer moves the next poll back.
	doc := ts.must(200, patch(slowID, map[string]any{"interval_s": 1})).json(t)
	if doc["interval_s"].(float64) != 1 {
		t.Fatalf("PATCH answered interval_s %v, want 1", doc["interval_s"])
	}
	patched := scheduleOf(t, doc)
	if patched.intervalS != 1 {
		t.Fatalf("after PATCH interval_s 1: source.interval_s = %d, want 1", patched.intervalS)
	}
	within(t, "next_poll_at after PATCH interval_s 1", patched.nextPoll, patched.lastPolled, time.Now().Add(1200*time.Millisecond))
	pollsSoon("a poll within seconds of PATCH interval_s 1")
	ts.must(200, patch(slowID, map[string]any{"interval_s": 60}))
	becomes("after PATCH interval_s 60", slowID, 60)

	// next_poll_at is for poll subscriptions: a webhook subscription has none, in the list too.
	hook := ts.subscribe("hook", map[string]any{"channel": "c"}, map[string]any{"type": "queue"})
	if _, ok := hook["next_poll_at"]; ok {
		t.Fatalf("a webhook subscription shows next_poll_at: %v", hook)
	}
	list := ts.must(200, ts.do("GET", "/v1/subscriptions", nil)).json(t)["subscriptions"].([]any)
	for _, x := range list {
		d := x.(map[string]any)
		_, has := d["next_poll_at"]
		if want := d["trigger"] == "items"; has != want {
			t.Fatalf("listed subscription %v (trigger %v) has next_poll_at: %v, want %v", d["id"], d["trigger"], has, want)
		}
	}

	for _, tc := range []struct {
		name, id string
		body     any
		status   int
		code     string
	}{
		{"no interval_s", slowID, map[string]any{}, 400, "invalid_request"},
		{"a negative interval_s", slowID, map[string]any{"interval_s": -5}, 400, "invalid_request"},
		{"an unknown field", slowID, map[string]any{"interval_s": 5, "delivery": map[string]any{"type": "queue"}}, 400, "invalid_request"},
		{"a webhook subscription", hook["id"].(string), map[string]any{"interval_s": 5}, 400, "invalid_request"},
		{"an unknown subscription", "sub_nope", map[string]any{"interval_s": 5}, 404, "subscription_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := patch(tc.id, tc.body)
			if r.Status != tc.status || r.json(t)["code"] != tc.code {
				t.Fatalf("PATCH answered %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
		})
	}
	if got := get(slowID); got["interval_s"].(float64) != 60 {
		t.Fatalf("refused PATCHes changed interval_s to %v", got["interval_s"])
	}
}
