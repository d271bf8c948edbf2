package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

var helloWorld = RepoRef{Owner: "octocat", Repo: "Hello-World"}

func decodeCursor(t *testing.T, s string) pollCursor {
	t.Helper()
	var c pollCursor
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		t.Fatalf("cursor %q: %v", s, err)
	}
	return c
}

func eventIDs(res abi.PollResult) string {
	ids := make([]string, len(res.Events))
	for i, e := range res.Events {
		ids[i] = e.ID
	}
	return strings.Join(ids, ",")
}

func poll(t *testing.T, h *pdktest.Harness, params any, cursor *string) abi.PollResult {
	t.Helper()
	res, e := h.Poll("new_issue", params, cursor)
	if e != nil {
		t.Fatalf("poll: %v", e)
	}
	return res
}

func TestNewIssueBaselineEmitsNothing(t *testing.T) {
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	res := poll(t, h, helloWorld, nil)
	if len(res.Events) != 0 || res.More {
		t.Fatalf("baseline = %+v", res)
	}
	c := decodeCursor(t, res.Cursor)
	newest := gh.Issues("octocat", "Hello-World")[4]
	if c.LastNumber != 5 || c.Since != newest.CreatedAt.Format(time.RFC3339) || c.ETag != "" || c.Next != "" {
		t.Errorf("cursor = %+v", c)
	}

	gh.AddRepo("octocat", "empty")
	res = poll(t, h, RepoRef{Owner: "octocat", Repo: "empty"}, nil)
	if c := decodeCursor(t, res.Cursor); len(res.Events) != 0 || c.LastNumber != 0 || c.Since != "" {
		t.Errorf("empty repository: %+v", res)
	}
}

func TestNewIssueEmitsEachIssueOnceThenUsesETag(t *testing.T) {
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	cursor := poll(t, h, helloWorld, nil).Cursor

	gh.AddIssue("octocat", "Hello-World", "Fresh bug", "It broke")
	gh.AddIssue("octocat", "Hello-World", "Another", "")
	res := poll(t, h, helloWorld, &cursor)
	if got := eventIDs(res); got != "6,7" {
		t.Fatalf("events %s, want 6,7", got)
	}
	ev := res.Events[0]
	var data IssueData
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	is6 := gh.Issues("octocat", "Hello-World")[5]
	if ev.Type != "opened" || ev.Time != is6.CreatedAt.Format(time.RFC3339Nano) || data.Number != 6 || data.Title != "Fresh bug" ||
		data.Body != "It broke" || data.State != "open" || data.User.Login != "octocat" || data.HTMLURL != is6.HTMLURL || len(data.Labels) != 0 {
		t.Errorf("event %+v data %+v", ev, data)
	}
	req := h.Requests()[len(h.Requests())-1]
	for _, want := range []string{"state=all", "sort=created", "direction=asc", "per_page=100", "since="} {
		if !strings.Contains(req.URL, want) {
			t.Errorf("URL %s lacks %s", req.URL, want)
		}
	}
	cursor = res.Cursor

	// The since moved, so this poll fetches the new URL once, emits nothing and keeps its ETag.
	res = poll(t, h, helloWorld, &cursor)
	if len(res.Events) != 0 || decodeCursor(t, res.Cursor).ETag == "" {
		t.Fatalf("second poll: %+v", res)
	}
	cursor = res.Cursor

	// Nothing changed: GitHub answers 304 and the cursor stays as it was.
	before := gh.ListIssuesRequests("octocat", "Hello-World")
	res = poll(t, h, helloWorld, &cursor)
	if len(res.Events) != 0 || res.Cursor != cursor {
		t.Fatalf("304 poll: %+v", res)
	}
	if n := gh.ListIssuesRequests("octocat", "Hello-World") - before; n != 1 {
		t.Errorf("%d list requests in one poll", n)
	}
	last := h.Requests()[len(h.Requests())-1]
	if last.Headers["If-None-Match"] != decodeCursor(t, cursor).ETag {
		t.Errorf("If-None-Match = %q", last.Headers["If-None-Match"])
	}

	gh.AddPullRequest("octocat", "Hello-World", "A pull request")
	gh.AddIssue("octocat", "Hello-World", "Third", "")
	res = poll(t, h, helloWorld, &cursor)
	if got := eventIDs(res); got != "9" {
		t.Errorf("after the 304: events %s, want 9 (8 is a pull request)", got)
	}
	if c := decodeCursor(t, res.Cursor); c.LastNumber != 9 {
		t.Errorf("cursor %+v", c)
	}
}

