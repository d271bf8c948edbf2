package githubfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, f *Fake, path string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.URL+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body any
	json.NewDecoder(resp.Body).Decode(&body)
	m, _ := body.(map[string]any)
	return resp, m
}

func TestAuthAndUserAgentAreRequired(t *testing.T) {
	f := New(t)
	tests := []struct {
		name    string
		header  map[string]string
		status  int
		message string
	}{
		{"no user agent", map[string]string{"Authorization": "Bearer " + f.Token, "User-Agent": ""}, 403, "Request forbidden by administrative rules"},
		{"no token", map[string]string{"User-Agent": "t"}, 401, "Requires authentication"},
		{"a wrong token", map[string]string{"User-Agent": "t", "Authorization": "Bearer nope"}, 401, "Bad credentials"},
		{"a bearer token", map[string]string{"User-Agent": "t", "Authorization": "Bearer " + f.Token}, 200, ""},
		{"a classic token header", map[string]string{"User-Agent": "t", "Authorization": "token " + f.Token}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, f, "/repos/octocat/Hello-World", tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if msg, _ := body["message"].(string); !strings.HasPrefix(msg, tt.message) {
				t.Errorf("message %q", msg)
			}
		})
	}
	if f.Requests() != len(tests) || f.LastAuthorization() != "token "+f.Token {
		t.Errorf("requests %d, last authorization %q", f.Requests(), f.LastAuthorization())
	}
}

func TestLinkHeaders(t *testing.T) {
	f := New(t)
	auth := map[string]string{"User-Agent": "t", "Authorization": "Bearer " + f.Token}
	resp, _ := get(t, f, "/repos/plugboard/busy/issues?per_page=100&page=2", auth)
	link := resp.Header.Get("Link")
	for _, want := range []string{`page=1&per_page=100&state=open>; rel="prev"`, `page=3&per_page=100&state=open>; rel="next"`, `rel="last"`, `rel="first"`, "/repositories/"} {
		if !strings.Contains(link, want) {
			t.Errorf("Link %q lacks %q", link, want)
		}
	}
	resp, _ = get(t, f, "/repos/plugboard/busy/issues?per_page=100&page=3", auth)
	if strings.Contains(resp.Header.Get("Link"), `rel="next"`) {
		t.Errorf("the last page has a next link: %s", resp.Header.Get("Link"))
	}
}

func do(t *testing.T, f *Fake, method, path string, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.URL+path, rd)
	req.Header.Set("User-Agent", "t")
	req.Header.Set("Authorization", "Bearer "+f.Token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func numbers(t *testing.T, body []byte) []int {
	t.Helper()
	var issues []Issue
	if err := json.Unmarshal(body, &issues); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var out []int
	for _, is := range issues {
		out = append(out, is.Number)
	}
	return out
}

func TestListIssuesFilters(t *testing.T) {
	f := New(t)
	is3 := f.Issues("octocat", "Hello-World")[2]
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"default is open, newest first", "", "[5 4 3 1]"},
		{"state all ascending", "?state=all&sort=created&direction=asc", "[1 2 3 4 5]"},
		{"since filters on updated_at", "?state=all&direction=asc&since=" + is3.CreatedAt.Format(time.RFC3339), "[3 4 5]"},
		{"closed only", "?state=closed", "[2]"},
		{"sort by updated", "?state=all&sort=updated&direction=asc", "[1 2 3 4 5]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, f, "GET", "/repos/octocat/Hello-World/issues"+tt.query, "", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := fmt.Sprint(numbers(t, body)); got != tt.want {
				t.Errorf("numbers %s, want %s", got, tt.want)
			}
		})
	}
	for _, q := range []string{"?since=yesterday", "?direction=up", "?sort=title"} {
		if resp, _ := do(t, f, "GET", "/repos/octocat/Hello-World/issues"+q, "", nil); resp.StatusCode != 422 {
			t.Errorf("%s: status %d, want 422", q, resp.StatusCode)
		}
	}
	if n := f.ListIssuesRequests("octocat", "hello-world"); n != len(tests)+3 {
		t.Errorf("ListIssuesRequests = %d, want %d", n, len(tests)+3)
	}
}

func TestLinkHeadersKeepSortAndSince(t *testing.T) {
	f := New(t)
	resp, _ := do(t, f, "GET", "/repos/plugboard/busy/issues?per_page=100&sort=created&direction=asc&since=2011-01-01T00:00:00Z", "", nil)
	link := resp.Header.Get("Link")
	for _, want := range []string{"direction=asc", "sort=created", "since=2011-01-01T00%3A00%3A00Z", `page=2`} {
		if !strings.Contains(link, want) {
			t.Errorf("Link %q lacks %q", link, want)
		}
	}
}

func TestETagAndIfNoneMatch(t *testing.T) {
	f := New(t)
	const path = "/repos/octocat/Hello-World/issues?state=all"
	resp, _ := do(t, f, "GET", path, "", nil)
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	resp, body := do(t, f, "GET", path, "", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("status %d body %q, want 304 and no body", resp.StatusCode, body)
	}
	f.AddIssue("octocat", "Hello-World", "New", "")
	resp, _ = do(t, f, "GET", path, "", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Fatalf("after a change: status %d, ETag %q (old %q)", resp.StatusCode, resp.Header.Get("ETag"), etag)
	}
}

