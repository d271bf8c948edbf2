// Command github is the GitHub connector: repositories, issues and comments through the GitHub
// REST API (api.github.com, or GitHub Enterprise Server through base_url).
//
// Auth is a token (a fine-grained or classic personal access token, or an installation token)
// that the host sends as "Authorization: Bearer <token>". Requests carry the media type
// application/vnd.github+json and pin the API version 2022-11-28.
//
// GitHub's errors map to guest codes: 401 unauthorized, 403 forbidden, 404 and 410 not_found,
// 409 conflict, 400 and 422 invalid_input (with GitHub's message and its validation errors in
// details), 403 or 429 with Retry-After, X-RateLimit-Remaining: 0 or a secondary rate limit
// message rate_limited (retryable, details.retry_after_s), 5xx upstream_error (retryable for
// 502, 503 and 504).
//
// Triggers (triggers.go):
//
//   - new_issue (poll, params owner and repo): the baseline poll records the newest issue's
//     number and created_at. Later polls list state=all&sort=created&direction=asc&since=<that
//     created_at> (GitHub's since filters on updated_at, so every newer issue is in it) with
//     If-None-Match, emit the issues (not pull requests) numbered above the last one seen, one
//     event per issue with id = the number, and follow rel="next" up to 10 pages of 100 before
//     answering more. The cursor is {"since", "last_number", "etag", "next", "high"}.
//   - issue_event (webhook, params owner, repo, events): subscribe creates a repository hook
//     (content type json, the subscription's secret) and keeps {"hook_id"}; unsubscribe deletes
//     it (404 counts as done); receive checks X-Hub-Signature-256 in constant time (401 without
//     events otherwise), answers pings with "pong" and turns issues (and issue_comment)
//     deliveries into one event with id = X-GitHub-Delivery and type = the payload's action.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o github.wasm ./plugins/github
package main

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

func main() {}

// version is the connector's version, also sent in the User-Agent GitHub requires.
const version = "1.0.0"

// defaultBaseURL is used when the connection does not set base_url.
const defaultBaseURL = "https://api.github.com"

func init() {
	pdk.Connector(pdk.Info{
		Name:        "github",
		Version:     version,
		Title:       "GitHub",
		Description: "Repositories, issues and comments on GitHub.",
		Auth: abi.Auth{
			Types:  []string{abi.AuthAPIKey},
			APIKey: &abi.APIKeyAuth{In: "header", Name: "Authorization", Prefix: "Bearer "},
		},
		ConnectionParams: `{"type":"object","properties":{"base_url":{"type":"string","format":"uri","default":"https://api.github.com",` +
			`"description":"API root: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server."}},"additionalProperties":false}`,
		Hosts: []string{"{base_url}"},
	})
	pdk.Action("get_repo", getRepo,
		pdk.Title("Get repository"),
		pdk.Description("Returns a repository's metadata: description, default branch, visibility, stars, forks and open issue count."),
		pdk.ReadOnly(), pdk.Idempotent())
	pdk.Action("list_issues", listIssues,
		pdk.Title("List issues"),
		pdk.Description("Lists a repository's issues, newest first, following GitHub's pagination up to limit. "+
			"GitHub counts pull requests as issues; they are included with is_pull_request set."),
		pdk.ReadOnly(), pdk.Idempotent())
	pdk.Action("create_issue", createIssue,
		pdk.Title("Create issue"),
		pdk.Description("Opens a new issue in a repository. Labels that do not exist are created if the token may."))
	pdk.Action("add_comment", addComment,
		pdk.Title("Add comment"),
		pdk.Description("Adds a comment to an issue or pull request."))
}

// RepoRef names a repository.
type RepoRef struct {
	Owner string `json:"owner" jsonschema:"Account (user or organization) that owns the repository" pattern:"^[A-Za-z0-9][A-Za-z0-9-]*$" maxLength:"39"`
	Repo  string `json:"repo" jsonschema:"Repository name, without the owner" pattern:"^[A-Za-z0-9_.-]+$" maxLength:"100"`
}

// User is a GitHub account.
type User struct {
	Login   string `json:"login"`
	ID      int64  `json:"id"`
	Type    string `json:"type,omitempty" jsonschema:"User, Organization or Bot"`
	HTMLURL string `json:"html_url,omitempty"`
}