func TestNewIssueSkipsPullRequests(t *testing.T) {
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	// A cursor from before the repository's first issue: #4 is a pull request.
	cursor := `{"since":"","last_number":0}`
	res := poll(t, h, helloWorld, &cursor)
	if got := eventIDs(res); got != "1,2,3,5" {
		t.Errorf("events %s, want 1,2,3,5", got)
	}
	if c := decodeCursor(t, res.Cursor); c.LastNumber != 5 {
		t.Errorf("last_number %d, want 5 (pull requests count as seen)", c.LastNumber)
	}
}

func TestNewIssuePaginationBound(t *testing.T) {
	gh := githubfake.New(t)
	gh.AddRepo("plugboard", "flood")
	const total = maxPollPages*perPollPage + 30
	for i := range total {
		gh.AddIssue("plugboard", "flood", fmt.Sprintf("Issue %d", i+1), "")
	}
	h := harness(t, gh, gh.Token)
	flood := RepoRef{Owner: "plugboard", Repo: "flood"}
	cursor := `{"since":"","last_number":0}`

	res := poll(t, h, flood, &cursor)
	if !res.More || len(res.Events) != maxPollPages*perPollPage || res.Events[0].ID != "1" {
		t.Fatalf("first poll: more=%v, %d events", res.More, len(res.Events))
	}
	c := decodeCursor(t, res.Cursor)
	if c.Next == "" || c.LastNumber != 0 || c.High != maxPollPages*perPollPage {
		t.Errorf("cursor after the bound = %+v", c)
	}

	res = poll(t, h, flood, &res.Cursor)
	if res.More || len(res.Events) != 30 || res.Events[0].ID != fmt.Sprint(maxPollPages*perPollPage+1) {
		t.Fatalf("second poll: more=%v, %d events", res.More, len(res.Events))
	}
	if c := decodeCursor(t, res.Cursor); c.Next != "" || c.High != 0 || c.LastNumber != total {
		t.Errorf("final cursor = %+v", c)
	}
}

func TestNewIssueErrors(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		setup     func(gh *githubfake.Fake)
		repo      RepoRef
		cursor    *string
		code      string
		retryable bool
	}{
		{name: "a wrong token is unauthorized", token: "ghp_wrong", repo: helloWorld, code: abi.CodeUnauthorized},
		{name: "a missing repository is not_found", repo: RepoRef{Owner: "octocat", Repo: "nope"}, code: abi.CodeNotFound},
		{
			name: "an exhausted rate limit is rate_limited and retryable", repo: helloWorld,
			setup:  func(gh *githubfake.Fake) { gh.PrimaryRateLimit(1, time.Now().Add(time.Minute)) },
			cursor: ptr(`{"since":"","last_number":5}`), code: abi.CodeRateLimited, retryable: true,
		},
		{name: "a foreign cursor is invalid_input", repo: helloWorld, cursor: ptr(`[1]`), code: abi.CodeInvalidInput},
		{
			name: "a next page on another origin is refused", repo: helloWorld,
			cursor: ptr(`{"since":"","last_number":5,"next":"https://evil.example/x"}`), code: abi.CodeInvalidInput,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := githubfake.New(t)
			if tt.setup != nil {
				tt.setup(gh)
			}
			h := harness(t, gh, cmpOr(tt.token, gh.Token))
			_, e := h.Poll("new_issue", tt.repo, tt.cursor)
			if e == nil || e.Code != tt.code || e.Retryable != tt.retryable {
				t.Fatalf("error = %+v, want %s (retryable %v)", e, tt.code, tt.retryable)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// inbox is a webhook callback URL that hands what it receives to the test.
type inbox struct {
	srv *httptest.Server
	got chan abi.InboundRequest
}

func newInbox(t *testing.T) *inbox {
	in := &inbox{got: make(chan abi.InboundRequest, 10)}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		headers := map[string]string{}
		for k, v := range r.Header {
			headers[k] = strings.Join(v, ", ") // canonical names, as the host sends them
		}
		in.got <- abi.InboundRequest{Method: r.Method, Path: r.URL.Path, Query: map[string]string{}, Headers: headers,
			BodyBase64: base64.StdEncoding.EncodeToString(body)}
	}))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *inbox) next(t *testing.T) abi.InboundRequest {
	t.Helper()
	select {
	case r := <-in.got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery arrived")
	}
	return abi.InboundRequest{}
}

