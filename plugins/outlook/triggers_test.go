package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

// poller polls new_message as the host does: passing the cursor on, dropping events whose id
// it has seen.
type poller struct {
	t      *testing.T
	h      *pdktest.Harness
	params NewMessageParams
	cursor *string
	seen   map[string]bool
}

func newPoller(t *testing.T, h *pdktest.Harness, p NewMessageParams) *poller {
	return &poller{t: t, h: h, params: p, seen: map[string]bool{}}
}

// poll polls once and returns the new events' ids and whether more was asked.
func (p *poller) poll() ([]string, bool) {
	p.t.Helper()
	res, e := p.h.Poll("new_message", p.params, p.cursor)
	if e != nil {
		p.t.Fatalf("poll: %v", e)
	}
	c := res.Cursor
	p.cursor = &c
	var ids []string
	for _, ev := range res.Events {
		if ev.Type != "created" || ev.Time == "" {
			p.t.Errorf("event %+v", ev)
		}
		if !p.seen[ev.ID] {
			p.seen[ev.ID] = true
			ids = append(ids, ev.ID)
		}
	}
	return ids, res.More
}

// drain polls until more is false and returns every new id.
func (p *poller) drain() []string {
	p.t.Helper()
	var all []string
	for range 50 {
		ids, more := p.poll()
		all = append(all, ids...)
		if !more {
			return all
		}
	}
	p.t.Fatal("more never ended")
	return nil
}

func TestNewMessageBaselineThenOnce(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	for range 3 {
		f.Deliver("inbox", graphfake.NewMessage{Subject: "old"})
	}
	p := newPoller(t, h, NewMessageParams{})
	if ids := p.drain(); len(ids) != 0 {
		t.Fatalf("baseline emitted %v", ids)
	}
	r := f.Requests()[0]
	if !strings.Contains(r.Path, "/mailFolders/inbox/messages/delta") || !strings.Contains(r.RawQuery, "changeType=created") || !strings.Contains(r.RawQuery, "receivedDateTime+ge+") {
		t.Errorf("baseline request %s?%s", r.Path, r.RawQuery)
	}
	var prefer string
	for _, hr := range h.Requests() {
		if strings.Contains(hr.URL, "/delta") {
			prefer = hr.Headers["Prefer"]
		}
	}
	if prefer != "odata.maxpagesize=50" {
		t.Errorf("Prefer = %q", prefer)
	}
	if ids := p.drain(); len(ids) != 0 {
		t.Fatalf("a quiet poll emitted %v", ids)
	}
	a := f.Deliver("inbox", graphfake.NewMessage{Subject: "new one", From: "megan@contoso.example"})
	f.Deliver("archive", graphfake.NewMessage{Subject: "not watched"})
	res, e := h.Poll("new_message", NewMessageParams{}, p.cursor)
	if e != nil {
		t.Fatal(e)
	}
	if len(res.Events) != 1 || res.Events[0].ID != a.ID {
		t.Fatalf("events = %+v", res.Events)
	}
	var data Message
	b, _ := json.Marshal(res.Events[0].Data)
	json.Unmarshal(b, &data)
	if data.Subject != "new one" || data.From == nil || data.From.Address != "megan@contoso.example" || data.Body != nil {
		t.Errorf("data = %s", b)
	}
	p.cursor = &res.Cursor
	if ids := p.drain(); len(ids) != 0 {
		t.Errorf("the message came again: %v", ids)
	}
	// A message moved out of the folder is an @removed entry: skipped.
	if e := h.InvokeInto("move_message", MoveInput{ID: a.ID, Folder: "archive"}, &Message{}); e != nil {
		t.Fatal(e)
	}
	if ids := p.drain(); len(ids) != 0 {
		t.Errorf("a removal emitted %v", ids)
	}
	// The archive folder sees the moved message as new.
	pa := newPoller(t, h, NewMessageParams{Folder: "archive"})
	pa.drain()
	m := f.Deliver("archive", graphfake.NewMessage{Subject: "x"})
	if ids := pa.drain(); len(ids) != 1 || ids[0] != m.ID {
		t.Errorf("archive = %v", ids)
	}
}

