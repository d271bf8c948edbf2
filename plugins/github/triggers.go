package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

// Poll bounds: a poll reads at most maxPollPages pages of perPollPage issues; a longer backlog
// is paged through with More (the cursor keeps the next page's URL).
const (
	perPollPage  = 100
	maxPollPages = 10
)

func init() {
	pdk.PollTrigger("new_issue", pollNewIssues,
		pdk.Title("New issue"),
		pdk.Description("Fires once for each issue opened in a repository after the subscription started (pull requests are skipped). "+
			"The event id is the issue number; data holds the issue's number, title, body, state, html_url, user.login, labels (names) and created_at."),
		pdk.EventType[IssueData](),
		pdk.Interval(60*time.Second, 15*time.Second))
	pdk.WebhookTrigger("issue_event", pdk.Webhook[IssueEventParams]{
		Subscribe:   subscribeHook,
		Renew:       renewHook,
		Unsubscribe: unsubscribeHook,
		Receive:     receiveHook,
	},
		pdk.Title("Issue event"),
		pdk.Description("Registers a repository webhook (the token needs admin:repo_hook or the fine-grained Webhooks write permission) "+
			"and fires on each delivery: issues opened, edited, closed, reopened, labeled, ... (and issue comments when events lists issue_comment). "+
			"The event id is GitHub's delivery id and its type the payload's action. Deliveries are verified with the subscription's secret (X-Hub-Signature-256)."),
		pdk.EventType[IssueEvent]())
}