const hookSecret = "per-subscription-secret"

func subscribe(t *testing.T, h *pdktest.Harness, callback, secret string, params string) json.RawMessage {
	t.Helper()
	res, e := h.Webhook(abi.WebhookRequest{Op: abi.WebhookSubscribe, Trigger: "issue_event", Params: json.RawMessage(params),
		CallbackURL: callback, Secret: secret})
	if e != nil {
		t.Fatalf("subscribe: %v", e)
	}
	return res.State
}

func receive(t *testing.T, h *pdktest.Harness, state json.RawMessage, req abi.InboundRequest) abi.WebhookResult {
	t.Helper()
	res, e := h.Webhook(abi.WebhookRequest{Op: abi.WebhookReceive, Trigger: "issue_event", Params: json.RawMessage(`{"owner":"octocat","repo":"Hello-World"}`),
		Secret: hookSecret, State: state, Request: &req})
	if e != nil {
		t.Fatalf("receive: %v", e)
	}
	return res
}

func TestIssueEventWebhook(t *testing.T) {
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	in := newInbox(t)

	state := subscribe(t, h, in.srv.URL+"/hooks/tok", hookSecret, `{"owner":"octocat","repo":"Hello-World"}`)
	hooks := gh.Hooks("octocat", "Hello-World")
	if len(hooks) != 1 {
		t.Fatalf("hooks = %+v", hooks)
	}
	hk := hooks[0]
	if string(state) != fmt.Sprintf(`{"hook_id":%d}`, hk.ID) || hk.URL != in.srv.URL+"/hooks/tok" || hk.Secret != hookSecret ||
		hk.ContentType != "json" || !hk.Active || fmt.Sprint(hk.Events) != "[issues]" {
		t.Fatalf("state %s, hook %+v", state, hk)
	}

	t.Run("ping answers pong", func(t *testing.T) {
		res := receive(t, h, state, in.next(t))
		if len(res.Events) != 0 || res.Response == nil || res.Response.Status != 200 || res.Response.Body != "pong" {
			t.Errorf("ping: %+v", res)
		}
	})

	is := gh.AddIssue("octocat", "Hello-World", "Hooked", "body text")
	t.Run("a signed issues delivery is one event", func(t *testing.T) {
		if _, err := gh.DeliverIssueEvent(context.Background(), "octocat", "Hello-World", "opened", is); err != nil {
			t.Fatal(err)
		}
		req := in.next(t)
		res := receive(t, h, state, req)
		if len(res.Events) != 1 || (res.Response != nil && res.Response.Status != 200) {
			t.Fatalf("receive: %+v", res)
		}
		ev := res.Events[0]
		var data IssueEvent
		json.Unmarshal(ev.Data, &data)
		if ev.ID != req.Headers["X-Github-Delivery"] || ev.ID == "" || ev.Type != "opened" || ev.Time != is.UpdatedAt.Format(time.RFC3339Nano) ||
			data.Action != "opened" || data.Issue.Number != is.Number || data.Issue.Title != "Hooked" || data.Repository != "octocat/Hello-World" || data.Sender != "octocat" {
			t.Errorf("event %+v data %+v", ev, data)
		}
	})

	refused := func(t *testing.T, res abi.WebhookResult) {
		t.Helper()
		if len(res.Events) != 0 || res.Response == nil || res.Response.Status != 401 || res.Response.Body == "" {
			t.Errorf("receive: %+v, want 401 and no events", res)
		}
	}
	t.Run("a forged signature is refused", func(t *testing.T) {
		if _, err := gh.DeliverForged(context.Background(), "octocat", "Hello-World", "opened", is); err != nil {
			t.Fatal(err)
		}
		refused(t, receive(t, h, state, in.next(t)))
	})
	t.Run("a missing or malformed signature is refused", func(t *testing.T) {
		gh.DeliverIssueEvent(context.Background(), "octocat", "Hello-World", "closed", is)
		req := in.next(t)
		delete(req.Headers, "X-Hub-Signature-256")
		refused(t, receive(t, h, state, req))
		req.Headers["X-Hub-Signature-256"] = "sha256=zz"
		refused(t, receive(t, h, state, req))
		req.Headers["X-Hub-Signature-256"] = strings.Replace(githubfake.Signature(hookSecret, []byte("x")), "sha256=", "sha1=", 1)
		refused(t, receive(t, h, state, req))
	})

	t.Run("subscribing again to the same URL takes the hook over", func(t *testing.T) {
		again := subscribe(t, h, in.srv.URL+"/hooks/tok", "rotated", `{"owner":"octocat","repo":"Hello-World","events":["issues","issue_comment"]}`)
		hs := gh.Hooks("octocat", "Hello-World")
		if string(again) != string(state) || len(hs) != 1 || hs[0].Secret != "rotated" || len(hs[0].Events) != 2 {
			t.Errorf("state %s hooks %+v", again, hs)
		}
	})

	t.Run("unsubscribe deletes the hook, and a gone hook counts as done", func(t *testing.T) {
		for i := range 2 {
			if _, e := h.Webhook(abi.WebhookRequest{Op: abi.WebhookUnsubscribe, Trigger: "issue_event",
				Params: json.RawMessage(`{"owner":"octocat","repo":"Hello-World"}`), State: state}); e != nil {
				t.Fatalf("unsubscribe %d: %v", i+1, e)
			}
		}
		if hs := gh.Hooks("octocat", "Hello-World"); len(hs) != 0 {
			t.Errorf("hooks left: %+v", hs)
		}
		if n := gh.RequestsTo("DELETE /repos/{owner}/{repo}/hooks/{id}"); n != 2 {
			t.Errorf("%d DELETE requests, want 2", n)
		}
	})
}

