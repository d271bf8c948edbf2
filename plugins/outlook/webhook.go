package main

import (
	"crypto/subtle"
	"encoding/json"
	"net/url"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
	"github.com/plugboard/plugboard/plugins/internal/msgraph"
)

// The message_received webhook trigger: a Microsoft Graph change-notification subscription
// (changeType created) on one mail folder's messages.
//
//   - subscribe creates the subscription with notificationUrl and lifecycleNotificationUrl set
//     to the source's hook URL and clientState set to the source's secret. Graph validates both
//     URLs before it answers: the host serves the hook URL before it calls subscribe, so the
//     validation request reaches receive, which echoes the validationToken. The expiration
//     asked for is Graph's maximum for Outlook messages (10,080 minutes) less a margin; the one
//     Graph answers is kept, and renew_at is a fifth of the lifetime before it (at most an hour
//     before). subscribe also records a delta link of the folder (messages created from now),
//     for the missed catch-up.
//   - receive answers the validation handshake; checks each notification's clientState (in
//     constant time; a notification of a subscription that is replacing the state's is
//     accepted by it); turns each created notification into the message's
//     event (fetched by id; one that is gone is skipped); asks the host to renew at once on
//     reauthorizationRequired and subscriptionRemoved; and on missed emits every message the
//     delta link finds since the last catch-up.
//   - renew PATCHes the expiration, which also reauthorizes the subscription (Graph documents
//     PATCH as reauthorize-and-renew; POST .../reauthorize would not extend it). A 404 (removed
//     by Graph, or expired) creates a new subscription, which carries the delta link over.
//   - unsubscribe deletes the subscription (404 counts as done) and its delta link.
//
// The delta link lives in the connection's kv, under a key of the subscription id, not in
// the state: the host stores the state only from subscribe and renew, and a catch-up in
// receive must move the link forward.

// subscriptionLifetime is what subscribe asks for: Graph's maximum for Outlook messages
// (10,080 minutes, under 7 days) less a margin for clock skew.
const subscriptionLifetime = 10080*time.Minute - 10*time.Minute

// maxRenewMargin caps how long before the expiration renew runs.
const maxRenewMargin = time.Hour

// maxCatchUpPages bounds the pages one baseline or catch-up reads.
const maxCatchUpPages = 50

func init() {
	pdk.WebhookTrigger("message_received", pdk.Webhook[MessageReceivedParams]{
		Subscribe:   subscribeMessages,
		Renew:       renewMessages,
		Unsubscribe: unsubscribeMessages,
		Receive:     receiveMessages,
	},
		pdk.Title("Message received"),
		pdk.Description("Fires for each message that arrives in a mail folder (the inbox by default), pushed by a Microsoft Graph change-notification subscription "+
			"that the trigger creates, renews before it expires, and deletes with the last subscriber. The event id is the message id (the same as new_message's), "+
			"its type created, its time the message's receivedDateTime, and data the message. Notifications are verified with the source's secret (clientState); "+
			"messages whose notifications Graph reports as missed are caught up with a delta query."),
		pdk.EventType[Message]())
}

// MessageReceivedParams are the params of message_received.
type MessageReceivedParams struct {
	Folder string `json:"folder,omitempty" jsonschema:"The mail folder to watch: a well-known name (inbox, drafts, sentitems, deleteditems, archive, junkemail, ...) or a folder id" default:"inbox" minLength:"1" maxLength:"512"`
}

// folder returns the folder's path segment (main.go's folderRef: a well-known name in lower
// case, or an escaped id), or invalid_input for a malformed one.
func (p MessageReceivedParams) folder() (string, error) { return folderRef("folder", p.Folder) }

// hookState is what subscribe and renew keep.
type hookState struct {
	SubscriptionID string    `json:"subscription_id"`
	Expiration     time.Time `json:"expiration"`
	Resource       string    `json:"resource"`
}

// deltaEntry is the kv value of a subscription's catch-up position.
type deltaEntry struct {
	DeltaLink string `json:"delta_link"`
}

func deltaKey(subID string) string { return "message_received/delta/" + subID }

func decodeHookState(raw json.RawMessage) (hookState, error) {
	var st hookState
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &st); err != nil {
			return st, pdk.Errorf(abi.CodeInvalidInput, "the webhook state is not message_received's {\"subscription_id\", \"expiration\", \"resource\"}: %v", err)
		}
	}
	return st, nil
}

