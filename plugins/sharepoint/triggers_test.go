package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

func poll(t *testing.T, h *pdktest.Harness, params any, cursor *string) abi.PollResult {
	t.Helper()
	res, e := h.Poll("file_changed", params, cursor)
	if e != nil {
		t.Fatalf("poll: %v", e)
	}
	return res
}

func decodeFileCursor(t *testing.T, s string) fileCursor {
	t.Helper()
	var c fileCursor
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		t.Fatalf("cursor %q: %v", s, err)
	}
	return c
}

// summary renders events as "type:name" in order.
func summary(t *testing.T, res abi.PollResult) string {
	t.Helper()
	var parts []string
	for _, e := range res.Events {
		var d FileEvent
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		name := d.Name
		if name == "" {
			name = d.ID
		}
		parts = append(parts, e.Type+":"+name)
	}
	return strings.Join(parts, ",")
}

func TestFileChangedCreatedUpdatedDeleted(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	drive := f.UserDriveID()
	f.AddFile(drive, "/old/before.txt", []byte("old"))

	base := poll(t, h, nil, nil)
	if len(base.Events) != 0 || base.More {
		t.Fatalf("baseline = %+v", base)
	}
	cur := decodeFileCursor(t, base.Cursor)
	if cur.DriveID != drive || !strings.HasPrefix(cur.Delta, f.URL+"/v1.0/drives/") || cur.Since == "" {
		t.Errorf("cursor = %+v", cur)
	}
	if last := h.Requests()[len(h.Requests())-1]; !strings.Contains(last.URL, "/root/delta?") || !strings.Contains(last.URL, "token=latest") {
		t.Errorf("baseline request %s", last.URL)
	}
	cursor := base.Cursor
	if res := poll(t, h, nil, &cursor); len(res.Events) != 0 {
		t.Fatalf("nothing changed, yet %s", summary(t, res))
	}

	a := f.AddFile(drive, "/docs/a.txt", []byte("a"))
	b := f.AddFile(drive, "/docs/b.txt", []byte("b"))
	res := poll(t, h, nil, &cursor)
	if got := summary(t, res); got != "created:a.txt,created:b.txt" {
		t.Fatalf("events %s, want a and b created (the old file is not replayed, folders are left out)", got)
	}
	ev := res.Events[0]
	var data FileEvent
	json.Unmarshal(ev.Data, &data)
	if ev.ID != a.ID+":"+a.ETag || data.ID != a.ID || data.Size != 1 || data.IsFolder || data.Parent == nil || data.Parent.ID != a.ParentID ||
		data.MimeType != "text/plain" || ev.Time == "" {
		t.Errorf("event %+v data %+v", ev, data)
	}
	cursor = res.Cursor

	a2 := f.UpdateFile(drive, "/docs/a.txt", []byte("a, edited"))
	f.DeleteItem(drive, "/docs/b.txt")
	res = poll(t, h, nil, &cursor)
	if got := summary(t, res); got != "updated:a.txt,deleted:"+b.ID {
		t.Fatalf("events %s", got)
	}
	if res.Events[0].ID != a.ID+":"+a2.ETag || res.Events[1].ID != b.ID+":deleted" {
		t.Errorf("ids %s, %s", res.Events[0].ID, res.Events[1].ID)
	}
	var del FileEvent
	json.Unmarshal(res.Events[1].Data, &del)
	if !del.Deleted || del.ID != b.ID {
		t.Errorf("deleted data = %+v", del)
	}
	cursor = res.Cursor
	if res := poll(t, h, nil, &cursor); len(res.Events) != 0 {
		t.Errorf("after the changes: %s", summary(t, res))
	}
}

func TestFileChangedFoldersAndScope(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	site := f.AddSite("Finance")
	f.AddFolder(site.DriveID, "/Reports")
	params := FileChangedParams{DriveRef: DriveRef{SiteID: site.ID}, Path: "/Reports", IncludeFolders: true}
	cursor := poll(t, h, params, nil).Cursor
	cur := decodeFileCursor(t, cursor)
	reports, _ := f.Item(site.DriveID, "/Reports")
	if cur.DriveID != site.DriveID || cur.FolderID != reports.ID || cur.FolderPath != "/Reports" {
		t.Fatalf("cursor = %+v", cur)
	}

	f.AddFile(site.DriveID, "/Reports/2026/q1.csv", []byte("1"))
	f.AddFile(site.DriveID, "/Elsewhere/x.csv", []byte("x"))
	f.AddFile(site.DriveID, "/Reports/top.csv", []byte("t"))
	res := poll(t, h, params, &cursor)
	if got := summary(t, res); got != "created:2026,created:q1.csv,created:top.csv" {
		t.Fatalf("events %s, want the folder 2026 and the two files under /Reports only", got)
	}
	cursor = res.Cursor
	c := decodeFileCursor(t, cursor)
	y2026, _ := f.Item(site.DriveID, "/Reports/2026")
	elsewhere, _ := f.Item(site.DriveID, "/Elsewhere")
	if !slices.Contains(c.In, y2026.ID) || !slices.Contains(c.Out, elsewhere.ID) {
		t.Errorf("learned folders: in %v out %v", c.In, c.Out)
	}
	// A parent learned once is not looked up again.
	lookups := f.CountRequests("GET", "/items/"+elsewhere.ID)
	f.AddFile(site.DriveID, "/Elsewhere/y.csv", []byte("y"))
	f.AddFile(site.DriveID, "/Reports/2026/q2.csv", []byte("2"))
	prev := res.Events[0].ID // the folder 2026, created
	res = poll(t, h, params, &cursor)
	// Graph lists the folder again with its children, with the same eTag: the same event id,
	// which the host drops as seen.
	if got := summary(t, res); got != "updated:2026,created:q2.csv" || res.Events[0].ID != prev {
		t.Errorf("events %s, folder event id %s (want %s)", got, res.Events[0].ID, prev)
	}
	if n := f.CountRequests("GET", "/items/"+elsewhere.ID); n != lookups {
		t.Errorf("the parent was looked up %d more times", n-lookups)
	}

	// Without include_folders, a new folder is no event.
	plain := FileChangedParams{DriveRef: DriveRef{SiteID: site.ID}}
	pc := poll(t, h, plain, nil).Cursor
	f.AddFolder(site.DriveID, "/Reports/Empty")
	if res := poll(t, h, plain, &pc); len(res.Events) != 0 {
		t.Errorf("folder events without include_folders: %s", summary(t, res))
	}

	_, e := h.Poll("file_changed", FileChangedParams{DriveRef: DriveRef{SiteID: site.ID}, Path: "/Reports/top.csv"}, nil)
	pdktest.WantError(t, e, abi.CodeInvalidInput, "is a file")
	_, e = h.Poll("file_changed", FileChangedParams{Path: "/Missing"}, nil)
	pdktest.WantError(t, e, abi.CodeNotFound)
}

