package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

// The github connector's triggers against the GitHub fake: new_issue polls with since and
// ETag and delivers each new issue once (pull requests skipped); issue_event registers a repo
// hook with the subscription source's secret, answers GitHub's ping, delivers signed events,
// refuses forged ones, and removes the hook when the last subscriber leaves.
func TestGitHubTriggersEndToEnd(t *testing.T) {
	fake := githubfake.New(t)
	ts := startServer(t, func(o *Options) { o.Triggers.Tick = 50 * time.Millisecond })
	ts.must(201, ts.upload("github"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "gh", "connectors": []string{"github"}, "params": map[string]any{"base_url": fake.URL},
		"auth": map[string]any{"type": "api_key", "api_key": fake.Token}}))
	repo := map[string]any{"owner": "octocat", "repo": "Hello-World"}

	// new_issue: one queue and one push subscriber of one poll source, every 15 s (the minimum).
	q := ts.must(201, ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "github", "trigger": "new_issue",
		"connection": "gh", "params": repo, "interval_s": 15, "delivery": map[string]any{"type": "queue"}})).json(t)["id"].(string)
	rc := newReceiver(t)
	doc := ts.must(201, ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "github", "trigger": "new_issue",
		"connection": "gh", "params": repo, "interval_s": 15, "delivery": map[string]any{"type": "webhook", "url": rc.URL}})).json(t)
	rc.setSecret(doc["signing_secret"].(string))
	a := fake.AddIssue("octocat", "Hello-World", "first new issue", "body a")
	fake.AddPullRequest("octocat", "Hello-World", "a pull request")
	b := fake.AddIssue("octocat", "Hello-World", "second new issue", "body b")

	got := ts.drain(q, 2, 40*time.Second)
	for i, want := range []githubfake.Issue{a, b} {
		e := got[i]
		data := e["data"].(map[string]any)
		if e["type"] != "github.new_issue" || e["source_event_id"] != fmt.Sprint(want.Number) || data["title"] != want.Title {
			t.Fatalf("event %d = %v, want issue #%d %q", i, e, want.Number, want.Title)
		}
	}
	eventually(t, 10*time.Second, "the push subscriber to get both issues", func() bool { return len(rc.events()) == 2 })
	polls := fake.ListIssuesRequests("octocat", "Hello-World")
	time.Sleep(18 * time.Second) // one more interval (15 s, jitter up to 10%): a 304 (If-None-Match), no event
	if n := fake.ListIssuesRequests("octocat", "Hello-World") - polls; n < 1 || n > 2 {
		t.Fatalf("%d list requests in one 15 s interval for two subscribers, want 1", n)
	}
	if evs := ts.pull(q, "max=10"); len(evs) != 0 || len(rc.events()) != 2 {
		t.Fatalf("an unchanged repository produced events: %v", evs)
	}

	// issue_event: a repo hook registered with the source's secret.
	hookSub := ts.must(201, ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "github", "trigger": "issue_event",
		"connection": "gh", "params": repo, "delivery": map[string]any{"type": "queue"}})).json(t)["id"].(string)
	hooks := fake.Hooks("octocat", "Hello-World")
	if len(hooks) != 1 || hooks[0].Secret == "" {
		t.Fatalf("hooks = %+v, want one with a secret", hooks)
	}
	eventually(t, 10*time.Second, "GitHub's ping to be answered", func() bool {
		for _, d := range fake.Deliveries() {
			if d.Event == "ping" && d.Status == 200 {
				return true
			}
		}
		return false
	})
	statuses, err := fake.DeliverIssueEvent(context.Background(), "octocat", "Hello-World", "closed", a)
	if err != nil || len(statuses) != 1 || statuses[0] != 200 {
		t.Fatalf("issue event delivery: %v %v", statuses, err)
	}
	if statuses, _ := fake.DeliverForged(context.Background(), "octocat", "Hello-World", "opened", b); len(statuses) != 1 || statuses[0] != 401 {
		t.Fatalf("forged delivery answered %v, want 401", statuses)
	}
	evs := ts.drain(hookSub, 1, 10*time.Second)
	if d := evs[0]["data"].(map[string]any); evs[0]["type"] != "github.issue_event" || evs[0]["event_type"] != "closed" ||
		d["issue"].(map[string]any)["title"] != a.Title {
		t.Fatalf("issue event = %v", evs[0])
	}
	if more := ts.pull(hookSub, "max=10&wait_s=1"); len(more) != 0 {
		t.Fatalf("the forged delivery produced %v", more)
	}
	ts.must(204, ts.do("DELETE", "/v1/subscriptions/"+hookSub, nil))
	if hooks := fake.Hooks("octocat", "Hello-World"); len(hooks) != 0 {
		t.Fatalf("the repo hook survived its last subscriber: %+v", hooks)
	}
}