// folderSegment is the OData key segment of a folder, as Graph's subscription resources
// name one: mailFolders('inbox'). folder is folderRef's answer (no quote can be in it).
func folderSegment(folder string) string { return "mailFolders('" + folder + "')" }

// wireSub is the part of Graph's subscription document the trigger reads.
type wireSub struct {
	ID                 string    `json:"id"`
	Resource           string    `json:"resource"`
	ExpirationDateTime time.Time `json:"expirationDateTime"`
}

func renewAt(exp, now time.Time) time.Time {
	margin := min(exp.Sub(now)/5, maxRenewMargin)
	return exp.Add(-margin)
}

func subscribeMessages(ctx *pdk.Context, sub pdk.WebhookSubscription[MessageReceivedParams]) (pdk.WebhookState, error) {
	return createSubscription(ctx, newClient(ctx), sub, "")
}

// createSubscription creates the Graph subscription and records its delta link: carried is
// the link of the subscription it replaces, "" for a fresh baseline.
func createSubscription(ctx *pdk.Context, c *client, sub pdk.WebhookSubscription[MessageReceivedParams], carried string) (pdk.WebhookState, error) {
	if sub.CallbackURL == "" {
		return pdk.WebhookState{}, pdk.Errorf(abi.CodeInvalidInput, "no callback_url to register with Microsoft Graph")
	}
	folder, err := sub.Params.folder()
	if err != nil {
		return pdk.WebhookState{}, err
	}
	now := time.Now().UTC()
	resource := c.User + "/" + folderSegment(folder) + "/messages"
	body := map[string]any{
		"changeType":                "created",
		"notificationUrl":           sub.CallbackURL,
		"lifecycleNotificationUrl":  sub.CallbackURL,
		"resource":                  resource,
		"expirationDateTime":        now.Add(subscriptionLifetime).Format("2006-01-02T15:04:05.0000000Z"),
		"clientState":               sub.Secret,
		"latestSupportedTlsVersion": "v1_2",
	}
	// The baseline comes first, so nothing created between it and the subscription is lost.
	link := carried
	if link == "" {
		if link, err = deltaBaseline(ctx, c, folder, now); err != nil {
			return pdk.WebhookState{}, err
		}
	}
	var created wireSub
	if _, err := c.HTTP.PostJSON(c.URL("/subscriptions"), body, &created); err != nil {
		return pdk.WebhookState{}, err
	}
	if created.ID == "" || created.ExpirationDateTime.IsZero() {
		return pdk.WebhookState{}, pdk.Errorf(abi.CodeUpstreamError, "Microsoft Graph created the subscription but answered no id or expirationDateTime")
	}
	if link != "" {
		if err := ctx.KV().Set(deltaKey(created.ID), deltaEntry{DeltaLink: link}, 0); err != nil {
			return pdk.WebhookState{}, err
		}
	}
	st := hookState{SubscriptionID: created.ID, Expiration: created.ExpirationDateTime.UTC(), Resource: resource}
	return pdk.WebhookState{State: st, RenewAt: renewAt(st.Expiration, time.Now())}, nil
}

// deltaBaseline runs a created-messages delta query from now on the folder and returns its
// delta link. A Graph that cannot answer it (a folder without delta support) is logged and
// gives "": the missed catch-up is then unavailable.
func deltaBaseline(ctx *pdk.Context, c *client, folder string, now time.Time) (string, error) {
	next := c.deltaURL(folder, now)
	for range maxCatchUpPages {
		var page msgraph.Page[json.RawMessage]
		resp, err := c.HTTP.GetJSON(next, &page)
		if err != nil {
			if resp != nil && (resp.Status == 400 || resp.Status == 404 || resp.Status == 501) {
				ctx.Logf(pdk.LogWarn, "message_received: the folder's delta query failed (%v); missed notifications cannot be caught up", err)
				return "", nil
			}
			return "", err
		}
		if page.DeltaLink != "" {
			return page.DeltaLink, c.CheckLink("the delta link", page.DeltaLink)
		}
		if page.NextLink == "" {
			return "", pdk.Errorf(abi.CodeUpstreamError, "Microsoft Graph answered a delta page without @odata.nextLink or @odata.deltaLink")
		}
		if err := c.CheckLink("the delta next link", page.NextLink); err != nil {
			return "", err
		}
		next = page.NextLink
	}
	return "", pdk.Errorf(abi.CodeUpstreamError, "the delta baseline took more than %d pages", maxCatchUpPages)
}