func TestNewMessagePagingWithMore(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	p := newPoller(t, h, NewMessageParams{})
	p.drain()
	want := map[string]bool{}
	for range maxDeltaPages*deltaPageSize + 7 {
		want[f.Deliver("inbox", graphfake.NewMessage{Subject: "bulk"}).ID] = true
	}
	ids, more := p.poll()
	if !more || len(ids) != maxDeltaPages*deltaPageSize {
		t.Fatalf("first poll: %d events, more %v", len(ids), more)
	}
	rest, more := p.poll()
	if more || len(rest) != 7 {
		t.Fatalf("second poll: %d events, more %v", len(rest), more)
	}
	for _, id := range append(ids, rest...) {
		delete(want, id)
	}
	if len(want) != 0 {
		t.Errorf("%d messages missed", len(want))
	}
}

func TestNewMessageBaselinePagesEmitNothing(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	// Mail received in the baseline's second (the filter has whole seconds) is listed by the
	// baseline; many of them make the baseline page with more.
	now := time.Now().Add(time.Second)
	for range maxDeltaPages*deltaPageSize + 3 {
		f.Deliver("inbox", graphfake.NewMessage{Subject: "racing", Received: now})
	}
	p := newPoller(t, h, NewMessageParams{})
	ids, more := p.poll()
	if !more || len(ids) != 0 {
		t.Fatalf("baseline: %d events, more %v", len(ids), more)
	}
	if !strings.Contains(*p.cursor, `"baseline":true`) {
		t.Errorf("cursor %s", *p.cursor)
	}
	if ids := p.drain(); len(ids) != 0 {
		t.Fatalf("the rest of the baseline emitted %d", len(ids))
	}
	m := f.Deliver("inbox", graphfake.NewMessage{Subject: "after"})
	if ids := p.drain(); len(ids) != 1 || ids[0] != m.ID {
		t.Errorf("after = %v", ids)
	}
}

func TestNewMessageResyncAfter410(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	f.Deliver("inbox", graphfake.NewMessage{Subject: "old", Received: time.Now().Add(-time.Hour)})
	p := newPoller(t, h, NewMessageParams{})
	p.drain()
	a := f.Deliver("inbox", graphfake.NewMessage{Subject: "a"})
	if ids := p.drain(); len(ids) != 1 || ids[0] != a.ID {
		t.Fatalf("a = %v", ids)
	}
	f.ExpireDeltaTokens()
	b := f.Deliver("inbox", graphfake.NewMessage{Subject: "b", Received: time.Now().Add(time.Second)})
	res, e := h.Poll("new_message", NewMessageParams{}, p.cursor)
	if e != nil {
		t.Fatal(e)
	}
	gone := 0
	for _, r := range f.Requests() {
		if r.Status == 410 {
			gone++
		}
	}
	if gone != 1 {
		t.Errorf("%d answers 410, want 1", gone)
	}
	var fresh []string
	for _, ev := range res.Events {
		if ev.ID == "" || ev.Data == nil {
			t.Errorf("event %+v", ev)
		}
		if !p.seen[ev.ID] {
			fresh = append(fresh, ev.ID)
		}
		if ev.ID != a.ID && ev.ID != b.ID {
			t.Errorf("the resync replayed %s (older than the newest seen)", ev.ID)
		}
	}
	if len(fresh) != 1 || fresh[0] != b.ID {
		t.Errorf("after the resync, new = %v (events %+v), want b", fresh, res.Events)
	}
	p.cursor = &res.Cursor
	for _, id := range fresh {
		p.seen[id] = true
	}
	c := f.Deliver("inbox", graphfake.NewMessage{Subject: "c", Received: time.Now().Add(2 * time.Second)})
	if ids := p.drain(); len(ids) != 1 || ids[0] != c.ID {
		t.Errorf("after = %v", ids)
	}
}

func TestNewMessageForeignCursor(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	for _, c := range []string{`nope`, `{}`, `{"delta":"https://evil.example/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=x"}`} {
		_, e := h.Poll("new_message", NewMessageParams{}, &c)
		pdktest.WantError(t, e, abi.CodeInvalidInput)
	}
	_, e := h.Poll("new_message", NewMessageParams{Folder: "bad folder"}, nil)
	pdktest.WantError(t, e, abi.CodeInvalidInput)
}
