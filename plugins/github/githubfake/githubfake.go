// Package githubfake is an in-memory GitHub REST API for tests: the handful of endpoints the
// github connector uses, with GitHub's JSON shapes, Link header pagination, error bodies and
// rate limit responses. It runs on an httptest server on loopback.
//
//	gh := githubfake.New(t)
//	// point a connection's base_url at gh.URL and its api_key at gh.Token
//
// Endpoints:
//
//	GET  /repos/{owner}/{repo}
//	GET  /repos/{owner}/{repo}/issues?state=open|closed|all&sort=created|updated|comments&direction=asc|desc&since=ISO8601&per_page=N&page=N
//	GET  /repositories/{id}/issues?...   (the form GitHub uses in Link headers)
//	POST /repos/{owner}/{repo}/issues
//	POST /repos/{owner}/{repo}/issues/{number}/comments
//	POST /repos/{owner}/{repo}/hooks
//	GET  /repos/{owner}/{repo}/hooks
//	GET, PATCH, DELETE /repos/{owner}/{repo}/hooks/{id}
//
// Every request must carry "Authorization: Bearer <Token>" (or "token <Token>") and a
// User-Agent, as GitHub requires; otherwise the fake answers GitHub's 401 or 403.
//
// Issue lists carry an ETag; a request whose If-None-Match names the current one gets 304 with
// no body, as GitHub's conditional requests do. As on GitHub, since filters on updated_at.
//
// Webhooks: creating a hook sends it a "ping" delivery in the background, as GitHub does.
// Nothing else is delivered by itself (AddIssue and CloseIssue emit nothing): tests call
// [Fake.DeliverIssueEvent] (or [Fake.DeliverForged]) to send an "issues" delivery, signed with
// the hook's secret in X-Hub-Signature-256, to every active hook of the repository.
package githubfake

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Token is the token a new Fake accepts.
const Token = "ghp_fake0123456789abcdefghijklmnopqrstuv"

// Seeded repositories.
const (
	// HelloWorld is "octocat/Hello-World": 5 issues, #2 closed and #4 a pull request.
	HelloWorld = "octocat/Hello-World"
	// Busy is "plugboard/busy": 250 open issues, to page through.
	Busy = "plugboard/busy"
)

// Fake is a fake GitHub API server. Its methods are safe for concurrent use.
type Fake struct {
	// URL is the API root to use as a connection's base_url (like https://api.github.com).
	URL string
	// Token is the token the fake accepts.
	Token string
	// Server is the underlying test server.
	Server *httptest.Server

	mu        sync.Mutex
	repos     map[string]*repo // by lower-case full name
	nextID    int64
	requests  int
	byRoute   map[string]int
	lastAuth  string
	lastHdr   http.Header
	failures  []failure
	createdAt time.Time
	lists     map[string]int // list-issues requests by lower-case repository full name

	deliveries []Delivery
	wg         sync.WaitGroup // background ping deliveries
	hookClient *http.Client
}

type failure struct {
	status  int
	headers map[string]string
	body    any
}

type repo struct {
	data     Repo
	issues   []*Issue // by number - 1
	comments map[int][]Comment
	hooks    []*Hook
}

// User is an account as GitHub sends it (a subset of the fields).
type User struct {
	Login     string `json:"login"`
	ID        int64  `json:"id"`
	NodeID    string `json:"node_id"`
	AvatarURL string `json:"avatar_url"`
	URL       string `json:"url"`
	HTMLURL   string `json:"html_url"`
	Type      string `json:"type"`
	SiteAdmin bool   `json:"site_admin"`
}