func renewMessages(ctx *pdk.Context, sub pdk.WebhookSubscription[MessageReceivedParams]) (pdk.WebhookState, error) {
	st, err := decodeHookState(sub.State)
	if err != nil {
		return pdk.WebhookState{}, err
	}
	c := newClient(ctx)
	if st.SubscriptionID == "" {
		return createSubscription(ctx, c, sub, "")
	}
	body := map[string]string{"expirationDateTime": time.Now().UTC().Add(subscriptionLifetime).Format("2006-01-02T15:04:05.0000000Z")}
	var renewed wireSub
	resp, err := c.HTTP.DoJSON("PATCH", c.URL("/subscriptions/"+url.PathEscape(st.SubscriptionID)), body, &renewed)
	if err != nil && resp != nil && resp.Status == 404 {
		// Removed by Graph (subscriptionRemoved) or expired: subscribe again, keeping the
		// catch-up position so a later missed finds what arrived in between.
		var old deltaEntry
		if _, kerr := ctx.KV().Get(deltaKey(st.SubscriptionID), &old); kerr != nil {
			return pdk.WebhookState{}, kerr
		}
		ctx.Logf(pdk.LogInfo, "message_received: subscription %s is gone from Microsoft Graph; creating a new one", st.SubscriptionID)
		ns, err := createSubscription(ctx, c, sub, old.DeltaLink)
		if err != nil {
			return ns, err
		}
		if err := ctx.KV().Delete(deltaKey(st.SubscriptionID)); err != nil {
			return pdk.WebhookState{}, err
		}
		return ns, nil
	}
	if err != nil {
		return pdk.WebhookState{}, err
	}
	st.Expiration = renewed.ExpirationDateTime.UTC()
	if st.Expiration.IsZero() {
		return pdk.WebhookState{}, pdk.Errorf(abi.CodeUpstreamError, "Microsoft Graph renewed subscription %s but answered no expirationDateTime", st.SubscriptionID)
	}
	return pdk.WebhookState{State: st, RenewAt: renewAt(st.Expiration, time.Now())}, nil
}

func unsubscribeMessages(ctx *pdk.Context, sub pdk.WebhookSubscription[MessageReceivedParams]) error {
	st, err := decodeHookState(sub.State)
	if err != nil || st.SubscriptionID == "" {
		return err
	}
	c := newClient(ctx)
	resp, err := c.HTTP.DoJSON("DELETE", c.URL("/subscriptions/"+url.PathEscape(st.SubscriptionID)), nil, nil)
	if err != nil && (resp == nil || resp.Status != 404) {
		return err
	}
	return ctx.KV().Delete(deltaKey(st.SubscriptionID))
}

// wireNotification is one item of a changeNotificationCollection.
type wireNotification struct {
	SubscriptionID string `json:"subscriptionId"`
	ClientState    string `json:"clientState"`
	ChangeType     string `json:"changeType"`
	LifecycleEvent string `json:"lifecycleEvent"`
	Resource       string `json:"resource"`
	ResourceData   struct {
		ID string `json:"id"`
	} `json:"resourceData"`
}

func textAnswer(status int, body string) *abi.WebhookResponse {
	return &abi.WebhookResponse{Status: status, Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, Body: body}
}