// IssueData is an issue trimmed to what a trigger's subscribers use.
type IssueData struct {
	Number    int       `json:"number"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	State     string    `json:"state" jsonschema:"open or closed"`
	HTMLURL   string    `json:"html_url"`
	User      UserRef   `json:"user"`
	Labels    []string  `json:"labels" jsonschema:"Label names"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// UserRef names an account.
type UserRef struct {
	Login string `json:"login"`
}

func trimIssue(is Issue) IssueData {
	labels := make([]string, 0, len(is.Labels))
	for _, l := range is.Labels {
		labels = append(labels, l.Name)
	}
	return IssueData{
		Number: is.Number, Title: is.Title, Body: is.Body, State: is.State, HTMLURL: is.HTMLURL,
		User: UserRef{Login: is.User.Login}, Labels: labels, CreatedAt: is.CreatedAt, UpdatedAt: is.UpdatedAt,
	}
}

// pollCursor is new_issue's cursor.
type pollCursor struct {
	// Since is the created_at of the newest issue seen (RFC 3339), the since of the next list
	// (GitHub's since filters on updated_at, which is never before created_at); "" for an
	// empty repository.
	Since string `json:"since"`
	// LastNumber is the highest issue (or pull request) number seen: newer issues have higher
	// numbers.
	LastNumber int `json:"last_number"`
	// ETag is the first page's ETag for Since, kept only when that page was the whole answer.
	ETag string `json:"etag,omitempty"`
	// Next is the page to continue from when the last poll hit the page bound (More).
	Next string `json:"next,omitempty"`
	// High is the highest number seen so far in an unfinished traversal (Next set).
	High int `json:"high,omitempty"`
}

func pollNewIssues(ctx *pdk.Context, in RepoRef, cursor *string) (pdk.PollResult, error) {
	c := newClient(ctx)
	if cursor == nil {
		return baseline(c, in)
	}
	var cur pollCursor
	if err := json.Unmarshal([]byte(*cursor), &cur); err != nil {
		return pdk.PollResult{}, pdk.Errorf(abi.CodeInvalidInput, "the cursor %q is not a new_issue cursor: %v", *cursor, err)
	}
	next := cur.Next
	first := next == ""
	if first {
		q := url.Values{"state": {"all"}, "sort": {"created"}, "direction": {"asc"}, "per_page": {strconv.Itoa(perPollPage)}}
		if cur.Since != "" {
			q.Set("since", cur.Since)
		}
		next = c.repoURL(in) + "/issues?" + q.Encode()
	} else if !sameOrigin(next, c.base) {
		return pdk.PollResult{}, pdk.Errorf(abi.CodeInvalidInput, "the cursor's next page %q is not under %s", next, c.base)
	}

	out := cur
	out.ETag, out.Next = "", ""
	high := max(cur.LastNumber, cur.High)
	newest := parseTime(cur.Since)
	var events []pdk.Event
	for page := 0; ; page++ {
		if page == maxPollPages {
			out.Next, out.High = next, high
			return pollResult(events, out, true)
		}
		h := c.http
		if page == 0 && first && cur.ETag != "" {
			h = h.WithHeaders(map[string]string{"If-None-Match": cur.ETag})
		}
		var items []wireIssue
		resp, err := h.GetJSON(next, &items)
		if err != nil {
			return pdk.PollResult{}, err
		}
		if resp.Status == 304 {
			return pdk.PollResult{Cursor: *cursor}, nil
		}
		for _, w := range items {
			if w.Number <= cur.LastNumber {
				continue
			}
			high = max(high, w.Number)
			if w.CreatedAt.After(newest) {
				newest = w.CreatedAt
			}
			if is := w.issue(); !is.IsPullRequest {
				events = append(events, pdk.Event{ID: strconv.Itoa(is.Number), Type: "opened", Time: is.CreatedAt, Data: trimIssue(is)})
			}
		}
		next = pdk.NextLink(resp)
		if next == "" {
			// The first page was the whole answer and nothing new moved since: its ETag
			// stands for the next poll's identical request. (A full page could grow a second
			// page without the first one changing, so its ETag proves nothing.)
			if page == 0 && first && len(items) < perPollPage && newest.Equal(parseTime(cur.Since)) {
				out.ETag = resp.Header("ETag")
			}
			break
		}
	}
	out.LastNumber, out.High = high, 0
	if !newest.IsZero() {
		out.Since = newest.UTC().Format(time.RFC3339)
	}
	return pollResult(events, out, false)
}

// baseline records the newest issue's number and creation time, emitting nothing.
func baseline(c *client, in RepoRef) (pdk.PollResult, error) {
	u := c.repoURL(in) + "/issues?" + url.Values{"state": {"all"}, "sort": {"created"}, "direction": {"desc"}, "per_page": {"1"}}.Encode()
	var items []wireIssue
	if _, err := c.http.GetJSON(u, &items); err != nil {
		return pdk.PollResult{}, err
	}
	var cur pollCursor
	if len(items) > 0 {
		cur.LastNumber = items[0].Number
		cur.Since = items[0].CreatedAt.UTC().Format(time.RFC3339)
	}
	return pollResult(nil, cur, false)
}

func pollResult(events []pdk.Event, cur pollCursor, more bool) (pdk.PollResult, error) {
	slices.SortStableFunc(events, func(a, b pdk.Event) int {
		return a.Data.(IssueData).Number - b.Data.(IssueData).Number
	})
	b, err := json.Marshal(cur)
	if err != nil {
		return pdk.PollResult{}, pdk.Errorf(abi.CodeInternal, "encoding the cursor: %v", err)
	}
	return pdk.PollResult{Events: events, Cursor: string(b), More: more}, nil
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// sameOrigin reports whether u is on the origin of base, so a stored page URL cannot send the
// connection's token elsewhere.
func sameOrigin(u, base string) bool {
	a, err1 := abi.OriginOfURL(u)
	b, err2 := abi.OriginOfURL(base)
	return err1 == nil && err2 == nil && a == b
}

// IssueEventParams are the params of issue_event.
type IssueEventParams struct {
	RepoRef
	Events []string `json:"events,omitempty" jsonschema:"GitHub webhook events to receive" enum:"issues,issue_comment" default:"[\"issues\"]"`
}

// IssueEvent is the data of an issue_event event.
type IssueEvent struct {
	Action     string    `json:"action" jsonschema:"The payload's action: opened, edited, closed, reopened, labeled, created (a comment), ..."`
	Issue      IssueData `json:"issue"`
	Comment    *Comment  `json:"comment,omitempty" jsonschema:"The comment, for issue_comment events"`
	Repository string    `json:"repository" jsonschema:"owner/name"`
	Sender     string    `json:"sender" jsonschema:"Login of the account that acted"`
}

// hookState is what subscribe keeps.
type hookState struct {
	HookID int64 `json:"hook_id"`
}

func hookEvents(p IssueEventParams) []string {
	if len(p.Events) == 0 {
		return []string{"issues"}
	}
	return p.Events
}

func subscribeHook(ctx *pdk.Context, sub pdk.WebhookSubscription[IssueEventParams]) (pdk.WebhookState, error) {
	if sub.CallbackURL == "" {
		return pdk.WebhookState{}, pdk.Errorf(abi.CodeInvalidInput, "no callback_url to register")
	}
	c := newClient(ctx)
	body := map[string]any{
		"name": "web", "active": true, "events": hookEvents(sub.Params),
		"config": map[string]string{"url": sub.CallbackURL, "content_type": "json", "secret": sub.Secret, "insecure_ssl": "0"},
	}
	var hook struct {
		ID int64 `json:"id"`
	}
	hooks := c.repoURL(sub.Params.RepoRef) + "/hooks"
	resp, err := c.http.PostJSON(hooks, body, &hook)
	if err != nil && resp != nil && resp.Status == 422 && strings.Contains(string(resp.Body), "already exists") {
		// A hook for this callback URL exists: an earlier subscribe registered it but its
		// answer was lost. Take it over with this subscription's secret and events.
		id, ferr := findHook(c, hooks, sub.CallbackURL)
		if ferr != nil {
			return pdk.WebhookState{}, ferr
		}
		if id != 0 {
			hook.ID = id
			_, err = c.http.DoJSON("PATCH", hooks+"/"+strconv.FormatInt(id, 10), body, nil)
		}
	}
	if err != nil {
		return pdk.WebhookState{}, err
	}
	if hook.ID == 0 {
		return pdk.WebhookState{}, pdk.Errorf(abi.CodeUpstreamError, "GitHub created the hook but answered no id")
	}
	return pdk.WebhookState{State: hookState{HookID: hook.ID}}, nil
}

// wireHook is the part of a repository hook findHook reads.
type wireHook struct {
	ID     int64 `json:"id"`
	Config struct {
		URL string `json:"url"`
	} `json:"config"`
}

// findHook returns the id of the repository hook whose config.url is callback, or 0.
func findHook(c *client, hooks, callback string) (int64, error) {
	list, err := pdk.Paginate(0, func(next string) ([]wireHook, string, error) {
		if next == "" {
			next = hooks + "?per_page=100"
		}
		var page []wireHook
		resp, err := c.http.GetJSON(next, &page)
		if err != nil {
			return nil, "", err
		}
		return page, pdk.NextLink(resp), nil
	})
	if err != nil {
		return 0, err
	}
	for _, h := range list {
		if h.Config.URL == callback {
			return h.ID, nil
		}
	}
	return 0, nil
}

// renewHook keeps the state: GitHub hooks do not expire, and subscribe has no renew_at, so the
// host only calls it if asked to by hand. (Without it the pdk would call subscribe again,
// which would register a second hook.)
func renewHook(_ *pdk.Context, sub pdk.WebhookSubscription[IssueEventParams]) (pdk.WebhookState, error) {
	return pdk.WebhookState{State: sub.State}, nil
}

func unsubscribeHook(ctx *pdk.Context, sub pdk.WebhookSubscription[IssueEventParams]) error {
	var st hookState
	if len(sub.State) > 0 {
		if err := json.Unmarshal(sub.State, &st); err != nil {
			return pdk.Errorf(abi.CodeInvalidInput, "the webhook state is not {\"hook_id\": N}: %v", err)
		}
	}
	if st.HookID == 0 {
		return nil // nothing was registered
	}
	c := newClient(ctx)
	resp, err := c.http.DoJSON("DELETE", c.repoURL(sub.Params.RepoRef)+"/hooks/"+strconv.FormatInt(st.HookID, 10), nil, nil)
	if err != nil && resp != nil && (resp.Status == 404 || resp.Status == 410) {
		return nil // already gone: removed by hand, or the repository was deleted
	}
	return err
}

// wireHookPayload is the part of an issues or issue_comment delivery the trigger reads.
type wireHookPayload struct {
	Action     string   `json:"action"`
	Issue      *Issue   `json:"issue"`
	Comment    *Comment `json:"comment"`
	Repository struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	Sender struct {
		Login string `json:"login"`
	} `json:"sender"`
}

func textResponse(status int, body string) *abi.WebhookResponse {
	return &abi.WebhookResponse{Status: status, Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, Body: body}
}

func receiveHook(ctx *pdk.Context, d pdk.WebhookDelivery[IssueEventParams]) (pdk.WebhookReceipt, error) {
	if !validSignature(header(d.Request.Headers, "X-Hub-Signature-256"), d.Secret, d.Body) {
		ctx.Log(pdk.LogWarn, "issue_event: delivery refused: missing or wrong X-Hub-Signature-256")
		return pdk.WebhookReceipt{Response: textResponse(401, "bad signature")}, nil
	}
	event := header(d.Request.Headers, "X-GitHub-Event")
	if event == "ping" {
		return pdk.WebhookReceipt{Response: textResponse(200, "pong")}, nil
	}
	if !slices.Contains(hookEvents(d.Params), event) {
		return pdk.WebhookReceipt{Response: textResponse(202, "ignored: "+event)}, nil
	}
	delivery := header(d.Request.Headers, "X-GitHub-Delivery")
	if delivery == "" {
		return pdk.WebhookReceipt{Response: textResponse(400, "no X-GitHub-Delivery")}, nil
	}
	var p wireHookPayload
	if err := json.Unmarshal(d.Body, &p); err != nil || p.Issue == nil {
		return pdk.WebhookReceipt{Response: textResponse(400, "the payload is not an "+event+" event")}, nil
	}
	is := wireIssue{Issue: *p.Issue}.issue()
	ev := IssueEvent{Action: p.Action, Issue: trimIssue(is), Comment: p.Comment, Repository: p.Repository.FullName, Sender: p.Sender.Login}
	when := is.UpdatedAt
	if p.Comment != nil {
		when = p.Comment.UpdatedAt
	}
	return pdk.WebhookReceipt{Events: []pdk.Event{{ID: delivery, Type: p.Action, Time: when, Data: ev}}}, nil
}

// validSignature checks sig ("sha256=<hex>") against the HMAC-SHA256 of body with secret, in
// constant time.
func validSignature(sig, secret string, body []byte) bool {
	hexMAC, ok := strings.CutPrefix(sig, "sha256=")
	if !ok || secret == "" {
		return false
	}
	got, err := hex.DecodeString(hexMAC)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// header returns the named inbound header, whatever the case of its name (the host sends
// canonical names: X-Github-Event).
func header(h map[string]string, name string) string {
	if v, ok := h[pdk.CanonicalHeaderKey(name)]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