// Repo is a repository as GitHub sends it (a subset of the fields).
type Repo struct {
	ID              int64     `json:"id"`
	NodeID          string    `json:"node_id"`
	Name            string    `json:"name"`
	FullName        string    `json:"full_name"`
	Owner           User      `json:"owner"`
	Private         bool      `json:"private"`
	HTMLURL         string    `json:"html_url"`
	Description     *string   `json:"description"`
	Fork            bool      `json:"fork"`
	URL             string    `json:"url"`
	Homepage        *string   `json:"homepage"`
	Language        *string   `json:"language"`
	ForksCount      int       `json:"forks_count"`
	StargazersCount int       `json:"stargazers_count"`
	WatchersCount   int       `json:"watchers_count"`
	OpenIssuesCount int       `json:"open_issues_count"`
	DefaultBranch   string    `json:"default_branch"`
	Topics          []string  `json:"topics"`
	HasIssues       bool      `json:"has_issues"`
	Archived        bool      `json:"archived"`
	Disabled        bool      `json:"disabled"`
	Visibility      string    `json:"visibility"`
	PushedAt        time.Time `json:"pushed_at"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Label is a label as GitHub sends it.
type Label struct {
	ID          int64   `json:"id"`
	NodeID      string  `json:"node_id"`
	URL         string  `json:"url"`
	Name        string  `json:"name"`
	Color       string  `json:"color"`
	Default     bool    `json:"default"`
	Description *string `json:"description"`
}

// Issue is an issue as GitHub sends it (a subset of the fields).
type Issue struct {
	ID                int64           `json:"id"`
	NodeID            string          `json:"node_id"`
	URL               string          `json:"url"`
	RepositoryURL     string          `json:"repository_url"`
	HTMLURL           string          `json:"html_url"`
	Number            int             `json:"number"`
	State             string          `json:"state"`
	StateReason       *string         `json:"state_reason"`
	Title             string          `json:"title"`
	Body              *string         `json:"body"`
	User              User            `json:"user"`
	Labels            []Label         `json:"labels"`
	Assignees         []User          `json:"assignees"`
	Locked            bool            `json:"locked"`
	Comments          int             `json:"comments"`
	PullRequest       json.RawMessage `json:"pull_request,omitempty"`
	ClosedAt          *time.Time      `json:"closed_at"`
	CreatedAt         time.Time       `json:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
	AuthorAssociation string          `json:"author_association"`
}