func TestFileChangedPagesThroughABacklog(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	cursor := poll(t, h, nil, nil).Cursor
	n := maxDeltaPages*deltaPageSize + 50
	for i := range n {
		f.AddFile(f.UserDriveID(), fmt.Sprintf("/f%05d.txt", i), []byte("x"))
	}
	first := poll(t, h, nil, &cursor)
	if !first.More || len(first.Events) == 0 || decodeFileCursor(t, first.Cursor).Next == "" {
		t.Fatalf("first poll: more %v, %d events", first.More, len(first.Events))
	}
	cursor = first.Cursor
	second := poll(t, h, nil, &cursor)
	if second.More || decodeFileCursor(t, second.Cursor).Next != "" {
		t.Fatalf("second poll: more %v", second.More)
	}
	seen := map[string]bool{}
	for _, e := range append(first.Events, second.Events...) {
		if e.Type != "created" {
			t.Fatalf("event %+v", e)
		}
		seen[e.ID] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct events, want %d", len(seen), n)
	}
}

func TestFileChangedResyncsAfter410(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	cursor := poll(t, h, nil, nil).Cursor
	f.AddFile(f.UserDriveID(), "/lost.txt", []byte("made while the token expired"))
	f.ExpireDeltaTokens()

	res := poll(t, h, nil, &cursor)
	if len(res.Events) != 1 || res.Events[0].Type != "resync" || !strings.HasPrefix(res.Events[0].ID, "resync:") {
		t.Fatalf("events = %+v", res.Events)
	}
	var d FileEvent
	json.Unmarshal(res.Events[0].Data, &d)
	if d.Resync == nil || d.Resync.GraphCode != "resyncChangesApplyDifferences" || !strings.Contains(d.Resync.Message, "lost") {
		t.Errorf("resync data = %+v", d)
	}
	c := decodeFileCursor(t, res.Cursor)
	if c.ResyncedAt == "" || c.Delta == decodeFileCursor(t, cursor).Delta {
		t.Errorf("cursor = %+v", c)
	}
	cursor = res.Cursor
	f.AddFile(f.UserDriveID(), "/after.txt", []byte("new"))
	if got := summary(t, poll(t, h, nil, &cursor)); got != "created:after.txt" {
		t.Errorf("after the resync: %s", got)
	}
}

func TestFileChangedRefusesForeignCursors(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	for _, c := range []string{`not json`, `{"drive_id":"d"}`, `{"drive_id":"d","delta":"https://evil.example/v1.0/drives/d/root/delta?token=x"}`} {
		_, e := h.Poll("file_changed", nil, &c)
		pdktest.WantError(t, e, abi.CodeInvalidInput, "cursor")
	}
	if n := f.CountRequests("GET", "/delta"); n != 0 {
		t.Errorf("%d delta requests with bad cursors", n)
	}
}

// A scoped poll looks up at most maxLookups unknown parents, then answers more and goes on
// from the page it stopped in, with the parents it learned kept in the cursor.
func TestFileChangedBoundsParentLookups(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	drive := f.UserDriveID()
	f.AddFolder(drive, "/In")
	params := FileChangedParams{Path: "/In"}
	cursor := poll(t, h, params, nil).Cursor
	for i := range maxLookups + 10 {
		f.AddFile(drive, fmt.Sprintf("/Out/d%02d/f.txt", i), []byte("x"))
	}
	in := f.AddFile(drive, "/In/wanted.txt", []byte("w"))

	var events []abi.Event
	polls := 0
	for more := true; more; polls++ {
		if polls == 5 {
			t.Fatal("no end after 5 polls")
		}
		before := f.CountRequests("GET", "/items/")
		res := poll(t, h, params, &cursor)
		if n := f.CountRequests("GET", "/items/") - before; n > maxLookups {
			t.Errorf("poll %d looked up %d parents", polls, n)
		}
		events = append(events, res.Events...)
		cursor, more = res.Cursor, res.More
	}
	if polls < 2 || len(events) != 1 || events[0].ID != in.ID+":"+in.ETag {
		t.Errorf("%d polls, events %+v", polls, events)
	}
}
