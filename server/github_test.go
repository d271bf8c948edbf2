package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

// TestGitHubConnectorEndToEnd runs the bundled github connector through the real server against
// a fake that behaves like api.github.com: Link pagination, 401/404/422 bodies and the secondary
// rate limit.
func TestGitHubConnectorEndToEnd(t *testing.T) {
	fake := githubfake.New(t)
	ts := startServer(t, nil)
	ts.must(201, ts.upload("github"))
	conn := ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "gh-main", "connectors": []string{"github"}, "params": map[string]any{"base_url": fake.URL},
		"auth": map[string]any{"type": "api_key", "api_key": fake.Token},
	})).json(t)
	if conn["hosts"].([]any)[0] != fake.URL {
		t.Errorf("hosts = %v", conn["hosts"])
	}
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "gh-revoked", "connectors": []string{"github"}, "params": map[string]any{"base_url": fake.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "ghp_revoked"},
	}))
	gh := func(action, connection string, input map[string]any) response {
		return ts.invoke("github", action, map[string]any{"connection": connection, "input": input})
	}

	repo := ts.must(200, gh("get_repo", "gh-main", map[string]any{"owner": "octocat", "repo": "Hello-World"})).json(t)["output"].(map[string]any)
	if repo["full_name"] != githubfake.HelloWorld {
		t.Errorf("get_repo = %v", repo)
	}
	if got := fake.LastAuthorization(); got != "Bearer "+fake.Token {
		t.Errorf("GitHub saw Authorization %q", got)
	}

	before := fake.Requests()
	issues := ts.must(200, gh("list_issues", "gh-main", map[string]any{"owner": "plugboard", "repo": "busy", "limit": 120})).json(t)["output"].(map[string]any)
	list := issues["issues"].([]any)
	if len(list) != 120 {
		t.Fatalf("list_issues returned %d issues, want 120", len(list))
	}
	if pages := fake.Requests() - before; pages < 2 {
		t.Errorf("list_issues made %d requests; 120 issues need Link pagination", pages)
	}

	created := ts.must(200, gh("create_issue", "gh-main", map[string]any{"owner": "octocat", "repo": "Hello-World", "title": "Found a bug", "body": "details"})).json(t)["output"].(map[string]any)
	n := int(created["number"].(float64))
	ts.must(200, gh("add_comment", "gh-main", map[string]any{"owner": "octocat", "repo": "Hello-World", "issue_number": n, "body": "+1"}))
	if c := fake.Comments("octocat", "Hello-World", n); len(c) != 1 {
		t.Errorf("the fake has %d comments on #%d", len(c), n)
	}

	// GitHub's errors map to the codes and statuses of ABI.md, marked as the plugin's.
	for _, tc := range []struct {
		name, action, connection string
		input                    map[string]any
		status                   int
		code                     string
	}{
		{"missing repository", "get_repo", "gh-main", map[string]any{"owner": "octocat", "repo": "nope"}, 404, "not_found"},
		{"revoked token", "get_repo", "gh-revoked", map[string]any{"owner": "octocat", "repo": "Hello-World"}, 502, "unauthorized"},
		{"validation failed", "create_issue", "gh-main", map[string]any{"owner": "octocat", "repo": "Hello-World", "title": " "}, 400, "invalid_input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := gh(tc.action, tc.connection, tc.input)
			if r.Status != tc.status || r.code(t) != tc.code || r.json(t)["source"] != "plugin" {
				t.Errorf("got %d %s, want %d %s from the plugin", r.Status, r.Body, tc.status, tc.code)
			}
		})
	}
	fake.SecondaryRateLimit(1, 30*time.Second)
	r := gh("get_repo", "gh-main", map[string]any{"owner": "octocat", "repo": "Hello-World"})
	if r.Status != http.StatusTooManyRequests || r.code(t) != "rate_limited" || r.Header.Get("Retry-After") != "30" {
		t.Errorf("secondary rate limit: %d Retry-After=%q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	// Schema validation happens before GitHub is asked.
	before = fake.Requests()
	if r := gh("get_repo", "gh-main", map[string]any{"owner": "octo cat"}); r.Status != 400 || !strings.Contains(r.json(t)["detail"].(string), "input") {
		t.Errorf("invalid input: %d %s", r.Status, r.Body)
	}
	if fake.Requests() != before {
		t.Error("an invalid input reached GitHub")
	}
}