// Repo is a repository.
type Repo struct {
	ID              int64      `json:"id"`
	Name            string     `json:"name"`
	FullName        string     `json:"full_name"`
	Owner           User       `json:"owner"`
	Private         bool       `json:"private"`
	Visibility      string     `json:"visibility,omitempty" jsonschema:"public, private or internal"`
	Description     string     `json:"description"`
	HTMLURL         string     `json:"html_url"`
	DefaultBranch   string     `json:"default_branch"`
	Language        string     `json:"language,omitempty"`
	Topics          []string   `json:"topics"`
	Fork            bool       `json:"fork"`
	Archived        bool       `json:"archived"`
	StargazersCount int        `json:"stargazers_count"`
	ForksCount      int        `json:"forks_count"`
	OpenIssuesCount int        `json:"open_issues_count" jsonschema:"Open issues and pull requests"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	PushedAt        *time.Time `json:"pushed_at,omitempty"`
}

// Label is an issue label.
type Label struct {
	Name        string `json:"name"`
	Color       string `json:"color,omitempty" jsonschema:"Hex colour without #"`
	Description string `json:"description,omitempty"`
}

// Issue is an issue (or a pull request, which GitHub lists among issues).
type Issue struct {
	ID            int64      `json:"id"`
	Number        int        `json:"number"`
	Title         string     `json:"title"`
	Body          string     `json:"body"`
	State         string     `json:"state" jsonschema:"open or closed"`
	StateReason   string     `json:"state_reason,omitempty" jsonschema:"completed, not_planned or reopened"`
	HTMLURL       string     `json:"html_url"`
	User          User       `json:"user"`
	Labels        []Label    `json:"labels"`
	Assignees     []User     `json:"assignees"`
	Comments      int        `json:"comments" jsonschema:"Number of comments"`
	IsPullRequest bool       `json:"is_pull_request"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	ClosedAt      *time.Time `json:"closed_at,omitempty"`
}

