package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

func harness(t *testing.T, gh *githubfake.Fake, token string) *pdktest.Harness {
	t.Helper()
	return pdktest.New(t, pdktest.Options{
		Connection: &abi.Connection{ID: "gh", Params: map[string]any{"base_url": gh.URL}},
		Credential: pdktest.Credential{APIKey: token},
	})
}

func TestManifest(t *testing.T) {
	m := harness(t, githubfake.New(t), githubfake.Token).Describe()
	if m.Name != "github" || m.Version != version || !m.HasAuthType(abi.AuthAPIKey) {
		t.Errorf("manifest = %+v", m)
	}
	if k := m.Auth.APIKey; k == nil || k.In != "header" || k.Name != "Authorization" || k.Prefix != "Bearer " {
		t.Errorf("api_key = %+v", k)
	}
	if len(m.Hosts) != 1 || m.Hosts[0] != "{base_url}" {
		t.Errorf("hosts = %v", m.Hosts)
	}
	var names []string
	for _, a := range m.Actions {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, ","); got != "get_repo,list_issues,create_issue,add_comment" {
		t.Errorf("actions = %s", got)
	}
	for _, name := range []string{"get_repo", "list_issues"} {
		if a, _ := m.Action(name); a.Annotations == nil || !a.Annotations.ReadOnly {
			t.Errorf("%s is not read-only", name)
		}
	}
	li, _ := m.Action("list_issues")
	var schema struct {
		Properties map[string]map[string]any `json:"properties"`
		Required   []string                  `json:"required"`
	}
	if err := json.Unmarshal(li.InputSchema, &schema); err != nil {
		t.Fatal(err)
	}
	if l := schema.Properties["limit"]; l["maximum"] != 1000.0 || l["default"] != 30.0 || l["minimum"] != 1.0 {
		t.Errorf("limit schema = %v", l)
	}
	if strings.Join(schema.Required, ",") != "owner,repo" {
		t.Errorf("required = %v", schema.Required)
	}
	var params map[string]any
	json.Unmarshal(m.ConnectionParams, &params)
	if d := params["properties"].(map[string]any)["base_url"].(map[string]any)["default"]; d != "https://api.github.com" {
		t.Errorf("base_url default = %v", d)
	}
}

