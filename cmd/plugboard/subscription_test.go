package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// subscriptionServer is a fake with a github connector that has a poll and a webhook trigger,
// and a connection gh-main.
func subscriptionServer(t *testing.T) (*plugboardtest.Server, env) {
	t.Helper()
	s := plugboardtest.New(t)
	e := serverEnv(s)
	m := testManifest("github", "1.0.0", "https://api.github.com")
	m.Triggers = []abi.Trigger{
		{Name: "new_issue", Kind: abi.TriggerPoll, ParamsSchema: json.RawMessage(`{"type":"object"}`)},
		{Name: "issue_event", Kind: abi.TriggerWebhook, ParamsSchema: json.RawMessage(`{"type":"object"}`)},
	}
	plugboard(t, e, "", "connector", "push", writeWasm(t, m)).ok(t)
	plugboard(t, e, "ghp_x", "connection", "create", "gh-main", "--connector", "github", "--api-key-stdin").ok(t)
	return s, e
}

func TestSubscribe(t *testing.T) {
	s, e := subscriptionServer(t)

	r := plugboard(t, e, "", "subscribe", "github", "new_issue", "--connection", "gh-main",
		"--params-json", `{"owner": "octocat", "limit": 3}`, "--param", "repo=hello-world", "--interval", "2m", "--webhook-url", "https://app.example/hooks")
	r.want(t, exitOK, []string{"Created subscription sub_", "(active).", "Trigger:         github.new_issue", "Params:          limit=3, owner=octocat, repo=hello-world",
		"Delivery:        webhook https://app.example/hooks", "Interval:        120s", "Signing secret:  whsec_"},
		[]string{"warning: the signing secret is shown only once"})
	var body map[string]any
	json.Unmarshal(s.LastRequest().Body, &body)
	if got, _ := json.Marshal(body); string(got) != `{"connection":"gh-main","connector":"github","delivery":{"type":"webhook","url":"https://app.example/hooks"},"interval_s":120,"params":{"limit":3,"owner":"octocat","repo":"hello-world"},"trigger":"new_issue"}` {
		t.Errorf("request body %s", got)
	}

	r = plugboard(t, e, "", "subscribe", "github", "issue_event", "--connection", "gh-main", "--param", "owner=o", "--param", "repo=r", "--queue", "-o", "json")
	r.want(t, exitOK, []string{`"delivery": {`, `"type": "queue"`, `"status": "active"`}, nil)
	if strings.Contains(r.stdout, "signing_secret") || strings.Contains(r.stderr, "signing secret") {
		t.Errorf("a queue subscription shows a signing secret:\n%s%s", r.stdout, r.stderr)
	}

	r = plugboard(t, e, "", "subscribe", "github", "new_issue", "--connection", "gh-main", "--queue", "-o", "json", "--webhook-url", "https://x.example")
	r.want(t, exitUsage, nil, []string{"choose one delivery"})
	usage := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no delivery", []string{"github", "new_issue"}, "choose a delivery: --webhook-url URL (push) or --queue"},
		{"both deliveries", []string{"github", "new_issue", "--queue", "--webhook-url", "https://x.example"}, "choose one delivery"},
		{"a bad interval", []string{"github", "new_issue", "--queue", "--interval", "soon"}, "want whole seconds (60) or a duration (5m)"},
		{"a missing trigger argument", []string{"github", "--queue"}, "missing TRIGGER"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			plugboard(t, e, "", append([]string{"subscribe"}, tt.args...)...).want(t, exitUsage, nil, []string{tt.stderr})
		})
	}
	plugboard(t, e, "", "subscribe", "github", "nope", "--queue").
		want(t, exitError, nil, []string{"trigger_not_found", "hint: list the triggers with `plugboard connector get github`"})
}