// Comment is an issue comment.
type Comment struct {
	ID        int64     `json:"id"`
	Body      string    `json:"body"`
	HTMLURL   string    `json:"html_url"`
	User      User      `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ListIssuesInput is the input of list_issues.
type ListIssuesInput struct {
	RepoRef
	State string `json:"state,omitempty" jsonschema:"Which issues to list" enum:"open,closed,all" default:"open"`
	Limit int    `json:"limit,omitempty" jsonschema:"Maximum number of issues to return" minimum:"1" maximum:"1000" default:"30"`
}

// ListIssuesOutput is the output of list_issues.
type ListIssuesOutput struct {
	Issues []Issue `json:"issues"`
	Count  int     `json:"count" jsonschema:"Number of issues returned"`
}

// CreateIssueInput is the input of create_issue.
type CreateIssueInput struct {
	RepoRef
	Title  string   `json:"title" jsonschema:"Issue title" minLength:"1" maxLength:"256"`
	Body   string   `json:"body,omitempty" jsonschema:"Issue text, in GitHub Markdown"`
	Labels []string `json:"labels,omitempty" jsonschema:"Label names to apply" minLength:"1"`
}

// AddCommentInput is the input of add_comment.
type AddCommentInput struct {
	RepoRef
	IssueNumber int    `json:"issue_number" jsonschema:"Number of the issue or pull request" minimum:"1"`
	Body        string `json:"body" jsonschema:"Comment text, in GitHub Markdown" minLength:"1" maxLength:"65536"`
}

func getRepo(ctx *pdk.Context, in RepoRef) (Repo, error) {
	c := newClient(ctx)
	var r Repo
	if _, err := c.http.GetJSON(c.repoURL(in), &r); err != nil {
		return Repo{}, err
	}
	if r.Topics == nil {
		r.Topics = []string{}
	}
	return r, nil
}

func listIssues(ctx *pdk.Context, in ListIssuesInput) (ListIssuesOutput, error) {
	state := in.State
	if state == "" {
		state = "open"
	}
	limit := in.Limit
	if limit <= 0 {
		limit = 30
	}
	limit = min(limit, 1000)
	c := newClient(ctx)
	first := c.repoURL(in.RepoRef) + "/issues?" + url.Values{
		"state":    {state},
		"per_page": {strconv.Itoa(min(limit, 100))},
	}.Encode()
	issues, err := pdk.Paginate(limit, func(next string) ([]Issue, string, error) {
		if next == "" {
			next = first
		}
		var page []wireIssue
		resp, err := c.http.GetJSON(next, &page)
		if err != nil {
			return nil, "", err
		}
		out := make([]Issue, len(page))
		for i, w := range page {
			out[i] = w.issue()
		}
		return out, pdk.NextLink(resp), nil
	})
	if err != nil {
		return ListIssuesOutput{}, err
	}
	if issues == nil {
		issues = []Issue{}
	}
	return ListIssuesOutput{Issues: issues, Count: len(issues)}, nil
}

func createIssue(ctx *pdk.Context, in CreateIssueInput) (Issue, error) {
	c := newClient(ctx)
	body := map[string]any{"title": in.Title}
	if in.Body != "" {
		body["body"] = in.Body
	}
	if len(in.Labels) > 0 {
		body["labels"] = in.Labels
	}
	var w wireIssue
	if _, err := c.http.PostJSON(c.repoURL(in.RepoRef)+"/issues", body, &w); err != nil {
		return Issue{}, err
	}
	return w.issue(), nil
}

func addComment(ctx *pdk.Context, in AddCommentInput) (Comment, error) {
	c := newClient(ctx)
	var out Comment
	u := c.repoURL(in.RepoRef) + "/issues/" + strconv.Itoa(in.IssueNumber) + "/comments"
	if _, err := c.http.PostJSON(u, map[string]string{"body": in.Body}, &out); err != nil {
		return Comment{}, err
	}
	return out, nil
}

// wireIssue is an issue as GitHub sends it: a pull request has a pull_request object.
type wireIssue struct {
	Issue
	PullRequest json.RawMessage `json:"pull_request"`
}

func (w wireIssue) issue() Issue {
	is := w.Issue
	is.IsPullRequest = len(w.PullRequest) > 0 && string(w.PullRequest) != "null"
	if is.Labels == nil {
		is.Labels = []Label{}
	}
	if is.Assignees == nil {
		is.Assignees = []User{}
	}
	return is
}

// client is the per-call GitHub client.
type client struct {
	http *pdk.HTTPClient
	base string
}

func newClient(ctx *pdk.Context) *client {
	base := strings.TrimSuffix(ctx.Param("base_url"), "/")
	if base == "" {
		base = defaultBaseURL
	}
	h := ctx.HTTP().WithHeaders(map[string]string{
		"Accept":               "application/vnd.github+json",
		"X-GitHub-Api-Version": "2022-11-28",
		"User-Agent":           "plugboard-github/" + version,
	}).WithStatusErrors(githubError)
	return &client{http: h, base: base}
}

func (c *client) repoURL(r RepoRef) string {
	return c.base + "/repos/" + url.PathEscape(r.Owner) + "/" + url.PathEscape(r.Repo)
}

// githubError maps a GitHub error response to a guest error (see the package comment).
func githubError(resp *pdk.Response) error {
	var doc struct {
		Message          string            `json:"message"`
		DocumentationURL string            `json:"documentation_url"`
		Errors           []json.RawMessage `json:"errors"`
	}
	_ = json.Unmarshal(resp.Body, &doc)
	msg := doc.Message
	if msg == "" {
		msg = pdk.UpstreamMessage(resp)
	}
	details := map[string]any{"status": resp.Status}
	if doc.DocumentationURL != "" {
		details["documentation_url"] = doc.DocumentationURL
	}
	e := &abi.Error{Message: msg}
	st := resp.Status
	switch {
	case st == 401:
		e.Code = abi.CodeUnauthorized
	case (st == 403 || st == 429) && isRateLimited(resp, doc.Message):
		e.Code, e.Retryable = abi.CodeRateLimited, true
		details["retry_after_s"] = retryAfterSeconds(resp, time.Now())
	case st == 403:
		e.Code = abi.CodeForbidden
	case st == 404 || st == 410:
		e.Code = abi.CodeNotFound
	case st == 409:
		e.Code = abi.CodeConflict
	case st == 400 || st == 422:
		e.Code = abi.CodeInvalidInput
		if len(doc.Errors) > 0 {
			details["errors"] = doc.Errors
			e.Message = msg + ": " + summarize(doc.Errors)
		}
	case st >= 500:
		e.Code = abi.CodeUpstreamError
		e.Retryable = st == 502 || st == 503 || st == 504
	case st < 400:
		return nil
	default:
		e.Code = abi.CodeUpstreamError
	}
	return pdk.WithDetails(e, details)
}

// isRateLimited recognises GitHub's primary (X-RateLimit-Remaining: 0) and secondary
// (Retry-After, or the message) rate limits.
func isRateLimited(resp *pdk.Response, message string) bool {
	if resp.Status == 429 || resp.Header("Retry-After") != "" || resp.Header("X-RateLimit-Remaining") == "0" {
		return true
	}
	return strings.Contains(strings.ToLower(message), "rate limit")
}

// retryAfterSeconds is how long GitHub asks to wait: Retry-After, else until X-RateLimit-Reset,
// else the minute GitHub's documentation recommends for secondary limits.
func retryAfterSeconds(resp *pdk.Response, now time.Time) int64 {
	if d, ok := pdk.RetryAfter(resp, now); ok {
		return int64((d + time.Second - 1) / time.Second)
	}
	if reset, err := strconv.ParseInt(resp.Header("X-RateLimit-Reset"), 10, 64); err == nil {
		return max(reset-now.Unix(), 1)
	}
	return 60
}

// summarize renders GitHub validation errors, which are objects ({"resource", "field",
// "code", "message"}) or plain strings, in one line.
func summarize(errs []json.RawMessage) string {
	parts := make([]string, 0, len(errs))
	for _, raw := range errs {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			parts = append(parts, s)
			continue
		}
		var e struct {
			Resource, Field, Code, Message string
		}
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		switch {
		case e.Message != "":
			parts = append(parts, e.Message)
		case e.Field != "":
			parts = append(parts, strings.TrimPrefix(e.Resource+"."+e.Field, ".")+" "+e.Code)
		default:
			parts = append(parts, e.Code)
		}
	}
	return strings.Join(parts, "; ")
}
