package graphfake

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Change-notification subscriptions (POST/GET/PATCH/DELETE /subscriptions, POST
// /subscriptions/{id}/reauthorize), written from Microsoft's documentation of the subscription
// resource, webhook delivery and lifecycle notifications:
//
//   - POST validates as Graph does: changeType (created, updated, deleted, comma-separated),
//     notificationUrl, resource and expirationDateTime are required; the resource must be one
//     the fake knows (me/messages, me/mailFolders('{folder}')/messages, with users/{id} in
//     place of me); expirationDateTime must be in the future and at most [MaxMessageSubscription]
//     ahead (a value under 45 minutes ahead is raised to 45 minutes, as Graph does);
//     clientState is at most 128 characters. Real Graph requires https notification URLs; the
//     fake accepts http as well, for loopback tests.
//   - Before answering 201, the fake validates notificationUrl (and lifecycleNotificationUrl
//     when it differs): a POST to url?validationToken=<token> with Content-Type text/plain and
//     an empty body, which must answer 200 with exactly the token as a text/plain body within
//     10 seconds; otherwise 400 "Subscription validation request failed...".
//   - A subscription past its expirationDateTime is gone: 404, and no notifications.
//
// Notifications: [Fake.messageCreated] (called by the mailbox when a message arrives) POSTs a
// changeNotificationCollection to every matching live subscription's notificationUrl, one
// notification per message, batched per URL inside [Fake.Batch].

// MaxMessageSubscription is Graph's maximum lifetime of a subscription to Outlook messages
// without resource data: 10,080 minutes (under 7 days).
const MaxMessageSubscription = 10080 * time.Minute

// minSubscription is the shortest lifetime Graph grants: a requested expiration under 45
// minutes ahead is raised to 45 minutes.
const minSubscription = 45 * time.Minute

// validationTimeout is how long Graph waits for the validation answer.
const validationTimeout = 10 * time.Second

// TenantID and ApplicationID are the tenant and the app the fake's subscriptions belong to.
const (
	TenantID      = "9b5b3e10-4f07-4f2e-a5f1-6b7d2b6c2a11"
	ApplicationID = "24d3b144-21ae-4080-943f-7067b395b913"
)

// Subscription is one change-notification subscription, as the fake holds it.
type Subscription struct {
	ID                        string
	Resource                  string
	ChangeType                string
	ClientState               string
	NotificationURL           string
	LifecycleNotificationURL  string
	ExpirationDateTime        time.Time
	LatestSupportedTLSVersion string
	// Reauthorized counts the POST /subscriptions/{id}/reauthorize calls; Renewed the PATCHes.
	Reauthorized, Renewed int

	folder string // the mailFolders('{folder}') of the resource, lower-cased; "" for all messages
}

// Delivery is one request the fake sent to a client endpoint.
type Delivery struct {
	// Kind is "validation", "notification", "lifecycle" or "forged".
	Kind string
	// URL is where it was sent (with the validationToken query for a validation).
	URL string
	// Body is what was sent.
	Body []byte
	// Status is the status answered, 0 when the request failed (Err).
	Status int
	// Response is the answer's body (at most 64 KiB).
	Response string
	// Err is the transport error, "" when an answer came.
	Err string
}

// subStore is the fake's subscription state, guarded by Fake.mu.
type subStore struct {
	subs       map[string]*Subscription
	max        time.Duration // SetMaxExpiration; 0 means Graph's maximum
	paused     bool
	deliveries []Delivery
	batching   int
	pending    []pendingNote
	client     *http.Client
}

type pendingNote struct {
	url  string
	note map[string]any
}

func (f *Fake) initSubscriptions() {
	f.subs = &subStore{subs: map[string]*Subscription{}, client: &http.Client{
		Timeout:       validationTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	f.handle("POST", "/subscriptions", f.createSubscription)
	f.handle("GET", "/subscriptions", f.listSubscriptions)
	f.handle("GET", "/subscriptions/([^/]+)", f.getSubscription)
	f.handle("PATCH", "/subscriptions/([^/]+)", f.updateSubscription)
	f.handle("DELETE", "/subscriptions/([^/]+)", f.deleteSubscription)
	f.handle("POST", "/subscriptions/([^/]+)/reauthorize", f.reauthorizeSubscription)
}

// resourcePattern is the resources the fake accepts: a user's messages, or one folder's.
var resourcePattern = regexp.MustCompile(`(?i)^/?(me|users/([^/]+))/(?:mailfolders\('([^']+)'\)/)?messages$`)

// wireSubscription is the subscription document of the requests and answers.
type wireSubscription struct {
	ChangeType                *string `json:"changeType"`
	NotificationURL           *string `json:"notificationUrl"`
	LifecycleNotificationURL  *string `json:"lifecycleNotificationUrl"`
	Resource                  *string `json:"resource"`
	ExpirationDateTime        *string `json:"expirationDateTime"`
	ClientState               *string `json:"clientState"`
	LatestSupportedTLSVersion *string `json:"latestSupportedTlsVersion"`
	IncludeResourceData       *bool   `json:"includeResourceData"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// graphTime formats t as Graph writes a DateTimeOffset (seven fractional digits, UTC).
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func (s *Subscription) doc(f *Fake) map[string]any {
	d := map[string]any{
		"@odata.context":            f.baseURL("/$metadata#subscriptions/$entity"),
		"id":                        s.ID,
		"resource":                  s.Resource,
		"applicationId":             ApplicationID,
		"changeType":                s.ChangeType,
		"clientState":               nil,
		"notificationUrl":           s.NotificationURL,
		"notificationQueryOptions":  nil,
		"lifecycleNotificationUrl":  nil,
		"expirationDateTime":        graphTime(s.ExpirationDateTime),
		"creatorId":                 UserID,
		"includeResourceData":       false,
		"latestSupportedTlsVersion": s.LatestSupportedTLSVersion,
		"encryptionCertificate":     nil,
		"encryptionCertificateId":   nil,
		"notificationUrlAppId":      nil,
	}
	if s.ClientState != "" {
		d["clientState"] = s.ClientState
	}
	if s.LifecycleNotificationURL != "" {
		d["lifecycleNotificationUrl"] = s.LifecycleNotificationURL
	}
	return d
}

func badRequest(w http.ResponseWriter, msg string) {
	WriteError(w, http.StatusBadRequest, "InvalidRequest", msg)
}

// checkURL reports what is wrong with a notification URL, "" when it is acceptable.
func checkURL(name, u string) string {
	p, err := url.Parse(u)
	if err != nil || !p.IsAbs() || p.Host == "" {
		return name + " must be an absolute URL."
	}
	// Graph requires https; the fake also takes http so tests can use loopback servers.
	if p.Scheme != "https" && p.Scheme != "http" {
		return name + " must use the HTTPS protocol."
	}
	return ""
}

// grantExpiration checks a requested expirationDateTime and returns the one granted.
func (f *Fake) grantExpiration(w http.ResponseWriter, raw string, now time.Time) (time.Time, bool) {
	at, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		badRequest(w, "Invalid expirationDateTime: '"+raw+"'. It must be an ISO 8601 date and time in UTC.")
		return time.Time{}, false
	}
	if !at.After(now) {
		badRequest(w, "Subscription expiration date time must be in the future.")
		return time.Time{}, false
	}
	if at.After(now.Add(MaxMessageSubscription)) {
		badRequest(w, fmt.Sprintf("Subscription expiration can only be %d minutes in the future.", int(MaxMessageSubscription/time.Minute)))
		return time.Time{}, false
	}
	if at.Before(now.Add(minSubscription)) {
		at = now.Add(minSubscription)
	}
	f.mu.Lock()
	limit := f.subs.max
	f.mu.Unlock()
	if limit > 0 && at.After(now.Add(limit)) {
		at = now.Add(limit)
	}
	return at.UTC(), true
}

func (f *Fake) createSubscription(w http.ResponseWriter, r *http.Request, _ []string) {
	var in wireSubscription
	if !readJSON(w, r, &in) {
		return
	}
	for _, req := range []struct {
		name string
		v    *string
	}{{"changeType", in.ChangeType}, {"notificationUrl", in.NotificationURL}, {"resource", in.Resource}, {"expirationDateTime", in.ExpirationDateTime}} {
		if str(req.v) == "" {
			badRequest(w, "The property '"+req.name+"' is required.")
			return
		}
	}
	for _, ct := range strings.Split(*in.ChangeType, ",") {
		switch strings.TrimSpace(ct) {
		case "created", "updated", "deleted":
		default:
			badRequest(w, "Invalid changeType '"+ct+"'. The supported values are created, updated and deleted.")
			return
		}
	}
	if msg := checkURL("notificationUrl", *in.NotificationURL); msg != "" {
		badRequest(w, msg)
		return
	}
	lifecycle := str(in.LifecycleNotificationURL)
	if lifecycle != "" {
		if msg := checkURL("lifecycleNotificationUrl", lifecycle); msg != "" {
			badRequest(w, msg)
			return
		}
	}
	m := resourcePattern.FindStringSubmatch(*in.Resource)
	if m == nil {
		badRequest(w, "Resource '"+*in.Resource+"' is not supported for change notifications (the fake knows me/messages and me/mailFolders('{id}')/messages, or users/{id}/...).")
		return
	}
	if u := m[2]; u != "" {
		if uu, _ := url.PathUnescape(u); uu != UserID && !strings.EqualFold(uu, UserPrincipalName) {
			WriteError(w, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+uu+"' is invalid.")
			return
		}
	}
	if len(str(in.ClientState)) > 128 {
		badRequest(w, "clientState must be at most 128 characters long.")
		return
	}
	if in.IncludeResourceData != nil && *in.IncludeResourceData {
		badRequest(w, "The fake does not support includeResourceData (it needs an encryptionCertificate).")
		return
	}
	tls := str(in.LatestSupportedTLSVersion)
	switch tls {
	case "":
		tls = "v1_2"
	case "v1_0", "v1_1", "v1_2", "v1_3":
	default:
		badRequest(w, "Invalid latestSupportedTlsVersion '"+tls+"'. The possible values are v1_0, v1_1, v1_2 and v1_3.")
		return
	}
	now := time.Now()
	exp, ok := f.grantExpiration(w, *in.ExpirationDateTime, now)
	if !ok {
		return
	}
	// The validation handshake, before the subscription exists.
	urls := []string{*in.NotificationURL}
	if lifecycle != "" && lifecycle != *in.NotificationURL {
		urls = append(urls, lifecycle)
	}
	for _, u := range urls {
		if !f.validateEndpoint(u) {
			badRequest(w, "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.")
			return
		}
	}
	s := &Subscription{ID: newRequestID(), Resource: *in.Resource, ChangeType: *in.ChangeType, ClientState: str(in.ClientState),
		NotificationURL: *in.NotificationURL, LifecycleNotificationURL: lifecycle, ExpirationDateTime: exp,
		LatestSupportedTLSVersion: tls, folder: strings.ToLower(m[3])}
	f.mu.Lock()
	f.subs.subs[s.ID] = s
	doc := s.doc(f)
	f.mu.Unlock()
	WriteJSON(w, http.StatusCreated, doc)
}

// validateEndpoint runs Graph's validation request against u.
func (f *Fake) validateEndpoint(u string) bool {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	// Graph's tokens are opaque text with characters that need encoding in a query.
	token := "Validation: Testing client application reachability for subscription Request-Id: " + hex.EncodeToString(b)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	target := u + sep + "validationToken=" + url.QueryEscape(token)
	d, resp := f.send("validation", target, "text/plain; charset=utf-8", nil)
	if d.Status != http.StatusOK || resp != token {
		return false
	}
	return true
}

// send POSTs body to u and records the delivery; it returns it and the answer's body.
func (f *Fake) send(kind, u, contentType string, body []byte) (Delivery, string) {
	d := Delivery{Kind: kind, URL: u, Body: body}
	var answer string
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", contentType)
		var resp *http.Response
		resp, err = f.subs.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			d.Status, answer = resp.StatusCode, string(b)
			if kind == "validation" && !strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/plain") {
				d.Status = 0
				err = fmt.Errorf("the validation answer's Content-Type is %q, not text/plain", resp.Header.Get("Content-Type"))
			}
		}
	}
	if err != nil {
		d.Err = err.Error()
	}
	d.Response = answer
	f.mu.Lock()
	f.subs.deliveries = append(f.subs.deliveries, d)
	f.mu.Unlock()
	return d, answer
}

// live returns the subscription id unless it does not exist or has expired (then it is
// deleted). Call with f.mu held.
func (f *Fake) live(id string, now time.Time) *Subscription {
	s := f.subs.subs[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.ExpirationDateTime) {
		delete(f.subs.subs, id)
		return nil
	}
	return s
}

func notFound(w http.ResponseWriter) {
	WriteError(w, http.StatusNotFound, "ResourceNotFound", "The object was not found.")
}

func (f *Fake) listSubscriptions(w http.ResponseWriter, _ *http.Request, _ []string) {
	now := time.Now()
	f.mu.Lock()
	value := []map[string]any{}
	for id := range f.subs.subs {
		if s := f.live(id, now); s != nil {
			d := s.doc(f)
			delete(d, "@odata.context")
			value = append(value, d)
		}
	}
	f.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"@odata.context": f.baseURL("/$metadata#subscriptions"), "value": value})
}

func (f *Fake) getSubscription(w http.ResponseWriter, _ *http.Request, m []string) {
	f.mu.Lock()
	s := f.live(m[1], time.Now())
	var doc map[string]any
	if s != nil {
		doc = s.doc(f)
	}
	f.mu.Unlock()
	if s == nil {
		notFound(w)
		return
	}
	WriteJSON(w, http.StatusOK, doc)
}

func (f *Fake) updateSubscription(w http.ResponseWriter, r *http.Request, m []string) {
	var in wireSubscription
	if !readJSON(w, r, &in) {
		return
	}
	now := time.Now()
	f.mu.Lock()
	found := f.live(m[1], now) != nil
	f.mu.Unlock()
	if !found {
		notFound(w)
		return
	}
	var exp time.Time
	if raw := str(in.ExpirationDateTime); raw != "" {
		var ok bool
		if exp, ok = f.grantExpiration(w, raw, now); !ok {
			return
		}
	}
	if u := str(in.NotificationURL); u != "" {
		if msg := checkURL("notificationUrl", u); msg != "" {
			badRequest(w, msg)
			return
		}
		if !f.validateEndpoint(u) {
			badRequest(w, "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.")
			return
		}
	}
	f.mu.Lock()
	s := f.live(m[1], time.Now())
	var doc map[string]any
	if s != nil {
		if !exp.IsZero() {
			s.ExpirationDateTime = exp
		}
		if u := str(in.NotificationURL); u != "" {
			s.NotificationURL = u
		}
		s.Renewed++
		doc = s.doc(f)
	}
	f.mu.Unlock()
	if s == nil {
		notFound(w)
		return
	}
	WriteJSON(w, http.StatusOK, doc)
}

func (f *Fake) deleteSubscription(w http.ResponseWriter, _ *http.Request, m []string) {
	f.mu.Lock()
	s := f.live(m[1], time.Now())
	delete(f.subs.subs, m[1])
	f.mu.Unlock()
	if s == nil {
		notFound(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) reauthorizeSubscription(w http.ResponseWriter, _ *http.Request, m []string) {
	f.mu.Lock()
	s := f.live(m[1], time.Now())
	if s != nil {
		s.Reauthorized++
	}
	f.mu.Unlock()
	if s == nil {
		notFound(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// matches reports whether a message in folderID (whose well-known name, if any, is
// wellKnownName) belongs to the subscription's resource.
func (s *Subscription) matches(folderID, wellKnownName string) bool {
	if !strings.Contains(","+strings.ReplaceAll(s.ChangeType, " ", "")+",", ",created,") {
		return false
	}
	return s.folder == "" || s.folder == strings.ToLower(folderID) || (wellKnownName != "" && s.folder == strings.ToLower(wellKnownName))
}

// messageCreated sends the created notification of message messageID, which arrived in
// folderID (wellKnownName: "inbox", ... or ""), to every live subscription it matches. Call
// it without f.mu held: it waits for the endpoints' answers (inside [Fake.Batch], at the
// batch's end).
func (f *Fake) messageCreated(folderID, wellKnownName, messageID string) {
	now := time.Now()
	var out []pendingNote
	f.mu.Lock()
	if !f.subs.paused {
		for id := range f.subs.subs {
			s := f.live(id, now)
			if s == nil || !s.matches(folderID, wellKnownName) {
				continue
			}
			res := "Users/" + UserID + "/Messages/" + messageID
			note := map[string]any{
				"subscriptionId":                 s.ID,
				"subscriptionExpirationDateTime": graphTime(s.ExpirationDateTime),
				"changeType":                     "created",
				"resource":                       res,
				"resourceData": map[string]any{
					"@odata.type": "#Microsoft.Graph.Message",
					"@odata.id":   res,
					"@odata.etag": `W/"CQAAABYAAAD` + hex.EncodeToString([]byte(messageID))[:min(16, 2*len(messageID))] + `"`,
					"id":          messageID,
				},
				"clientState": nil,
				"tenantId":    TenantID,
			}
			if s.ClientState != "" {
				note["clientState"] = s.ClientState
			}
			out = append(out, pendingNote{url: s.NotificationURL, note: note})
		}
	}
	if f.subs.batching > 0 {
		f.subs.pending = append(f.subs.pending, out...)
		out = nil
	}
	f.mu.Unlock()
	f.flush(out)
}

// flush sends notes, one collection per notification URL, in the order the URLs first appear.
func (f *Fake) flush(notes []pendingNote) {
	var order []string
	byURL := map[string][]map[string]any{}
	for _, n := range notes {
		if _, ok := byURL[n.url]; !ok {
			order = append(order, n.url)
		}
		byURL[n.url] = append(byURL[n.url], n.note)
	}
	for _, u := range order {
		body, _ := json.Marshal(map[string]any{"value": byURL[u]})
		f.send("notification", u, "application/json; charset=utf-8", body)
	}
}

// Batch runs fn and sends the change notifications of the messages that arrived meanwhile
// together when it returns: one collection per notification URL, as Graph batches changes
// that occur close together. (A test control.)
func (f *Fake) Batch(fn func()) {
	f.mu.Lock()
	f.subs.batching++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.subs.batching--
		var notes []pendingNote
		if f.subs.batching == 0 {
			notes, f.subs.pending = f.subs.pending, nil
		}
		f.mu.Unlock()
		f.flush(notes)
	}()
	fn()
}

// Subscriptions returns the live subscriptions, soonest expiring first.
func (f *Fake) Subscriptions() []Subscription {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Subscription
	for id := range f.subs.subs {
		if s := f.live(id, now); s != nil {
			out = append(out, *s)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ExpirationDateTime.Before(out[j-1].ExpirationDateTime); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// SetMaxExpiration clamps the expirationDateTime the fake grants (on create and renewal) to at
// most d from now, below Graph's 45-minute minimum if need be, so a test sees renewals within
// seconds; zero restores Graph's behaviour. (A test control: requests beyond Graph's own
// maximum are still refused.)
func (f *Fake) SetMaxExpiration(d time.Duration) {
	f.mu.Lock()
	f.subs.max = d
	f.mu.Unlock()
}

// PauseNotifications stops (true) or resumes (false) change notifications: messages still
// arrive, but no notification is sent for them, as when Graph drops notifications (what a
// missed lifecycle notification reports). (A test control.)
func (f *Fake) PauseNotifications(paused bool) {
	f.mu.Lock()
	f.subs.paused = paused
	f.mu.Unlock()
}

// SendLifecycle sends the lifecycle notification event (reauthorizationRequired,
// subscriptionRemoved or missed) of subscription subID to its lifecycleNotificationUrl and
// returns the status answered. subscriptionRemoved deletes the subscription first, as Graph
// does. (A test control.)
func (f *Fake) SendLifecycle(subID, event string) (status int, err error) {
	switch event {
	case "reauthorizationRequired", "subscriptionRemoved", "missed":
	default:
		return 0, fmt.Errorf("graphfake: unknown lifecycle event %q (reauthorizationRequired, subscriptionRemoved or missed)", event)
	}
	f.mu.Lock()
	s := f.live(subID, time.Now())
	var note map[string]any
	var target string
	if s != nil {
		target = s.LifecycleNotificationURL
		note = map[string]any{"subscriptionId": s.ID, "subscriptionExpirationDateTime": graphTime(s.ExpirationDateTime),
			"tenantId": TenantID, "clientState": s.ClientState, "lifecycleEvent": event}
		if event == "subscriptionRemoved" {
			delete(f.subs.subs, subID)
		}
	}
	f.mu.Unlock()
	switch {
	case s == nil:
		return 0, fmt.Errorf("graphfake: no live subscription %q", subID)
	case target == "":
		return 0, fmt.Errorf("graphfake: subscription %q has no lifecycleNotificationUrl", subID)
	}
	body, _ := json.Marshal(map[string]any{"value": []any{note}})
	d, _ := f.send("lifecycle", target, "application/json; charset=utf-8", body)
	if d.Err != "" {
		return 0, fmt.Errorf("graphfake: sending %s: %s", event, d.Err)
	}
	return d.Status, nil
}

// ForgeNotification POSTs body (JSON) to u as a notification that does not come from Graph,
// and returns the status answered. (A test control.)
func (f *Fake) ForgeNotification(u string, body []byte) (status int, err error) {
	d, _ := f.send("forged", u, "application/json; charset=utf-8", body)
	if d.Err != "" {
		return 0, fmt.Errorf("graphfake: forging a notification: %s", d.Err)
	}
	return d.Status, nil
}

// Deliveries returns every request the fake sent to client endpoints (validations,
// notifications, lifecycle notifications, forgeries), in order, with what was answered.
func (f *Fake) Deliveries() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Delivery(nil), f.subs.deliveries...)
}