func receiveMessages(ctx *pdk.Context, d pdk.WebhookDelivery[MessageReceivedParams]) (pdk.WebhookReceipt, error) {
	// Graph's validation of the URL: echo the (already URL-decoded) token as plain text.
	if tok, ok := d.Request.Query["validationToken"]; ok {
		return pdk.WebhookReceipt{Response: textAnswer(200, tok)}, nil
	}
	var coll struct {
		Value []wireNotification `json:"value"`
	}
	if err := json.Unmarshal(d.Body, &coll); err != nil || len(coll.Value) == 0 {
		return pdk.WebhookReceipt{Response: textAnswer(400, "not a Microsoft Graph change notification collection")}, nil
	}
	st, err := decodeHookState(d.State)
	if err != nil {
		return pdk.WebhookReceipt{}, err
	}
	// clientState is the source's secret, so it alone proves a notification comes from a Graph
	// subscription of this source. Its subscriptionId may still differ from the state's: the
	// subscription renew just created after subscriptionRemoved, whose state the host stores
	// only once renew returns. Refusing those would lose them until Graph redelivers.
	var valid []wireNotification
	for i, n := range coll.Value {
		if d.Secret == "" || subtle.ConstantTimeCompare([]byte(n.ClientState), []byte(d.Secret)) != 1 {
			ctx.Logf(pdk.LogWarn, "message_received: notification %d of %d refused: wrong clientState (not from this source's subscription), subscriptionId %q", i+1, len(coll.Value), n.SubscriptionID)
			continue
		}
		if n.SubscriptionID != st.SubscriptionID {
			ctx.Logf(pdk.LogInfo, "message_received: notification from subscription %q, not the current %q (one being replaced); accepted for its clientState", n.SubscriptionID, st.SubscriptionID)
		}
		valid = append(valid, n)
	}
	if len(valid) == 0 {
		return pdk.WebhookReceipt{Response: textAnswer(401, "no notification carries this subscription's clientState")}, nil
	}
	c := newClient(ctx)
	var rec pdk.WebhookReceipt
	seen := map[string]bool{}
	add := func(m Message, id string, received time.Time) {
		if !seen[id] {
			seen[id] = true
			rec.Events = append(rec.Events, pdk.Event{ID: id, Type: "created", Time: received, Data: m})
		}
	}
	for _, n := range valid {
		switch n.LifecycleEvent {
		case "reauthorizationRequired", "subscriptionRemoved":
			rec.RenewAt = time.Now()
			continue
		case "missed":
			if err := catchUp(ctx, c, st.SubscriptionID, add); err != nil {
				return pdk.WebhookReceipt{}, err
			}
			continue
		case "":
		default:
			ctx.Logf(pdk.LogInfo, "message_received: lifecycle event %q ignored", n.LifecycleEvent)
			continue
		}
		if n.ChangeType != "created" || n.ResourceData.ID == "" {
			continue
		}
		w, found, err := fetchMessage(c, n.ResourceData.ID)
		if err != nil {
			return pdk.WebhookReceipt{}, err
		}
		if found {
			add(w.message(false), w.ID, w.ReceivedDateTime)
		}
	}
	rec.Response = textAnswer(202, "")
	return rec, nil
}

// fetchMessage reads one message with new_message's fields; found is false when it is gone.
func fetchMessage(c *client, id string) (w wireMessage, found bool, err error) {
	u := c.UserURL("/messages/" + url.PathEscape(id) + "?" + url.Values{"$select": {messageSelect}}.Encode())
	resp, err := c.HTTP.GetJSON(u, &w)
	if err != nil && resp != nil && resp.Status == 404 {
		return w, false, nil
	}
	return w, err == nil, err
}

// catchUp emits every message the subscription's delta link finds and stores the next link.
func catchUp(ctx *pdk.Context, c *client, subID string, add func(Message, string, time.Time)) error {
	var entry deltaEntry
	found, err := ctx.KV().Get(deltaKey(subID), &entry)
	if err != nil {
		return err
	}
	if !found || entry.DeltaLink == "" {
		ctx.Log(pdk.LogWarn, "message_received: Graph reports missed notifications but the source has no delta link to catch up with")
		return nil
	}
	next := entry.DeltaLink
	for range maxCatchUpPages {
		if err := c.CheckLink("the stored delta link", next); err != nil {
			return err
		}
		u, _ := url.Parse(next)
		q := u.Query()
		if q.Get("$select") == "" {
			q.Set("$select", messageSelect)
			u.RawQuery = q.Encode()
		}
		var page msgraph.Page[json.RawMessage]
		if _, err := c.HTTP.GetJSON(u.String(), &page); err != nil {
			return err
		}
		for _, raw := range page.Value {
			var w wireMessage
			if err := json.Unmarshal(raw, &w); err != nil {
				return pdk.Errorf(abi.CodeUpstreamError, "a delta item is not a message: %v", err)
			}
			if w.ID != "" && w.Removed == nil {
				add(w.message(false), w.ID, w.ReceivedDateTime)
			}
		}
		if page.DeltaLink != "" {
			if err := c.CheckLink("the delta link", page.DeltaLink); err != nil {
				return err
			}
			return ctx.KV().Set(deltaKey(subID), deltaEntry{DeltaLink: page.DeltaLink}, 0)
		}
		if page.NextLink == "" {
			return pdk.Errorf(abi.CodeUpstreamError, "Microsoft Graph answered a delta page without @odata.nextLink or @odata.deltaLink")
		}
		next = page.NextLink
	}
	// Keep the position reached; the next missed goes on from there.
	return ctx.KV().Set(deltaKey(subID), deltaEntry{DeltaLink: next}, 0)
}