// Comment is an issue comment as GitHub sends it.
type Comment struct {
	ID                int64     `json:"id"`
	NodeID            string    `json:"node_id"`
	URL               string    `json:"url"`
	HTMLURL           string    `json:"html_url"`
	IssueURL          string    `json:"issue_url"`
	Body              string    `json:"body"`
	User              User      `json:"user"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	AuthorAssociation string    `json:"author_association"`
}

// New starts a fake with the seeded repositories. With a non-nil t it is closed when the test
// ends; with nil the caller calls Close.
func New(t testing.TB) *Fake {
	f := &Fake{
		Token:     Token,
		repos:     map[string]*repo{},
		byRoute:   map[string]int{},
		lists:     map[string]int{},
		nextID:    1000,
		createdAt: time.Date(2011, 1, 26, 19, 1, 12, 0, time.UTC),
		hookClient: &http.Client{
			Timeout: 10 * time.Second,
			// No proxy, so deliveries reach loopback servers; GitHub does not follow redirects.
			Transport:     &http.Transport{Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.Server.URL
	if t != nil {
		t.Cleanup(f.Close)
	}
	f.AddRepo("octocat", "Hello-World")
	f.mu.Lock()
	f.repos["octocat/hello-world"].data.ID = 1296269
	f.mu.Unlock()
	for i, title := range []string{"Found a bug", "Docs typo", "Crash on start", "Add dark mode", "Slow search"} {
		is := f.AddIssue("octocat", "Hello-World", title, "")
		switch i {
		case 1:
			f.CloseIssue("octocat", "Hello-World", is.Number)
		case 3:
			f.mu.Lock()
			f.repos["octocat/hello-world"].issues[3].PullRequest = json.RawMessage(fmt.Sprintf(`{"url":"%s/repos/octocat/Hello-World/pulls/4"}`, f.URL))
			f.mu.Unlock()
		}
	}
	f.AddRepo("plugboard", "busy")
	for i := range 250 {
		f.AddIssue("plugboard", "busy", fmt.Sprintf("Issue %d", i+1), "")
	}
	return f
}

// Close shuts the server down, then waits for background ping deliveries. (Closing the server
// first waits for its handlers, so no ping starts after the wait begins.)
func (f *Fake) Close() {
	f.Server.Close()
	f.wg.Wait()
	f.hookClient.CloseIdleConnections()
}

func (f *Fake) id() int64 {
	f.nextID++
	return f.nextID
}

func (f *Fake) user(login string) User {
	return User{
		Login: login, ID: 583231, NodeID: "MDQ6VXNlcjU4MzIzMQ==", Type: "User",
		AvatarURL: "https://avatars.githubusercontent.com/u/583231?v=4",
		URL:       f.URL + "/users/" + login, HTMLURL: "https://github.com/" + login,
	}
}

// AddRepo adds an empty public repository and returns it.
func (f *Fake) AddRepo(owner, name string) Repo {
	f.mu.Lock()
	defer f.mu.Unlock()
	full := owner + "/" + name
	desc := "This your first repo!"
	lang := "Go"
	r := &repo{comments: map[int][]Comment{}, data: Repo{
		ID: f.id(), NodeID: "R_" + full, Name: name, FullName: full, Owner: f.user(owner),
		HTMLURL: "https://github.com/" + full, Description: &desc, URL: f.URL + "/repos/" + full,
		Language: &lang, ForksCount: 9, StargazersCount: 80, WatchersCount: 80, DefaultBranch: "main",
		Topics: []string{"octocat", "api"}, HasIssues: true, Visibility: "public",
		PushedAt: f.createdAt.Add(5 * time.Minute), CreatedAt: f.createdAt, UpdatedAt: f.createdAt.Add(13 * time.Minute),
	}}
	f.repos[strings.ToLower(full)] = r
	return r.data
}

// AddIssue adds an open issue by the repository's owner and returns it. The repository must exist.
func (f *Fake) AddIssue(owner, name, title, body string) Issue {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repos[strings.ToLower(owner+"/"+name)]
	if r == nil {
		panic("githubfake: AddIssue: no repository " + owner + "/" + name)
	}
	is := f.newIssue(r, title, body, nil, r.data.Owner.Login)
	return *is
}

// AddPullRequest adds an open pull request (which GitHub lists among the issues, with a
// pull_request object, numbered in the same sequence) and returns it.
func (f *Fake) AddPullRequest(owner, name, title string) Issue {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repos[strings.ToLower(owner+"/"+name)]
	if r == nil {
		panic("githubfake: AddPullRequest: no repository " + owner + "/" + name)
	}
	is := f.newIssue(r, title, "", nil, r.data.Owner.Login)
	is.PullRequest = json.RawMessage(fmt.Sprintf(`{"url":"%s/pulls/%d","html_url":"%s/pull/%d"}`, r.data.URL, is.Number, r.data.HTMLURL, is.Number))
	return *is
}

func (f *Fake) newIssue(r *repo, title, body string, labels []string, author string) *Issue {
	n := len(r.issues) + 1
	created := f.createdAt.Add(time.Duration(n) * time.Hour)
	is := &Issue{
		ID: f.id(), NodeID: fmt.Sprintf("I_%d", n), Number: n, State: "open", Title: title,
		URL:           fmt.Sprintf("%s/issues/%d", r.data.URL, n),
		RepositoryURL: r.data.URL,
		HTMLURL:       fmt.Sprintf("%s/issues/%d", r.data.HTMLURL, n),
		User:          f.user(author), Labels: []Label{}, Assignees: []User{},
		CreatedAt: created, UpdatedAt: created, AuthorAssociation: "OWNER",
	}
	if body != "" {
		is.Body = &body
	}
	for _, l := range labels {
		is.Labels = append(is.Labels, Label{ID: f.id(), NodeID: "LA_" + l, URL: r.data.URL + "/labels/" + url.PathEscape(l), Name: l, Color: "ededed"})
	}
	r.issues = append(r.issues, is)
	r.data.OpenIssuesCount++
	return is
}

// CloseIssue closes issue number as completed.
func (f *Fake) CloseIssue(owner, name string, number int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repos[strings.ToLower(owner+"/"+name)]
	is := r.issues[number-1]
	completed := "completed"
	closed := is.CreatedAt.Add(30 * time.Minute)
	is.State, is.StateReason, is.ClosedAt, is.UpdatedAt = "closed", &completed, &closed, closed
	r.data.OpenIssuesCount--
}

// Issues returns a copy of the repository's issues, by number.
func (f *Fake) Issues(owner, name string) []Issue {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repos[strings.ToLower(owner+"/"+name)]
	if r == nil {
		return nil
	}
	out := make([]Issue, len(r.issues))
	for i, is := range r.issues {
		out[i] = *is
	}
	return out
}

// Comments returns a copy of the comments on issue number.
func (f *Fake) Comments(owner, name string, number int) []Comment {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repos[strings.ToLower(owner+"/"+name)]
	if r == nil {
		return nil
	}
	return append([]Comment(nil), r.comments[number]...)
}

// Requests returns how many requests the fake has received.
func (f *Fake) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// RequestsTo returns how many requests matched route, written like "GET /repos/{owner}/{repo}/issues".
func (f *Fake) RequestsTo(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byRoute[route]
}

// ListIssuesRequests returns how many list-issues requests (either URL form, any page, 304s
// included) reached the repository: one per upstream poll of a poll trigger that reads one page.
func (f *Fake) ListIssuesRequests(owner, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists[strings.ToLower(owner+"/"+name)]
}

// LastAuthorization returns the Authorization header of the last request ("" when absent).
func (f *Fake) LastAuthorization() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastAuth
}

// LastHeader returns a header of the last request.
func (f *Fake) LastHeader(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastHdr.Get(name)
}

// SecondaryRateLimit makes the next n authenticated requests fail as GitHub's secondary rate
// limit does: 403 with Retry-After.
func (f *Fake) SecondaryRateLimit(n int, retryAfter time.Duration) {
	f.failNext(n, failure{
		status:  http.StatusForbidden,
		headers: map[string]string{"Retry-After": strconv.Itoa(int(retryAfter / time.Second))},
		body: errorBody("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "+
			"If you reach out to GitHub Support for help, please include the request ID 0C8F:2E0A:1B8E5F:36C4E1:65F0A2B1.",
			"https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits", 403),
	})
}

// PrimaryRateLimit makes the next n authenticated requests fail as an exhausted primary rate
// limit does: 403 with X-RateLimit-Remaining: 0 and X-RateLimit-Reset.
func (f *Fake) PrimaryRateLimit(n int, reset time.Time) {
	f.failNext(n, failure{
		status: http.StatusForbidden,
		headers: map[string]string{
			"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Used": "5000",
			"X-RateLimit-Reset": strconv.FormatInt(reset.Unix(), 10), "X-RateLimit-Resource": "core",
		},
		body: errorBody("API rate limit exceeded for user ID 583231. If you reach out to GitHub Support for help, please include the request ID 0C8F:2E0A:1B8E5F:36C4E1:65F0A2B1.",
			"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api", 403),
	})
}

// ServerError makes the next n authenticated requests fail with status (a 5xx).
func (f *Fake) ServerError(n, status int) {
	f.failNext(n, failure{status: status, body: map[string]string{"message": "Server Error"}})
}

func (f *Fake) failNext(n int, fl failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.failures = append(f.failures, fl)
	}
}

func errorBody(message, doc string, status int) map[string]any {
	return map[string]any{"message": message, "documentation_url": doc, "status": strconv.Itoa(status)}
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.lastAuth = r.Header.Get("Authorization")
	f.lastHdr = r.Header.Clone()

	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-GitHub-Media-Type", "github.v3; format=json")
	w.Header().Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	w.Header().Set("X-GitHub-Request-Id", fmt.Sprintf("0C8F:2E0A:%X", f.requests))

	if r.Header.Get("User-Agent") == "" {
		writeJSON(w, http.StatusForbidden, errorBody("Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).", "", 403))
		return
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		writeJSON(w, http.StatusUnauthorized, errorBody("Requires authentication", "https://docs.github.com/rest", 401))
		return
	}
	if auth != "Bearer "+f.Token && auth != "token "+f.Token {
		writeJSON(w, http.StatusUnauthorized, errorBody("Bad credentials", "https://docs.github.com/rest", 401))
		return
	}
	if len(f.failures) > 0 {
		fl := f.failures[0]
		f.failures = f.failures[1:]
		for k, v := range fl.headers {
			w.Header().Set(k, v)
		}
		writeJSON(w, fl.status, fl.body)
		return
	}
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(5000-f.requests, 1)))

	parts := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	switch {
	case len(parts) == 3 && parts[0] == "repos" && r.Method == http.MethodGet:
		f.byRoute["GET /repos/{owner}/{repo}"]++
		if rp := f.repo(parts[1], parts[2]); rp != nil {
			writeJSON(w, http.StatusOK, rp.data)
			return
		}
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", "https://docs.github.com/rest/repos/repos#get-a-repository", 404))
	case len(parts) == 4 && parts[0] == "repos" && parts[3] == "issues" && r.Method == http.MethodGet:
		f.byRoute["GET /repos/{owner}/{repo}/issues"]++
		f.listIssues(w, r, f.repo(parts[1], parts[2]))
	case len(parts) == 3 && parts[0] == "repositories" && parts[2] == "issues" && r.Method == http.MethodGet:
		f.byRoute["GET /repositories/{id}/issues"]++
		f.listIssues(w, r, f.repoByID(parts[1]))
	case len(parts) == 4 && parts[0] == "repos" && parts[3] == "hooks" && r.Method == http.MethodPost:
		f.byRoute["POST /repos/{owner}/{repo}/hooks"]++
		f.createHook(w, r, f.repo(parts[1], parts[2]))
	case len(parts) == 4 && parts[0] == "repos" && parts[3] == "hooks" && r.Method == http.MethodGet:
		f.byRoute["GET /repos/{owner}/{repo}/hooks"]++
		f.listHooks(w, f.repo(parts[1], parts[2]))
	case len(parts) == 5 && parts[0] == "repos" && parts[3] == "hooks":
		f.byRoute[r.Method+" /repos/{owner}/{repo}/hooks/{id}"]++
		f.hook(w, r, f.repo(parts[1], parts[2]), parts[4])
	case len(parts) == 4 && parts[0] == "repos" && parts[3] == "issues" && r.Method == http.MethodPost:
		f.byRoute["POST /repos/{owner}/{repo}/issues"]++
		f.createIssue(w, r, f.repo(parts[1], parts[2]))
	case len(parts) == 6 && parts[0] == "repos" && parts[3] == "issues" && parts[5] == "comments" && r.Method == http.MethodPost:
		f.byRoute["POST /repos/{owner}/{repo}/issues/{number}/comments"]++
		f.addComment(w, r, f.repo(parts[1], parts[2]), parts[4])
	default:
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", "https://docs.github.com/rest", 404))
	}
}

func (f *Fake) repo(owner, name string) *repo { return f.repos[strings.ToLower(owner+"/"+name)] }

func (f *Fake) repoByID(id string) *repo {
	for _, r := range f.repos {
		if strconv.FormatInt(r.data.ID, 10) == id {
			return r
		}
	}
	return nil
}

// listIssues serves one page with GitHub's Link header and an ETag: state, sort (created,
// updated, comments; default created), direction (asc, desc; default desc), since (updated_at
// at or after) and per_page/page as GitHub reads them.
func (f *Fake) listIssues(w http.ResponseWriter, r *http.Request, rp *repo) {
	const doc = "https://docs.github.com/rest/issues/issues#list-repository-issues"
	if rp == nil {
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", doc, 404))
		return
	}
	f.lists[strings.ToLower(rp.data.FullName)]++
	q := r.URL.Query()
	invalid := func(field string) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message": "Validation Failed", "status": "422",
			"errors":            []map[string]string{{"resource": "Issue", "field": field, "code": "invalid"}},
			"documentation_url": doc,
		})
	}
	state := cmp.Or(q.Get("state"), "open")
	if state != "open" && state != "closed" && state != "all" {
		invalid("state")
		return
	}
	sortBy := cmp.Or(q.Get("sort"), "created")
	if sortBy != "created" && sortBy != "updated" && sortBy != "comments" {
		invalid("sort")
		return
	}
	direction := cmp.Or(q.Get("direction"), "desc")
	if direction != "asc" && direction != "desc" {
		invalid("direction")
		return
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			invalid("since")
			return
		}
		since = t
	}
	perPage, page := 30, 1
	if n, err := strconv.Atoi(q.Get("per_page")); err == nil && n > 0 {
		perPage = min(n, 100)
	}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		page = n
	}
	var matched []*Issue
	for _, is := range rp.issues {
		if (state == "all" || is.State == state) && !is.UpdatedAt.Before(since) {
			matched = append(matched, is)
		}
	}
	key := func(is *Issue) int64 {
		switch sortBy {
		case "updated":
			return is.UpdatedAt.UnixNano()
		case "comments":
			return int64(is.Comments)
		}
		return is.CreatedAt.UnixNano()
	}
	sort.SliceStable(matched, func(i, j int) bool {
		if direction == "asc" {
			return key(matched[i]) < key(matched[j])
		}
		return key(matched[i]) > key(matched[j])
	})
	last := max((len(matched)+perPage-1)/perPage, 1)
	start := min((page-1)*perPage, len(matched))
	end := min(start+perPage, len(matched))
	pageURL := func(p int) string {
		v := url.Values{"state": {state}, "per_page": {strconv.Itoa(perPage)}, "page": {strconv.Itoa(p)}}
		for _, name := range []string{"sort", "direction", "since"} {
			if q.Has(name) {
				v.Set(name, q.Get(name))
			}
		}
		return fmt.Sprintf("<%s/repositories/%d/issues?%s>", f.URL, rp.data.ID, v.Encode())
	}
	var links []string
	if page > 1 {
		links = append(links, pageURL(page-1)+`; rel="prev"`)
	}
	if page < last {
		links = append(links, pageURL(page+1)+`; rel="next"`, pageURL(last)+`; rel="last"`)
	}
	if page > 1 {
		links = append(links, pageURL(1)+`; rel="first"`)
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	out := make([]*Issue, 0, end-start)
	out = append(out, matched[start:end]...)
	writeJSONWithETag(w, r, out)
}

func (f *Fake) createIssue(w http.ResponseWriter, r *http.Request, rp *repo) {
	if rp == nil {
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", "https://docs.github.com/rest/issues/issues#create-an-issue", 404))
		return
	}
	var in struct {
		Title  *string  `json:"title"`
		Body   string   `json:"body"`
		Labels []string `json:"labels"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody("Problems parsing JSON", "https://docs.github.com/rest/issues/issues#create-an-issue", 400))
		return
	}
	if in.Title == nil || strings.TrimSpace(*in.Title) == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message": "Validation Failed", "status": "422",
			"errors":            []map[string]string{{"resource": "Issue", "code": "missing_field", "field": "title"}},
			"documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
		})
		return
	}
	is := f.newIssue(rp, *in.Title, in.Body, in.Labels, "octocat")
	w.Header().Set("Location", is.URL)
	writeJSON(w, http.StatusCreated, is)
}