// receiver records deliveries on a loopback server.
type receiver struct {
	srv *httptest.Server
	got chan *http.Request
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{got: make(chan *http.Request, 10)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.got <- req
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) next(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	select {
	case req := <-r.got:
		b, _ := io.ReadAll(req.Body)
		return req, b
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	return nil, nil
}

func TestHooks(t *testing.T) {
	f := New(t)
	rcv := newReceiver(t, 200)
	const hooks = "/repos/octocat/Hello-World/hooks"

	resp, body := do(t, f, "POST", hooks, `{"name":"web","active":true,"events":["issues"],"config":{"content_type":"json","insecure_ssl":"0"}}`, nil)
	if resp.StatusCode != 422 || !strings.Contains(string(body), "url") {
		t.Fatalf("missing config.url: status %d %s", resp.StatusCode, body)
	}
	create := `{"name":"web","active":true,"events":["issues"],"config":{"url":"` + rcv.srv.URL + `/in","content_type":"json","secret":"s3cret","insecure_ssl":"0"}}`
	resp, body = do(t, f, "POST", hooks, create, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("create: status %d %s", resp.StatusCode, body)
	}
	var created struct {
		ID     int64             `json:"id"`
		Config map[string]string `json:"config"`
	}
	json.Unmarshal(body, &created)
	if created.ID == 0 || created.Config["secret"] != "********" || created.Config["url"] != rcv.srv.URL+"/in" {
		t.Errorf("created %s", body)
	}
	if resp, _ := do(t, f, "POST", hooks, create, nil); resp.StatusCode != 422 {
		t.Errorf("duplicate url: status %d, want 422", resp.StatusCode)
	}

	req, payload := rcv.next(t)
	if req.Header.Get("X-GitHub-Event") != "ping" || req.Header.Get("X-Hub-Signature-256") != Signature("s3cret", payload) ||
		!strings.HasPrefix(req.Header.Get("User-Agent"), "GitHub-Hookshot/") {
		t.Errorf("ping headers %v", req.Header)
	}

	hs := f.Hooks("octocat", "Hello-World")
	if len(hs) != 1 || hs[0].ID != created.ID || hs[0].Secret != "s3cret" || hs[0].URL != rcv.srv.URL+"/in" || fmt.Sprint(hs[0].Events) != "[issues]" {
		t.Fatalf("Hooks = %+v", hs)
	}

	is := f.AddIssue("octocat", "Hello-World", "Hooked", "")
	select {
	case <-rcv.got:
		t.Fatal("AddIssue delivered by itself")
	default:
	}
	statuses, err := f.DeliverIssueEvent(context.Background(), "octocat", "Hello-World", "opened", is)
	if err != nil || fmt.Sprint(statuses) != "[200]" {
		t.Fatalf("DeliverIssueEvent = %v, %v", statuses, err)
	}
	req, payload = rcv.next(t)
	var doc struct {
		Action string `json:"action"`
		Issue  Issue  `json:"issue"`
	}
	json.Unmarshal(payload, &doc)
	if req.Header.Get("X-GitHub-Event") != "issues" || req.Header.Get("X-GitHub-Delivery") == "" ||
		req.Header.Get("X-Hub-Signature-256") != Signature("s3cret", payload) || doc.Action != "opened" || doc.Issue.Number != is.Number {
		t.Errorf("delivery %v %s", req.Header, payload)
	}
	if _, err := f.DeliverForged(context.Background(), "octocat", "Hello-World", "opened", is); err != nil {
		t.Fatal(err)
	}
	req, payload = rcv.next(t)
	if sig := req.Header.Get("X-Hub-Signature-256"); sig == "" || sig == Signature("s3cret", payload) {
		t.Errorf("forged signature %q", sig)
	}
	// The ping is recorded when its answer arrives, which may be after the others.
	var events []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d := f.Deliveries()
		events = events[:0]
		for _, x := range d {
			events = append(events, x.Event+"/"+x.Action+"/"+fmt.Sprint(x.Status))
		}
		if len(d) == 3 || time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(events)
	if got := strings.Join(events, ","); got != "issues/opened/200,issues/opened/200,ping//200" {
		t.Errorf("Deliveries = %s", got)
	}

	id := fmt.Sprint(created.ID)
	if resp, body := do(t, f, "GET", hooks, "", nil); resp.StatusCode != 200 || !strings.Contains(string(body), id) {
		t.Errorf("list: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, f, "PATCH", hooks+"/"+id, `{"active":false}`, nil); resp.StatusCode != 200 || f.Hooks("octocat", "Hello-World")[0].Active {
		t.Errorf("patch: %d", resp.StatusCode)
	}
	if statuses, _ := f.DeliverIssueEvent(context.Background(), "octocat", "Hello-World", "closed", is); len(statuses) != 0 {
		t.Errorf("an inactive hook got a delivery: %v", statuses)
	}
	if resp, _ := do(t, f, "DELETE", hooks+"/"+id, "", nil); resp.StatusCode != 204 {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	if resp, _ := do(t, f, "DELETE", hooks+"/"+id, "", nil); resp.StatusCode != 404 {
		t.Errorf("second delete: %d, want 404", resp.StatusCode)
	}
	if len(f.Hooks("octocat", "Hello-World")) != 0 {
		t.Error("hook not deleted")
	}
}
