package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
)

// listAPI serves a JSON body that the test changes, with an ETag when etags is set.
type listAPI struct {
	srv *httptest.Server

	mu       sync.Mutex
	body     string
	etags    bool
	requests []*http.Request
}

func newListAPI(t *testing.T, body string) *listAPI {
	api := &listAPI{body: body}
	api.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		defer api.mu.Unlock()
		api.requests = append(api.requests, r)
		if api.etags {
			etag := fmt.Sprintf(`"%x"`, len(api.body)*31+strings.Count(api.body, "id"))
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, api.body)
	}))
	t.Cleanup(api.srv.Close)
	return api
}

func (a *listAPI) set(body string) {
	a.mu.Lock()
	a.body = body
	a.mu.Unlock()
}

func (a *listAPI) last() *http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests[len(a.requests)-1]
}

func pollHarness(t *testing.T, api *listAPI) *pdktest.Harness {
	return pdktest.New(t, pdktest.Options{Connection: &abi.Connection{ID: "api", Params: map[string]any{"base_url": api.srv.URL + "/v1"}}})
}

func ids(res abi.PollResult) string {
	out := make([]string, len(res.Events))
	for i, e := range res.Events {
		out[i] = e.ID
	}
	return strings.Join(out, ",")
}

func mustPoll(t *testing.T, h *pdktest.Harness, params any, cursor *string) abi.PollResult {
	t.Helper()
	res, e := h.Poll("poll_json", params, cursor)
	if e != nil {
		t.Fatalf("poll: %v", e)
	}
	return res
}

func TestPollJSONBaselineThenNewItemsOnce(t *testing.T) {
	api := newListAPI(t, `[{"id":1,"name":"a"},{"id":"two","name":"b"}]`)
	h := pollHarness(t, api)
	params := map[string]any{"path": "/orders?sort=-created"}

	res := mustPoll(t, h, params, nil)
	if len(res.Events) != 0 || res.Cursor != `{"ids":["1","two"]}` {
		t.Fatalf("baseline: %+v", res)
	}
	if got := api.last().URL.String(); got != "/v1/orders?sort=-created" {
		t.Errorf("requested %s", got)
	}

	api.set(`[{"id":4.2e1,"name":"new"},{"id":1,"name":"a"},{"id":"two","name":"b"},{"id":7,"name":"newer"},{"id":42,"name":"dup"}]`)
	res = mustPoll(t, h, params, &res.Cursor)
	if got := ids(res); got != "42,7" {
		t.Fatalf("events %s, want 42,7", got)
	}
	if string(res.Events[0].Data) != `{"id":4.2e1,"name":"new"}` {
		t.Errorf("data %s", res.Events[0].Data)
	}
	if res.Cursor != `{"ids":["42","1","two","7"]}` {
		t.Errorf("cursor %s", res.Cursor)
	}

	again := mustPoll(t, h, params, &res.Cursor)
	if len(again.Events) != 0 || again.Cursor != res.Cursor {
		t.Errorf("unchanged list: %+v", again)
	}

	// An item that left and came back is new again: the cursor holds the last answer's ids.
	api.set(`[{"id":"two"}]`)
	res = mustPoll(t, h, params, &again.Cursor)
	api.set(`[{"id":"two"},{"id":1}]`)
	if got := ids(mustPoll(t, h, params, &res.Cursor)); got != "1" {
		t.Errorf("events %s, want 1", got)
	}
}