func TestGetRepo(t *testing.T) {
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	var r Repo
	if err := h.InvokeInto("get_repo", RepoRef{Owner: "octocat", Repo: "hello-world"}, &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != 1296269 || r.FullName != "octocat/Hello-World" || r.Owner.Login != "octocat" || r.DefaultBranch != "main" ||
		r.Description != "This your first repo!" || r.OpenIssuesCount != 4 || r.StargazersCount != 80 || r.Visibility != "public" ||
		r.CreatedAt.IsZero() || r.PushedAt == nil || len(r.Topics) != 2 {
		t.Errorf("repo = %+v", r)
	}
	if got := gh.LastAuthorization(); got != "Bearer "+gh.Token {
		t.Errorf("Authorization = %q", got)
	}
	for name, want := range map[string]string{
		"Accept":               "application/vnd.github+json",
		"X-GitHub-Api-Version": "2022-11-28",
		"User-Agent":           "plugboard-github/" + version,
	} {
		if got := gh.LastHeader(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := h.Requests()[0].URL; got != gh.URL+"/repos/octocat/hello-world" {
		t.Errorf("URL = %s", got)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		setup     func(gh *githubfake.Fake)
		action    string
		input     any
		code      string
		message   string
		retryable bool
		details   map[string]any
	}{
		{
			name: "a missing repository is not_found with GitHub's message", action: "get_repo",
			input: RepoRef{Owner: "octocat", Repo: "nope"}, code: abi.CodeNotFound, message: "Not Found",
			details: map[string]any{"status": 404.0, "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository"},
		},
		{
			name: "a wrong token is unauthorized", token: "ghp_wrong", action: "get_repo",
			input: RepoRef{Owner: "octocat", Repo: "Hello-World"}, code: abi.CodeUnauthorized, message: "Bad credentials",
		},
		{
			name: "a validation failure is invalid_input with GitHub's message and errors", action: "create_issue",
			input: map[string]any{"owner": "octocat", "repo": "Hello-World", "title": "   "},
			code:  abi.CodeInvalidInput, message: "Validation Failed: Issue.title missing_field",
		},
		{
			name: "a secondary rate limit is rate_limited with retry_after_s", action: "get_repo",
			setup: func(gh *githubfake.Fake) { gh.SecondaryRateLimit(1, 90*time.Second) },
			input: RepoRef{Owner: "octocat", Repo: "Hello-World"}, code: abi.CodeRateLimited, retryable: true,
			message: "You have exceeded a secondary rate limit",
			details: map[string]any{"retry_after_s": 90.0},
		},
		{
			name: "an exhausted primary rate limit is rate_limited until the reset", action: "list_issues",
			setup: func(gh *githubfake.Fake) { gh.PrimaryRateLimit(1, time.Now().Add(10*time.Minute)) },
			input: map[string]any{"owner": "octocat", "repo": "Hello-World"}, code: abi.CodeRateLimited, retryable: true,
			message: "API rate limit exceeded",
		},
		{
			name: "a 502 is a retryable upstream_error", action: "get_repo",
			setup: func(gh *githubfake.Fake) { gh.ServerError(1, http.StatusBadGateway) },
			input: RepoRef{Owner: "octocat", Repo: "Hello-World"}, code: abi.CodeUpstreamError, retryable: true, message: "Server Error",
		},
		{
			name: "a 500 is an upstream_error", action: "create_issue",
			setup: func(gh *githubfake.Fake) { gh.ServerError(1, http.StatusInternalServerError) },
			input: map[string]any{"owner": "octocat", "repo": "Hello-World", "title": "x"}, code: abi.CodeUpstreamError, message: "Server Error",
		},
		{
			name: "a comment on a missing issue is not_found", action: "add_comment",
			input: map[string]any{"owner": "octocat", "repo": "Hello-World", "issue_number": 99, "body": "hi"}, code: abi.CodeNotFound, message: "Not Found",
		},
		{
			name: "an owner with a slash is refused before any request", action: "get_repo",
			input: RepoRef{Owner: "octocat/../../admin", Repo: "x"}, code: abi.CodeInvalidInput, message: "input/owner",
		},
		{
			name: "a limit over 1000 is refused by the schema", action: "list_issues",
			input: map[string]any{"owner": "o", "repo": "r", "limit": 1001}, code: abi.CodeInvalidInput, message: "input/limit",
		},
		{
			name: "an empty title is refused by the schema", action: "create_issue",
			input: map[string]any{"owner": "o", "repo": "r", "title": ""}, code: abi.CodeInvalidInput, message: "input/title",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := githubfake.New(t)
			if tt.setup != nil {
				tt.setup(gh)
			}
			token := tt.token
			if token == "" {
				token = gh.Token
			}
			_, err := harness(t, gh, token).Invoke(tt.action, tt.input)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Code != tt.code || err.Retryable != tt.retryable || !strings.Contains(err.Message, tt.message) {
				t.Errorf("got %+v, want code %s retryable %v message containing %q", err, tt.code, tt.retryable, tt.message)
			}
			d := pdktest.Details(t, err)
			for k, v := range tt.details {
				if d[k] != v {
					t.Errorf("details[%s] = %v, want %v (details %s)", k, d[k], v, err.Details)
				}
			}
		})
	}
}

func TestPrimaryRateLimitRetryAfter(t *testing.T) {
	gh := githubfake.New(t)
	gh.PrimaryRateLimit(1, time.Now().Add(10*time.Minute))
	_, err := harness(t, gh, gh.Token).Invoke("get_repo", RepoRef{Owner: "octocat", Repo: "Hello-World"})
	if err == nil {
		t.Fatal("no error")
	}
	if s, _ := pdktest.Details(t, err)["retry_after_s"].(float64); s < 590 || s > 600 {
		t.Errorf("retry_after_s = %v, want about 600", s)
	}
}

func TestListIssues(t *testing.T) {
	tests := []struct {
		name       string
		input      map[string]any
		wantCount  int
		wantFirst  int // number of the first issue (newest first)
		wantPages  int
		wantPerReq string
	}{
		{"the default limit is 30, one page", map[string]any{"owner": "plugboard", "repo": "busy"}, 30, 250, 1, "30"},
		{"pages of 100 are followed through Link headers", map[string]any{"owner": "plugboard", "repo": "busy", "limit": 250}, 250, 250, 3, "100"},
		{"stops at the limit mid-way", map[string]any{"owner": "plugboard", "repo": "busy", "limit": 150}, 150, 250, 2, "100"},
		{"a limit above the total returns everything", map[string]any{"owner": "plugboard", "repo": "busy", "limit": 1000}, 250, 250, 3, "100"},
		{"a small limit asks for a small page", map[string]any{"owner": "plugboard", "repo": "busy", "limit": 5}, 5, 250, 1, "5"},
		{"closed issues only", map[string]any{"owner": "octocat", "repo": "Hello-World", "state": "closed"}, 1, 2, 1, "30"},
		{"all issues, pull requests included", map[string]any{"owner": "octocat", "repo": "Hello-World", "state": "all"}, 5, 5, 1, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := githubfake.New(t)
			h := harness(t, gh, gh.Token)
			var out ListIssuesOutput
			if err := h.InvokeInto("list_issues", tt.input, &out); err != nil {
				t.Fatal(err)
			}
			if out.Count != tt.wantCount || len(out.Issues) != tt.wantCount {
				t.Fatalf("got %d issues (count %d), want %d", len(out.Issues), out.Count, tt.wantCount)
			}
			if out.Issues[0].Number != tt.wantFirst {
				t.Errorf("first issue #%d, want #%d", out.Issues[0].Number, tt.wantFirst)
			}
			seen := map[int]bool{}
			for i, is := range out.Issues {
				if seen[is.Number] {
					t.Fatalf("issue #%d twice", is.Number)
				}
				seen[is.Number] = true
				if i > 0 && is.Number > out.Issues[i-1].Number {
					t.Fatalf("not newest first at %d", i)
				}
			}
			reqs := h.Requests()
			if len(reqs) != tt.wantPages {
				t.Errorf("%d requests, want %d", len(reqs), tt.wantPages)
			}
			if !strings.Contains(reqs[0].URL, "per_page="+tt.wantPerReq) {
				t.Errorf("first request %s, want per_page=%s", reqs[0].URL, tt.wantPerReq)
			}
			if tt.wantPages > 1 && gh.RequestsTo("GET /repositories/{id}/issues") != tt.wantPages-1 {
				t.Errorf("the Link header URLs were not followed: %v", reqs)
			}
		})
	}
}

func TestListIssuesShapes(t *testing.T) {
	gh := githubfake.New(t)
	var out ListIssuesOutput
	if err := harness(t, gh, gh.Token).InvokeInto("list_issues", map[string]any{"owner": "octocat", "repo": "Hello-World", "state": "all"}, &out); err != nil {
		t.Fatal(err)
	}
	byNumber := map[int]Issue{}
	for _, is := range out.Issues {
		byNumber[is.Number] = is
	}
	if is := byNumber[4]; !is.IsPullRequest {
		t.Errorf("#4 is a pull request: %+v", is)
	}
	if is := byNumber[1]; is.IsPullRequest || is.State != "open" || is.Title != "Found a bug" || is.User.Login != "octocat" || is.ClosedAt != nil ||
		is.Labels == nil || is.HTMLURL != "https://github.com/octocat/Hello-World/issues/1" {
		t.Errorf("#1 = %+v", is)
	}
	if is := byNumber[2]; is.State != "closed" || is.StateReason != "completed" || is.ClosedAt == nil {
		t.Errorf("#2 = %+v", is)
	}
}

func TestListIssuesRateLimitedMidway(t *testing.T) {
	gh := githubfake.New(t)
	// The first page succeeds; the request for the second hits the secondary rate limit.
	transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.Contains(r.URL.RawQuery, "page=2") {
			gh.SecondaryRateLimit(1, time.Minute)
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	h := pdktest.New(t, pdktest.Options{
		Connection: &abi.Connection{ID: "gh", Params: map[string]any{"base_url": gh.URL}},
		Credential: pdktest.Credential{APIKey: gh.Token},
		Transport:  transport,
	})
	_, err := h.Invoke("list_issues", map[string]any{"owner": "plugboard", "repo": "busy", "limit": 300})
	if err == nil || err.Code != abi.CodeRateLimited || !err.Retryable {
		t.Errorf("got %+v", err)
	}
	if n := len(h.Requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestCreateIssue(t *testing.T) {
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	var is Issue
	in := CreateIssueInput{RepoRef: RepoRef{Owner: "octocat", Repo: "Hello-World"}, Title: "New bug", Body: "It **breaks**.", Labels: []string{"bug", "p1"}}
	if err := h.InvokeInto("create_issue", in, &is); err != nil {
		t.Fatal(err)
	}
	if is.Number != 6 || is.Title != "New bug" || is.Body != "It **breaks**." || is.State != "open" || len(is.Labels) != 2 || is.Labels[0].Name != "bug" {
		t.Errorf("issue = %+v", is)
	}
	stored := gh.Issues("octocat", "Hello-World")
	if len(stored) != 6 || stored[5].Title != "New bug" {
		t.Errorf("the fake holds %d issues", len(stored))
	}
	req := h.Requests()[0]
	if req.Method != "POST" || req.Headers["Content-Type"] != "application/json" || req.Body == nil ||
		*req.Body != `{"body":"It **breaks**.","labels":["bug","p1"],"title":"New bug"}` {
		t.Errorf("request = %+v body %v", req, *req.Body)
	}
}

func TestAddComment(t *testing.T) {
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	var c Comment
	if err := h.InvokeInto("add_comment", map[string]any{"owner": "octocat", "repo": "Hello-World", "issue_number": 1, "body": "Me too"}, &c); err != nil {
		t.Fatal(err)
	}
	if c.ID == 0 || c.Body != "Me too" || c.User.Login != "octocat" || !strings.Contains(c.HTMLURL, "/issues/1#issuecomment-") || c.CreatedAt.IsZero() {
		t.Errorf("comment = %+v", c)
	}
	if got := gh.Comments("octocat", "Hello-World", 1); len(got) != 1 || got[0].Body != "Me too" {
		t.Errorf("the fake holds %v", got)
	}
}

func TestGitHubEnterpriseBaseURL(t *testing.T) {
	// GitHub Enterprise Server serves the API under /api/v3.
	gh := githubfake.New(t)
	srv := httptest.NewServer(http.StripPrefix("/api/v3", gh.Server.Config.Handler))
	t.Cleanup(srv.Close)
	h := pdktest.New(t, pdktest.Options{
		Connection: &abi.Connection{ID: "ghe", Params: map[string]any{"base_url": srv.URL + "/api/v3/"}},
		Credential: pdktest.Credential{APIKey: gh.Token},
	})
	var r Repo
	if err := h.InvokeInto("get_repo", RepoRef{Owner: "octocat", Repo: "Hello-World"}, &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != 1296269 {
		t.Errorf("repo = %+v", r)
	}
}

func TestOtherOriginsAreRefused(t *testing.T) {
	// The connection points at the fake; the connector can reach nothing else, so a
	// base_url-relative bug could never leak the token.
	gh := githubfake.New(t)
	h := harness(t, gh, gh.Token)
	if got := h.Origins(); len(got) != 1 || got[0] != gh.URL {
		t.Errorf("origins = %v", got)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{
		Connection: &abi.Connection{ID: "gh", Params: map[string]any{"base_url": "http://127.0.0.1:1"}},
		Credential: pdktest.Credential{APIKey: "x"},
	})
	_, err := h.Invoke("get_repo", RepoRef{Owner: "o", Repo: "r"})
	if err == nil || err.Code != abi.CodeUnavailable || !err.Retryable {
		t.Errorf("got %+v", err)
	}
}

func TestSummarize(t *testing.T) {
	got := summarize([]json.RawMessage{
		json.RawMessage(`{"resource":"Issue","code":"missing_field","field":"title"}`),
		json.RawMessage(`{"resource":"Label","code":"custom","field":"name","message":"name is too long"}`),
		json.RawMessage(`"plain text error"`),
		json.RawMessage(`{"code":"invalid"}`),
	})
	if want := "Issue.title missing_field; name is too long; plain text error; invalid"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBaseURLDefaultsToGitHub(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{
		Connection: &abi.Connection{ID: "gh", Params: map[string]any{}},
		Credential: pdktest.Credential{APIKey: "x"},
	})
	if got := h.Origins(); len(got) != 1 || got[0] != "https://api.github.com" {
		t.Errorf("origins = %v", got)
	}
}
