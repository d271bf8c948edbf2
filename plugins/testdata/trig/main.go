// Command trig is a test plugin for the trigger engine: a poll trigger over a paged feed and a
// webhook trigger with a subscribe/renew/unsubscribe API, a signature and a handshake, both
// against a fake upstream of the tests (server/trigger_test.go).
//
// The feed at {base_url}{feed}: GET ?latest=1 answers {"latest": N}; GET ?after=N&limit=K
// answers {"items": [{"n": 3, "id": "...", "type": "...", "time": "...", "data": {...}}],
// "more": bool}. The cursor is the highest n seen.
//
// The webhook API at {base_url}/subscriptions: POST {callback_url, secret, channel} answers
// {"id"}; POST /subscriptions/{id}/renew; DELETE /subscriptions/{id}. Deliveries carry
// X-Signature: hex HMAC-SHA256(secret, body) and a body {"events": [Event]}; a request with
// ?validationToken=T is a handshake answered with T.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o trig.wasm ./plugins/testdata/trig
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

func main() {}

func init() {
	pdk.Connector(pdk.Info{
		Name:             "trig",
		Version:          "1.0.0",
		Title:            "Trigger test plugin",
		Auth:             abi.Auth{Types: []string{abi.AuthNone, abi.AuthAPIKey}, APIKey: &abi.APIKeyAuth{In: "header", Name: "X-Api-Key"}},
		ConnectionParams: `{"type":"object","properties":{"base_url":{"type":"string","format":"uri"}},"required":["base_url"]}`,
		Hosts:            []string{"{base_url}"},
	})
	pdk.PollTrigger("items", pollItems, pdk.Description("New items of a paged feed."), pdk.Interval(time.Second, time.Second))
	pdk.WebhookTrigger("hook", pdk.Webhook[HookParams]{
		Subscribe:   subscribe,
		Renew:       renew,
		Unsubscribe: unsubscribe,
		Receive:     receive,
	}, pdk.Description("Events pushed by the upstream."))
}

// ItemsParams are the poll trigger's params.
type ItemsParams struct {
	Feed     string `json:"feed,omitempty" jsonschema:"path of the feed, default /items"`
	PageSize int    `json:"page_size,omitempty" jsonschema:"items per page, default 100"`
	History  bool   `json:"history,omitempty" jsonschema:"the baseline poll returns the existing items too"`
}

type item struct {
	N    int64           `json:"n"`
	ID   string          `json:"id"`
	Type string          `json:"type,omitempty"`
	Time string          `json:"time,omitempty"`
	Data json.RawMessage `json:"data"`
}

func pollItems(ctx *pdk.Context, p ItemsParams, cursor *string) (pdk.PollResult, error) {
	feed := ctx.Param("base_url") + p.Feed
	if p.Feed == "" {
		feed = ctx.Param("base_url") + "/items"
	}
	if cursor == nil && !p.History {
		var latest struct {
			Latest int64 `json:"latest"`
		}
		if _, err := ctx.HTTP().GetJSON(feed+"?latest=1", &latest); err != nil {
			return pdk.PollResult{}, err
		}
		return pdk.PollResult{Cursor: strconv.FormatInt(latest.Latest, 10)}, nil
	}
	after := int64(0)
	if cursor != nil {
		after, _ = strconv.ParseInt(*cursor, 10, 64)
	}
	size := p.PageSize
	if size <= 0 {
		size = 100
	}
	var page struct {
		Items []item `json:"items"`
		More  bool   `json:"more"`
	}
	q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(size)}}
	if _, err := ctx.HTTP().GetJSON(feed+"?"+q.Encode(), &page); err != nil {
		return pdk.PollResult{}, err
	}
	res := pdk.PollResult{More: page.More}
	for _, it := range page.Items {
		var at time.Time
		if it.Time != "" {
			at, _ = time.Parse(time.RFC3339Nano, it.Time)
		}
		res.Events = append(res.Events, pdk.Event{ID: it.ID, Type: it.Type, Time: at, Data: it.Data})
		after = max(after, it.N)
	}
	res.Cursor = strconv.FormatInt(after, 10)
	return res, nil
}

