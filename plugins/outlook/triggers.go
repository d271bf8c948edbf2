package main

import (
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
	"github.com/plugboard/plugboard/plugins/internal/msgraph"
)

// new_message polls the delta feed of a folder's messages
// (GET {user}/mailFolders/{folder}/messages/delta?changeType=created):
//
//   - The baseline (no cursor) asks with $filter=receivedDateTime ge <now>, the one filter
//     message delta supports, so the mail already there is not listed; whatever the pages hold
//     is dropped, and the deltaLink at their end is the cursor.
//   - Later polls follow the deltaLink (and its nextLinks) and emit one event per created
//     message, skipping @removed entries. A poll reads at most maxDeltaPages pages; a longer
//     backlog answers more with the nextLink in the cursor (and, during a baseline, the
//     baseline flag, so those pages emit nothing either).
//   - A 410 (SyncStateNotFound, resyncRequired: the sync state expired) starts a new round
//     with $filter=receivedDateTime ge <the newest receivedDateTime seen>: every message
//     since then is emitted again, those already delivered are dropped by the host's
//     de-duplication (event id = message id), and nothing in between is lost.
const (
	maxDeltaPages = 10
	deltaPageSize = 50
)

func init() {
	pdk.PollTrigger("new_message", pollNewMessage,
		pdk.Title("New message"),
		pdk.Description("Fires once for each message that arrives in a folder (inbox by default) after the subscription started. "+
			"The event id is the message id, its type created, its time the message's receivedDateTime; data is the message without its body (use get_message for it)."),
		pdk.EventType[Message](),
		pdk.Interval(60*time.Second, 15*time.Second))
}

// NewMessageParams are the params of new_message.
type NewMessageParams struct {
	Folder string `json:"folder,omitempty" jsonschema:"inbox (default), drafts, sentitems, deleteditems, archive, junkemail or a folder id" maxLength:"1024"`
}

// mailCursor is new_message's cursor.
type mailCursor struct {
	// Delta is the deltaLink the next round starts from ("" until the baseline ends).
	Delta string `json:"delta,omitempty"`
	// Next is the nextLink to continue the current round from (more was answered).
	Next string `json:"next,omitempty"`
	// Baseline says that Next belongs to a baseline round, whose pages emit nothing.
	Baseline bool `json:"baseline,omitempty"`
	// Newest is the receivedDateTime of the newest message seen, or the baseline's start
	// (RFC 3339): a resync starts from it.
	Newest string `json:"newest"`
}

func pollNewMessage(ctx *pdk.Context, p NewMessageParams, cursor *string) (pdk.PollResult, error) {
	c := newClient(ctx)
	folder, err := folderRef("folder", p.Folder)
	if err != nil {
		return pdk.PollResult{}, err
	}
	var cur mailCursor
	var next string
	emit := true
	if cursor == nil {
		start := time.Now().UTC().Truncate(time.Second)
		cur.Newest = start.Format(time.RFC3339)
		next, emit = c.deltaURL(folder, start), false
	} else {
		if err := json.Unmarshal([]byte(*cursor), &cur); err != nil || (cur.Delta == "" && cur.Next == "") {
			return pdk.PollResult{}, pdk.Errorf(abi.CodeInvalidInput, "the cursor %q is not a new_message cursor; resubscribe to start over", *cursor)
		}
		next = cur.Delta
		if cur.Next != "" {
			next, emit = cur.Next, !cur.Baseline
		}
		if err := c.CheckLink("the cursor's delta link", next); err != nil {
			return pdk.PollResult{}, err
		}
	}
	newest, _ := time.Parse(time.RFC3339Nano, cur.Newest)
	var events []pdk.Event
	resynced := false
	for page := 0; ; page++ {
		if page == maxDeltaPages {
			cur.Next, cur.Baseline = next, !emit
			return mailResult(events, cur, newest, true)
		}
		resp, err := c.HTTP.Do(pdk.Request{URL: next, Headers: map[string]string{"Prefer": "odata.maxpagesize=" + strconv.Itoa(deltaPageSize)}})
		if err != nil {
			return pdk.PollResult{}, err
		}
		if resp.Status == 410 && cursor != nil && !resynced {
			// The sync state is gone: a new round from the newest message seen; the host
			// drops the events it already has.
			resynced, emit = true, true
			from := newest
			if from.IsZero() {
				from = time.Now().UTC()
			}
			next = c.deltaURL(folder, from.Truncate(time.Second))
			cur.Delta, cur.Next, cur.Baseline = "", "", false
			ctx.Log(pdk.LogInfo, "new_message: Graph expired the delta token (410); resyncing from "+from.Format(time.RFC3339))
			continue
		}
		if !resp.OK() {
			return pdk.PollResult{}, msgraph.Error(resp)
		}
		var pg msgraph.Page[wireMessage]
		if err := resp.JSON(&pg); err != nil {
			return pdk.PollResult{}, err
		}
		for _, w := range pg.Value {
			if w.Removed != nil || w.ID == "" {
				continue
			}
			if w.ReceivedDateTime.After(newest) {
				newest = w.ReceivedDateTime
			}
			if emit {
				events = append(events, pdk.Event{ID: w.ID, Type: "created", Time: w.ReceivedDateTime, Data: w.message(false)})
			}
		}
		switch {
		case pg.NextLink != "":
			if err := c.CheckLink("Graph's delta nextLink", pg.NextLink); err != nil {
				return pdk.PollResult{}, err
			}
			next = pg.NextLink
		case pg.DeltaLink != "":
			if err := c.CheckLink("Graph's deltaLink", pg.DeltaLink); err != nil {
				return pdk.PollResult{}, err
			}
			cur.Delta, cur.Next, cur.Baseline = pg.DeltaLink, "", false
			return mailResult(events, cur, newest, false)
		default:
			return pdk.PollResult{}, pdk.Errorf(abi.CodeUpstreamError, "Graph's delta answer has neither @odata.nextLink nor @odata.deltaLink")
		}
	}
}

// deltaURL is the first request of a delta round of folder for messages received from since.
func (c *client) deltaURL(folder string, since time.Time) string {
	q := url.Values{"changeType": {"created"}, "$select": {messageSelect},
		"$filter": {"receivedDateTime ge " + since.UTC().Format(time.RFC3339)}}
	return c.UserURL("/mailFolders/"+folder+"/messages/delta") + "?" + q.Encode()
}

func mailResult(events []pdk.Event, cur mailCursor, newest time.Time, more bool) (pdk.PollResult, error) {
	if !newest.IsZero() {
		cur.Newest = newest.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return pdk.PollResult{}, err
	}
	return pdk.PollResult{Events: events, Cursor: string(b), More: more}, nil
}
