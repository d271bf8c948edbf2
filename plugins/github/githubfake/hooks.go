package githubfake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Hook is a repository webhook as registered with the fake.
type Hook struct {
	// ID is the hook's id, as in /repos/{owner}/{repo}/hooks/{id}.
	ID int64
	// URL is config.url, where deliveries go.
	URL string
	// Secret is config.secret, the key of X-Hub-Signature-256 ("" sends no signature).
	Secret string
	// ContentType is config.content_type: "json", or "form" (GitHub's default) for a
	// form-encoded payload field.
	ContentType string
	// Events are the event names the hook receives ("*" for all).
	Events []string
	// Active reports whether deliveries are sent.
	Active bool
	// CreatedAt is when the hook was created.
	CreatedAt time.Time
}

// Delivery is one webhook delivery the fake attempted.
type Delivery struct {
	// ID is the X-GitHub-Delivery header.
	ID string
	// HookID is the hook it went to.
	HookID int64
	// Event is the X-GitHub-Event header ("ping", "issues").
	Event string
	// Action is the payload's action ("" for ping).
	Action string
	// Status is the receiver's HTTP status, 0 when the request failed.
	Status int
	// Err is why the request failed, nil when an answer came.
	Err error
}

// Hooks returns copies of the repository's hooks, oldest first.
func (f *Fake) Hooks(owner, name string) []Hook {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.repo(owner, name)
	if r == nil {
		return nil
	}
	out := make([]Hook, len(r.hooks))
	for i, h := range r.hooks {
		out[i] = *h
		out[i].Events = slices.Clone(h.Events)
	}
	return out
}

// Deliveries returns the deliveries attempted so far (pings included), in order.
func (f *Fake) Deliveries() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deliveries)
}

// DeliverIssueEvent sends an "issues" delivery with action ("opened", "closed", "edited", ...)
// about issue to every active hook of the repository that subscribed to "issues" (or "*"),
// signed with each hook's secret, as GitHub does. It returns each receiver's status, in hook
// order (0 for a request that failed), and the first failure. The payload's issue is issue as
// given, so callers may change it (for example its State) before delivering.
func (f *Fake) DeliverIssueEvent(ctx context.Context, owner, name, action string, issue Issue) (statuses []int, err error) {
	return f.deliverIssue(ctx, owner, name, action, issue, false)
}

// DeliverForged is [Fake.DeliverIssueEvent] with an X-Hub-Signature-256 computed with a wrong
// secret, as a forger who knows the URL but not the secret would send.
func (f *Fake) DeliverForged(ctx context.Context, owner, name, action string, issue Issue) (statuses []int, err error) {
	return f.deliverIssue(ctx, owner, name, action, issue, true)
}

func (f *Fake) deliverIssue(ctx context.Context, owner, name, action string, issue Issue, forge bool) ([]int, error) {
	f.mu.Lock()
	r := f.repo(owner, name)
	if r == nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("githubfake: no repository %s/%s", owner, name)
	}
	payload := map[string]any{
		"action":     action,
		"issue":      issue,
		"repository": r.data,
		"sender":     f.user("octocat"),
	}
	var hooks []Hook
	for _, h := range r.hooks {
		if h.Active && (slices.Contains(h.Events, "issues") || slices.Contains(h.Events, "*")) {
			hooks = append(hooks, *h)
		}
	}
	repoID := r.data.ID
	f.mu.Unlock()

	body, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	statuses := make([]int, len(hooks))
	var first error
	for i, h := range hooks {
		st, err := f.deliver(ctx, h, repoID, "issues", action, body, forge)
		statuses[i] = st
		if err != nil && first == nil {
			first = err
		}
	}
	return statuses, first
}

// ping sends the "ping" delivery GitHub sends when a hook is created. It runs in the
// background; failures are recorded in Deliveries and otherwise ignored.
func (f *Fake) ping(h Hook, hookDoc map[string]any, r Repo) {
	payload := map[string]any{
		"zen":        "Keep it logically awesome.",
		"hook_id":    h.ID,
		"hook":       hookDoc,
		"repository": r,
		"sender":     f.user("octocat"),
	}
	body, _ := json.Marshal(payload)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = f.deliver(ctx, h, r.ID, "ping", "", body, false)
	}()
}