// HookParams are the webhook trigger's params.
type HookParams struct {
	Channel string `json:"channel" jsonschema:"upstream channel to subscribe to"`
	RenewS  int    `json:"renew_s,omitempty" jsonschema:"renew the upstream subscription every renew_s seconds"`
}

type hookState struct {
	ID string `json:"id"`
}

func renewAt(p HookParams) time.Time {
	if p.RenewS <= 0 {
		return time.Time{}
	}
	return time.Now().Add(time.Duration(p.RenewS) * time.Second)
}

func subscribe(ctx *pdk.Context, sub pdk.WebhookSubscription[HookParams]) (pdk.WebhookState, error) {
	var st hookState
	in := map[string]string{"callback_url": sub.CallbackURL, "secret": sub.Secret, "channel": sub.Params.Channel}
	if _, err := ctx.HTTP().PostJSON(ctx.Param("base_url")+"/subscriptions", in, &st); err != nil {
		return pdk.WebhookState{}, err
	}
	return pdk.WebhookState{State: st, RenewAt: renewAt(sub.Params)}, nil
}

func renew(ctx *pdk.Context, sub pdk.WebhookSubscription[HookParams]) (pdk.WebhookState, error) {
	var st hookState
	if err := json.Unmarshal(sub.State, &st); err != nil {
		return pdk.WebhookState{}, pdk.Errorf(abi.CodeInternal, "bad state: %v", err)
	}
	if _, err := ctx.HTTP().PostJSON(ctx.Param("base_url")+"/subscriptions/"+st.ID+"/renew", map[string]string{}, nil); err != nil {
		return pdk.WebhookState{}, err
	}
	return pdk.WebhookState{State: st, RenewAt: renewAt(sub.Params)}, nil
}

func unsubscribe(ctx *pdk.Context, sub pdk.WebhookSubscription[HookParams]) error {
	var st hookState
	if err := json.Unmarshal(sub.State, &st); err != nil {
		return pdk.Errorf(abi.CodeInternal, "bad state: %v", err)
	}
	_, err := ctx.HTTP().DoJSON("DELETE", ctx.Param("base_url")+"/subscriptions/"+st.ID, nil, nil)
	return err
}

func receive(ctx *pdk.Context, d pdk.WebhookDelivery[HookParams]) (pdk.WebhookReceipt, error) {
	if tok := d.Request.Query["validationToken"]; tok != "" {
		return pdk.WebhookReceipt{Response: &abi.WebhookResponse{Status: 200, Headers: map[string]string{"Content-Type": "text/plain"}, Body: tok}}, nil
	}
	mac := hmac.New(sha256.New, []byte(d.Secret))
	mac.Write(d.Body)
	got, _ := hex.DecodeString(d.Request.Headers["X-Signature"])
	if !hmac.Equal(got, mac.Sum(nil)) {
		return pdk.WebhookReceipt{Response: &abi.WebhookResponse{Status: 401, Body: "bad signature"}}, nil
	}
	var body struct {
		Events []item `json:"events"`
		// RenewNow asks the host to renew the upstream subscription at once.
		RenewNow bool `json:"renew_now"`
	}
	if err := json.Unmarshal(d.Body, &body); err != nil {
		return pdk.WebhookReceipt{Response: &abi.WebhookResponse{Status: 400, Body: "bad body"}}, nil
	}
	var r pdk.WebhookReceipt
	for _, it := range body.Events {
		var at time.Time
		if it.Time != "" {
			at, _ = time.Parse(time.RFC3339Nano, it.Time)
		}
		r.Events = append(r.Events, pdk.Event{ID: it.ID, Type: it.Type, Time: at, Data: it.Data})
	}
	if body.RenewNow {
		r.RenewAt = time.Now()
	}
	r.Response = &abi.WebhookResponse{Status: 202, Body: "accepted"}
	return r, nil
}