func (f *Fake) addComment(w http.ResponseWriter, r *http.Request, rp *repo, number string) {
	n, err := strconv.Atoi(number)
	if rp == nil || err != nil || n < 1 || n > len(rp.issues) {
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", "https://docs.github.com/rest/issues/comments#create-an-issue-comment", 404))
		return
	}
	var in struct {
		Body *string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody("Problems parsing JSON", "https://docs.github.com/rest/issues/comments#create-an-issue-comment", 400))
		return
	}
	if in.Body == nil {
		writeJSON(w, http.StatusUnprocessableEntity, errorBody("Invalid request.\n\n\"body\" wasn't supplied.", "https://docs.github.com/rest/issues/comments#create-an-issue-comment", 422))
		return
	}
	is := rp.issues[n-1]
	now := is.CreatedAt.Add(time.Duration(len(rp.comments[n])+1) * time.Minute)
	id := f.id()
	c := Comment{
		ID: id, NodeID: fmt.Sprintf("IC_%d", id),
		URL:     fmt.Sprintf("%s/issues/comments/%d", rp.data.URL, id),
		HTMLURL: fmt.Sprintf("%s#issuecomment-%d", is.HTMLURL, id), IssueURL: is.URL,
		Body: *in.Body, User: f.user("octocat"), CreatedAt: now, UpdatedAt: now, AuthorAssociation: "OWNER",
	}
	rp.comments[n] = append(rp.comments[n], c)
	is.Comments++
	w.Header().Set("Location", c.URL)
	writeJSON(w, http.StatusCreated, c)
}

// writeJSONWithETag answers 200 with v and its ETag, or 304 with no body when the request's
// If-None-Match names that ETag (or is "*").
func writeJSONWithETag(w http.ResponseWriter, r *http.Request, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	sum := sha256.Sum256(buf.Bytes())
	etag := `W/"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, max-age=60, s-maxage=60")
	w.Header().Set("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.Header().Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// etagMatches is the weak comparison of RFC 9110 section 13.1.2 against a list of ETags.
func etagMatches(ifNoneMatch, etag string) bool {
	for _, t := range strings.Split(ifNoneMatch, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