func TestIssueEventSubscribeErrors(t *testing.T) {
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	_, e := h.Webhook(abi.WebhookRequest{Op: abi.WebhookSubscribe, Trigger: "issue_event",
		Params: json.RawMessage(`{"owner":"octocat","repo":"nope"}`), CallbackURL: "https://pb.example/hooks/x", Secret: "s"})
	if e == nil || e.Code != abi.CodeNotFound {
		t.Errorf("missing repository: %+v", e)
	}
	_, e = h.Webhook(abi.WebhookRequest{Op: abi.WebhookSubscribe, Trigger: "issue_event",
		Params: json.RawMessage(`{"owner":"octocat","repo":"Hello-World","events":["push"]}`), CallbackURL: "https://pb.example/hooks/x", Secret: "s"})
	if e == nil || e.Code != abi.CodeInvalidInput {
		t.Errorf("an event outside the enum: %+v", e)
	}
}

func TestTriggerManifest(t *testing.T) {
	m := harness(t, githubfake.New(t), githubfake.Token).Describe()
	kinds := map[string]string{}
	params := map[string]string{}
	for _, tr := range m.Triggers {
		kinds[tr.Name] = tr.Kind
		var s struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		}
		json.Unmarshal(tr.ParamsSchema, &s)
		var names []string
		for k := range s.Properties {
			names = append(names, k)
		}
		slices.Sort(names)
		params[tr.Name] = strings.Join(names, ",") + " required " + strings.Join(s.Required, ",")
		if len(tr.EventSchema) == 0 {
			t.Errorf("%s has no event_schema", tr.Name)
		}
	}
	if kinds["new_issue"] != abi.TriggerPoll || kinds["issue_event"] != abi.TriggerWebhook {
		t.Errorf("kinds = %v", kinds)
	}
	if params["new_issue"] != "owner,repo required owner,repo" || params["issue_event"] != "events,owner,repo required owner,repo" {
		t.Errorf("params = %v", params)
	}
}