func TestSubscriptionsListShowUnsubscribe(t *testing.T) {
	s, e := subscriptionServer(t)
	plugboard(t, e, "", "subscriptions").want(t, exitOK, nil, []string{"No subscriptions."})

	plugboard(t, e, "", "subscribe", "github", "new_issue", "--connection", "gh-main", "--param", "owner=o", "--param", "repo=r", "--queue").ok(t)
	plugboard(t, e, "", "subscribe", "github", "issue_event", "--connection", "gh-main", "--webhook-url", "https://app.example/h").ok(t)
	subs := s.Subscriptions()
	if len(subs) != 2 {
		t.Fatalf("%d subscriptions", len(subs))
	}
	poll, hook := subs[0].ID, subs[1].ID
	s.Emit(poll, "opened", "42", time.Time{}, map[string]any{"number": 42})

	r := plugboard(t, e, "", "subscriptions").ok(t)
	for _, want := range []string{
		`ID      CONNECTOR   TRIGGER       CONNECTION   DELIVERY   STATUS   LAST POLLED   NEXT POLL   PENDING`,
		poll + `   github      new_issue     gh-main      queue      active   0s ago        in (59|60)s      1`, // the fake polls every 60 s
		hook + `   github      issue_event   gh-main      webhook    active   <none>        <none>      0`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	r = plugboard(t, e, "", "subscriptions", "-o", "json").ok(t)
	var list struct {
		Subscriptions []map[string]any `json:"subscriptions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Subscriptions) != 2 {
		t.Errorf("json list: %v\n%s", err, r.stdout)
	}

	r = plugboard(t, e, "", "subscriptions", poll)
	r.want(t, exitOK, []string{
		"ID:           " + poll, "Connector:    github", "Trigger:      new_issue", "Params:       owner=o, repo=r", "Interval:     60s",
		"Delivery:     queue", "Status:       active", "Last error:   none", "Lag:          0s",
		"Events:       1 total, 0 delivered, 1 pending, 0 dropped", "Source:       src_github_new_issue (poll, 1 subscriber, every 60s)",
	}, nil)
	if next := `\nNext poll:    \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in (59|60)s\)\n`; !regexp.MustCompile(next).MatchString(r.stdout) {
		t.Errorf("the poll subscription's details lack %q:\n%s", next, r.stdout)
	}
	r = plugboard(t, e, "", "subscriptions", hook)
	r.want(t, exitOK, []string{"Delivery:    webhook https://app.example/h", "Push:        0 attempts"}, nil)
	if strings.Contains(r.stdout, "Next poll") {
		t.Errorf("a webhook subscription shows a next poll:\n%s", r.stdout)
	}
	plugboard(t, e, "", "subscriptions", "a", "b").want(t, exitUsage, nil, []string{"too many arguments"})

	plugboard(t, e, "", "unsubscribe", poll).want(t, exitOK, []string{"Deleted subscription " + poll + "."}, nil)
	plugboard(t, e, "", "unsubscribe", poll).want(t, exitError, nil, []string{"subscription_not_found"})
	if len(s.Subscriptions()) != 1 {
		t.Errorf("subscriptions left: %+v", s.Subscriptions())
	}
}

func TestEventsPullAckReplay(t *testing.T) {
	s, e := subscriptionServer(t)
	plugboard(t, e, "", "subscribe", "github", "new_issue", "--connection", "gh-main", "--queue").ok(t)
	sub := s.Subscriptions()[0].ID
	at := time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)
	e1 := s.Emit(sub, "opened", "41", at, map[string]any{"title": "<b>"})
	e2 := s.Emit(sub, "", "42", at.Add(time.Minute), map[string]any{"title": "two"})

	// Without --ack the events stay leased, then come back.
	r := plugboard(t, e, "", "events", "pull", sub, "--wait", "0").ok(t)
	for _, want := range []string{
		"ID      TYPE                        SOURCE EVENT ID   TIMESTAMP",
		e1 + "   github.new_issue (opened)   41                2026-11-28T07:00:00Z",
		e2 + "   github.new_issue            42                2026-11-28T07:01:00Z",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("pull lacks %q:\n%s", want, r.stdout)
		}
	}
	if q := s.LastRequest().Query; q != "max=100" {
		t.Errorf("query %q", q)
	}
	plugboard(t, e, "", "events", "pull", sub, "--wait", "0").want(t, exitOK, nil, []string{"No events (waited 0s)."})

	plugboard(t, e, "", "events", "ack", sub, e1, "evt_unknown").want(t, exitOK, []string{"acked 1\n"}, nil)
	plugboard(t, e, "", "events", "ack", sub, e1, "-o", "json").want(t, exitOK, []string{`"acked": 0`}, nil)

	// Replay makes acknowledged events pullable again; -o json prints JSON lines.
	plugboard(t, e, "", "events", "replay", sub, "--since", "2026-11-28T06:59:00Z").want(t, exitOK, []string{"replayed 2 events since 2026-11-28T06:59:00Z"}, nil)
	r = plugboard(t, e, "", "events", "pull", sub, "--wait", "1s", "--max", "1", "--ack", "-o", "json").ok(t)
	if q := s.Requests()[len(s.Requests())-2].Query; q != "max=1&wait_s=1" {
		t.Errorf("query %q", q)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], `{"id":"`+e1+`"`) || !strings.Contains(lines[0], `"title":"<b>"`) {
		t.Errorf("JSON lines:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "acked 1") {
		t.Errorf("stderr %q", r.stderr)
	}
	if c := s.Subscriptions()[0].Counts; c.Delivered != 1 || c.Pending != 1 {
		t.Errorf("counts %+v", c)
	}

	plugboard(t, e, "", "events", "replay", sub, "--since", "yesterday").want(t, exitUsage, nil, []string{"neither an RFC 3339 time"})
	plugboard(t, e, "", "events", "replay", sub).want(t, exitUsage, nil, []string{"--since is required"})
	plugboard(t, e, "", "events", "ack", sub).want(t, exitUsage, nil, []string{"want SUB and at least one EVT_ID"})
	plugboard(t, e, "", "events", "pull", sub, "--max", "0").want(t, exitUsage, nil, []string{"--max must be from 1 to 1000"})
}

func TestEventsReplaySinceDuration(t *testing.T) {
	s, e := subscriptionServer(t)
	plugboard(t, e, "", "subscribe", "github", "new_issue", "--queue").ok(t)
	sub := s.Subscriptions()[0].ID
	plugboard(t, e, "", "events", "replay", sub, "--since", "1h").ok(t)
	var body struct {
		Since string `json:"since"`
	}
	json.Unmarshal(s.LastRequest().Body, &body)
	since, err := time.Parse(time.RFC3339Nano, body.Since)
	if err != nil || time.Since(since) < 59*time.Minute || time.Since(since) > 61*time.Minute {
		t.Errorf("since %q", body.Since)
	}
}

func TestEventsPullFollow(t *testing.T) {
	s, e := subscriptionServer(t)
	plugboard(t, e, "", "subscribe", "github", "new_issue", "--queue").ok(t)
	sub := s.Subscriptions()[0].ID
	first := s.Emit(sub, "opened", "1", time.Time{}, map[string]any{"n": 1})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"events", "pull", sub, "--follow", "--wait", "20s", "-o", "json"},
			func(k string) string { return e[k] }, strings.NewReader(""), &stdout, &stderr)
	}()

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; stdout:\n%s\nstderr:\n%s", what, stdout.String(), stderr.String())
			}
		}
	}
	waitFor("the first event to be acked", func() bool { return s.Subscriptions()[0].Counts.Delivered == 1 })
	// The follower is now long-polling; a new event wakes it.
	second := s.Emit(sub, "opened", "2", time.Time{}, map[string]any{"n": 2})
	waitFor("the second event to be acked", func() bool { return s.Subscriptions()[0].Counts.Delivered == 2 })
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit code %d, stderr %s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("--follow did not stop when interrupted")
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], first) || !strings.Contains(lines[1], second) {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func TestSubscriptionHelp(t *testing.T) {
	_, e := subscriptionServer(t)
	for _, args := range [][]string{
		{"subscribe", "-h"}, {"subscriptions", "--help"}, {"unsubscribe", "-h"},
		{"help", "events", "pull"}, {"events", "ack", "-h"}, {"events", "replay", "-h"},
	} {
		r := plugboard(t, e, "", args...)
		r.want(t, exitOK, []string{"USAGE", "EXAMPLES", "plugboard "}, nil)
	}
	plugboard(t, e, "", "help").want(t, exitOK, []string{"subscribe ", "subscriptions ", "unsubscribe ", "events "}, nil)
}

// TestRescheduleRefusals: reschedule needs exactly one of --interval and --default.
func TestRescheduleRefusals(t *testing.T) {
	e := serverEnv(plugboardtest.New(t))
	plugboard(t, e, "", "reschedule", "sub_1").want(t, exitUsage, nil, []string{"give --interval INTERVAL or --default"})
	plugboard(t, e, "", "reschedule", "sub_1", "--interval", "15", "--default").want(t, exitUsage, nil, []string{"give --interval INTERVAL or --default"})
	plugboard(t, e, "", "reschedule", "sub_1", "--interval", "0").want(t, exitUsage, nil, []string{"must be positive"})
}