// deliver POSTs one delivery to h and records it.
func (f *Fake) deliver(ctx context.Context, h Hook, repoID int64, event, action string, payload []byte, forge bool) (int, error) {
	id := uuid()
	body, contentType := payload, "application/json"
	if h.ContentType != "json" {
		body, contentType = []byte(url.Values{"payload": {string(payload)}}.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		f.record(Delivery{ID: id, HookID: h.ID, Event: event, Action: action, Err: err})
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "GitHub-Hookshot/7c4f8e2")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-GitHub-Hook-ID", strconv.FormatInt(h.ID, 10))
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
	req.Header.Set("X-GitHub-Hook-Installation-Target-ID", strconv.FormatInt(repoID, 10))
	if h.Secret != "" {
		secret := h.Secret
		if forge {
			secret = "not-the-secret"
		}
		req.Header.Set("X-Hub-Signature-256", "sha256="+hexMAC(sha256.New, secret, body))
		req.Header.Set("X-Hub-Signature", "sha1="+hexMAC(sha1.New, secret, body))
	}
	resp, err := f.hookClient.Do(req)
	if err != nil {
		f.record(Delivery{ID: id, HookID: h.ID, Event: event, Action: action, Err: err})
		return 0, err
	}
	resp.Body.Close()
	f.record(Delivery{ID: id, HookID: h.ID, Event: event, Action: action, Status: resp.StatusCode})
	return resp.StatusCode, nil
}

func (f *Fake) record(d Delivery) {
	f.mu.Lock()
	f.deliveries = append(f.deliveries, d)
	f.mu.Unlock()
}

// Signature returns the X-Hub-Signature-256 value GitHub sends for body with secret.
func Signature(secret string, body []byte) string {
	return "sha256=" + hexMAC(sha256.New, secret, body)
}

func hexMAC(newHash func() hash.Hash, secret string, body []byte) string {
	m := hmac.New(newHash, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// uuid returns a random version 4 UUID, the form of X-GitHub-Delivery.
func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// hookJSON renders h as GitHub's REST API does (the secret masked).
func (f *Fake) hookJSON(r *repo, h *Hook) map[string]any {
	cfg := map[string]any{"url": h.URL, "content_type": h.ContentType, "insecure_ssl": "0"}
	if h.Secret != "" {
		cfg["secret"] = "********"
	}
	self := fmt.Sprintf("%s/hooks/%d", r.data.URL, h.ID)
	return map[string]any{
		"type": "Repository", "id": h.ID, "name": "web", "active": h.Active,
		"events": h.Events, "config": cfg,
		"created_at": h.CreatedAt, "updated_at": h.CreatedAt,
		"url": self, "test_url": self + "/test", "ping_url": self + "/pings", "deliveries_url": self + "/deliveries",
		"last_response": map[string]any{"code": nil, "status": "unused", "message": nil},
	}
}

type hookInput struct {
	Name   *string  `json:"name"`
	Active *bool    `json:"active"`
	Events []string `json:"events"`
	Config *struct {
		URL         *string `json:"url"`
		ContentType *string `json:"content_type"`
		Secret      *string `json:"secret"`
		InsecureSSL any     `json:"insecure_ssl"`
	} `json:"config"`
}

func hookValidation(w http.ResponseWriter, message string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message": "Validation Failed", "status": "422",
		"errors":            []map[string]string{{"resource": "Hook", "code": "custom", "message": message}},
		"documentation_url": "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook",
	})
}

func (f *Fake) createHook(w http.ResponseWriter, r *http.Request, rp *repo) {
	const doc = "https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook"
	if rp == nil {
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", doc, 404))
		return
	}
	var in hookInput
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody("Problems parsing JSON", doc, 400))
		return
	}
	if in.Name != nil && *in.Name != "web" {
		hookValidation(w, "Name must be web")
		return
	}
	if in.Config == nil || in.Config.URL == nil || *in.Config.URL == "" {
		hookValidation(w, "Config must contain a url for webhook hook")
		return
	}
	if u, err := url.Parse(*in.Config.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		hookValidation(w, "Config url is not a valid URL")
		return
	}
	for _, h := range rp.hooks {
		if h.URL == *in.Config.URL {
			hookValidation(w, "Hook already exists on this repository")
			return
		}
	}
	h := &Hook{ID: f.id(), URL: *in.Config.URL, ContentType: "form", Events: []string{"push"}, Active: true,
		CreatedAt: f.createdAt.Add(time.Duration(f.requests) * time.Second)}
	if in.Config.ContentType != nil {
		h.ContentType = *in.Config.ContentType
	}
	if in.Config.Secret != nil {
		h.Secret = *in.Config.Secret
	}
	if in.Active != nil {
		h.Active = *in.Active
	}
	if len(in.Events) > 0 {
		h.Events = slices.Clone(in.Events)
	}
	rp.hooks = append(rp.hooks, h)
	docJSON := f.hookJSON(rp, h)
	w.Header().Set("Location", docJSON["url"].(string))
	writeJSON(w, http.StatusCreated, docJSON)
	if h.Active {
		f.ping(*h, docJSON, rp.data)
	}
}

func (f *Fake) listHooks(w http.ResponseWriter, rp *repo) {
	if rp == nil {
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", "https://docs.github.com/rest/repos/webhooks#list-repository-webhooks", 404))
		return
	}
	out := make([]map[string]any, 0, len(rp.hooks))
	for _, h := range rp.hooks {
		out = append(out, f.hookJSON(rp, h))
	}
	writeJSON(w, http.StatusOK, out)
}

// hook serves GET, PATCH and DELETE /repos/{owner}/{repo}/hooks/{id}.
func (f *Fake) hook(w http.ResponseWriter, r *http.Request, rp *repo, id string) {
	const doc = "https://docs.github.com/rest/repos/webhooks"
	i := -1
	if rp != nil {
		i = slices.IndexFunc(rp.hooks, func(h *Hook) bool { return strconv.FormatInt(h.ID, 10) == id })
	}
	if i < 0 {
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", doc, 404))
		return
	}
	h := rp.hooks[i]
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, f.hookJSON(rp, h))
	case http.MethodDelete:
		rp.hooks = slices.Delete(rp.hooks, i, i+1)
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		var in hookInput
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody("Problems parsing JSON", doc, 400))
			return
		}
		if in.Config != nil {
			if in.Config.URL == nil || *in.Config.URL == "" {
				hookValidation(w, "Config must contain a url for webhook hook")
				return
			}
			h.URL = *in.Config.URL
			if in.Config.ContentType != nil {
				h.ContentType = *in.Config.ContentType
			}
			if in.Config.Secret != nil {
				h.Secret = *in.Config.Secret
			}
		}
		if in.Active != nil {
			h.Active = *in.Active
		}
		if in.Events != nil {
			h.Events = slices.Clone(in.Events)
		}
		writeJSON(w, http.StatusOK, f.hookJSON(rp, h))
	default:
		writeJSON(w, http.StatusNotFound, errorBody("Not Found", doc, 404))
	}
}