func TestPollJSONPointerFieldsAndHeaders(t *testing.T) {
	api := newListAPI(t, `{"data":{"items":[{"meta":{"uuid":"a"},"at":"2026-11-28T07:00:00Z"}]}}`)
	h := pollHarness(t, api)
	params := map[string]any{"items_pointer": "/data/items", "id_field": "/meta/uuid", "time_field": "at", "headers": map[string]string{"X-Tenant": "t1"}}
	res := mustPoll(t, h, params, nil)
	api.set(`{"data":{"items":[{"meta":{"uuid":"a"},"at":"2026-11-28T07:00:00Z"},{"meta":{"uuid":"b"},"at":"2026-11-28T08:00:00+01:00"},{"meta":{"uuid":"c"},"at":"soon"}]}}`)
	res = mustPoll(t, h, params, &res.Cursor)
	if got := ids(res); got != "b,c" {
		t.Fatalf("events %s", got)
	}
	if res.Events[0].Time != "2026-11-28T07:00:00Z" || res.Events[1].Time != "" {
		t.Errorf("times %q %q", res.Events[0].Time, res.Events[1].Time)
	}
	if r := api.last(); r.Header.Get("X-Tenant") != "t1" || r.Header.Get("Accept") != "application/json" {
		t.Errorf("headers %v", r.Header)
	}
}

func TestPollJSONNotModified(t *testing.T) {
	api := newListAPI(t, `[{"id":1}]`)
	api.etags = true
	h := pollHarness(t, api)
	res := mustPoll(t, h, nil, nil)
	var c pollJSONCursor
	json.Unmarshal([]byte(res.Cursor), &c)
	if c.ETag == "" {
		t.Fatalf("no etag in %s", res.Cursor)
	}
	again := mustPoll(t, h, nil, &res.Cursor)
	if len(again.Events) != 0 || again.Cursor != res.Cursor || api.last().Header.Get("If-None-Match") != c.ETag {
		t.Errorf("304 poll: %+v, If-None-Match %q", again, api.last().Header.Get("If-None-Match"))
	}
	api.set(`[{"id":1},{"id":2}]`)
	if got := ids(mustPoll(t, h, nil, &again.Cursor)); got != "2" {
		t.Errorf("after a change: events %s", got)
	}
}

func TestPollJSONErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		params  map[string]any
		code    string
		message string
	}{
		{"the body is an object, not an array", `{"items":[]}`, nil, abi.CodeInvalidInput, `resolves to an object, not an array`},
		{"the pointer names a missing member", `{"items":[]}`, map[string]any{"items_pointer": "/data"}, abi.CodeInvalidInput, `no member "data"`},
		{"the pointer runs into a scalar", `{"items":3}`, map[string]any{"items_pointer": "/items/x"}, abi.CodeInvalidInput, `is a number, which has no member "x"`},
		{"an item lacks the id field", `[{"id":1},{"name":"x"}]`, nil, abi.CodeInvalidInput, `item 1 of the response: the item has no "id" field`},
		{"an id is a boolean", `[{"key":true}]`, map[string]any{"id_field": "key"}, abi.CodeInvalidInput, `is a boolean, not a string or a number`},
		{"an item is not an object", `[1,2]`, nil, abi.CodeInvalidInput, `the item is a number, not an object`},
		{"the body is not JSON", `<html>`, nil, abi.CodeUpstreamError, `not JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pollHarness(t, newListAPI(t, tt.body))
			if tt.params == nil {
				tt.params = map[string]any{}
			}
			_, e := h.Poll("poll_json", tt.params, nil)
			if e == nil || e.Code != tt.code || !strings.Contains(e.Message, tt.message) {
				t.Errorf("error %+v, want %s containing %q", e, tt.code, tt.message)
			}
		})
	}
}

func TestPollJSONWatchesAtMost1000Items(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range maxWatched + 5 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":%d}`, i)
	}
	b.WriteString("]")
	api := newListAPI(t, b.String())
	h := pollHarness(t, api)
	res := mustPoll(t, h, nil, nil)
	var c pollJSONCursor
	json.Unmarshal([]byte(res.Cursor), &c)
	if len(c.IDs) != maxWatched || c.IDs[maxWatched-1] != fmt.Sprint(maxWatched-1) {
		t.Errorf("%d ids recorded", len(c.IDs))
	}
	if logs := strings.Join(h.Logs(), "\n"); !strings.Contains(logs, "only the first 1000 are watched") {
		t.Errorf("no warning logged: %s", logs)
	}
}
