package main

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
	"github.com/plugboard/plugboard/plugins/internal/msgraph"
)

// file_changed polls a drive's delta feed (GET /drives/{id}/root/delta):
//
//   - The baseline asks for token=latest, which answers no items and the deltaLink of now, so
//     nothing that existed before the subscription is replayed.
//   - Later polls follow the deltaLink (and its nextLinks, up to maxDeltaPages pages, then
//     more: true with the nextLink kept) and emit one event per changed item, the last
//     occurrence when Graph lists an item twice: "deleted" for an item with the deleted facet
//     (id = item id + ":deleted"), otherwise "created" or "updated" (id = item id + ":" +
//     eTag, so an item Graph reports again unchanged is dropped by the host's de-duplication).
//   - Graph's delta does not say whether an item is new. An item is "created" when its
//     createdDateTime is after the previous round's time and "updated" otherwise. That time is
//     Graph's own clock, so the host's does not skew it: the Date header of the round's first
//     answer, or the newest createdDateTime the round saw when later (Date has whole seconds;
//     an item the round saw existed when it was read). Keeping the ids seen in kv would also
//     work, but a kv scope holds 1 MiB and a drive far more items; the time needs nothing
//     stored. Its weakness: an item that existed before the baseline, in the same second as
//     its Date, and is changed later is reported as "created".
//   - OneDrive for Business and SharePoint serve delta on the root only, and delta answers
//     carry no parentReference.path, so a folder is scoped by parent id: the folder's id, the
//     ids of the folders found inside it (kept in the cursor), and for a parent not seen yet
//     one GET of it, whose parentReference.path says whether it lies inside.
//   - A 410 Gone (Graph's resyncChangesApplyDifferences / resyncChangesUploadDifferences, an
//     expired token) re-baselines with token=latest and emits one "resync" event. The changes
//     between the last successful poll and the resync are lost: Graph no longer has them, and
//     the full enumeration its Location offers would replay every existing item as new.
const (
	maxDeltaPages = 10
	deltaPageSize = 200
	maxInFolders  = 2000
	maxOutFolders = 500
	// maxLookups bounds the parent folders one poll looks up, so that the poll stays well
	// inside the host's request budget (100 by default) with its maxDeltaPages pages; past
	// it the poll answers more and re-reads the page it stopped in.
	maxLookups = 50
)

// errLookups stops a poll that has looked up maxLookups parents.
var errLookups = errors.New("parent lookups of this poll spent")

func init() {
	pdk.PollTrigger("file_changed", pollFileChanged,
		pdk.Title("File changed"),
		pdk.Description("Fires when a file is created, updated or deleted in a drive (drive_id, site_id or the user's OneDrive), "+
			"optionally only under the folder path; folders too with include_folders. "+
			"The event type is created, updated or deleted (or resync once, when Graph expired the change token and changes in between were lost); data is the item."),
		pdk.EventType[FileEvent](),
		pdk.Interval(60*time.Second, 15*time.Second))
}

// FileChangedParams are the params of file_changed.
type FileChangedParams struct {
	DriveRef
	Path           string `json:"path,omitempty" jsonschema:"Only items under this folder, such as /Reports (default: the whole drive)" maxLength:"2048"`
	IncludeFolders bool   `json:"include_folders,omitempty" jsonschema:"Report folders as well as files" default:"false"`
}

// FileEvent is the data of a file_changed event: the item (for a deleted item, its id, parent
// and whatever Graph still says), or for a resync event the resync field.
type FileEvent struct {
	Item
	Deleted bool    `json:"deleted,omitempty"`
	Resync  *Resync `json:"resync,omitempty" jsonschema:"Set on a resync event only"`
}

// Resync says that Graph expired the change token: changes since the previous poll were lost.
type Resync struct {
	GraphCode string `json:"graph_code,omitempty"`
	Message   string `json:"message"`
}

// fileCursor is file_changed's cursor.
type fileCursor struct {
	// DriveID is the drive the baseline resolved.
	DriveID string `json:"drive_id"`
	// FolderID and FolderPath scope the events ("" for the whole drive).
	FolderID   string `json:"folder_id,omitempty"`
	FolderPath string `json:"folder_path,omitempty"`
	// Delta is the deltaLink the next round starts from.
	Delta string `json:"delta"`
	// Next is the nextLink to continue the current round from (more: true was answered).
	Next string `json:"next,omitempty"`
	// Since is when the previous round was read (Graph's Date, RFC 3339): items created at or
	// after it are "created".
	Since string `json:"since"`
	// Round is when the current unfinished round started.
	Round string `json:"round,omitempty"`
	// In and Out are folder ids known to be inside and outside FolderPath.
	In  []string `json:"in,omitempty"`
	Out []string `json:"out,omitempty"`
	// ResyncedAt is when the last 410 re-baselined the cursor.
	ResyncedAt string `json:"resynced_at,omitempty"`
}

func pollFileChanged(ctx *pdk.Context, p FileChangedParams, cursor *string) (pdk.PollResult, error) {
	c := newClient(ctx)
	if cursor == nil {
		cur, err := c.fileBaseline(p)
		if err != nil {
			return pdk.PollResult{}, err
		}
		return fileResult(nil, cur, false)
	}
	var cur fileCursor
	if err := json.Unmarshal([]byte(*cursor), &cur); err != nil || cur.DriveID == "" || cur.Delta == "" {
		return pdk.PollResult{}, pdk.Errorf(abi.CodeInvalidInput, "the cursor %q is not a file_changed cursor; resubscribe to start over", *cursor)
	}
	next := cur.Delta
	if cur.Next != "" {
		next = cur.Next
	}
	if err := c.CheckLink("the cursor's delta link", next); err != nil {
		return pdk.PollResult{}, err
	}
	since := parseTime(cur.Since)
	changes := map[string]wireItem{}
	var order []string
	lookups := 0
	for page := 0; ; page++ {
		if page == maxDeltaPages {
			cur.Next = next
			return fileResult(c.events(changes, order, since, p), cur, true)
		}
		resp, err := c.HTTP.Do(pdk.Request{URL: next})
		if err != nil {
			return pdk.PollResult{}, err
		}
		if resp.Status == 410 {
			return c.resync(p, cur, resp)
		}
		if !resp.OK() {
			return pdk.PollResult{}, msgraph.Error(resp)
		}
		if page == 0 && cur.Next == "" {
			cur.Round = graphTime(resp).Format(time.RFC3339Nano)
		}
		var pg msgraph.Page[wireItem]
		if err := resp.JSON(&pg); err != nil {
			return pdk.PollResult{}, err
		}
		for _, w := range pg.Value {
			if w.Deleted == nil && w.CreatedDateTime.After(parseTime(cur.Round)) {
				// Every item created up to the newest one this round saw existed when it was
				// read: the next round's "created" starts after it.
				cur.Round = w.CreatedDateTime.UTC().Format(time.RFC3339Nano)
			}
			in, err := c.inScope(&cur, w, &lookups)
			if errors.Is(err, errLookups) {
				// Answer what this poll found and continue from this page (the events
				// already emitted from it come again with the same ids and are dropped).
				cur.Next = next
				return fileResult(c.events(changes, order, since, p), cur, true)
			}
			if err != nil {
				return pdk.PollResult{}, err
			}
			if !in {
				continue
			}
			if _, seen := changes[w.ID]; !seen {
				order = append(order, w.ID)
			}
			changes[w.ID] = w // the last occurrence wins
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
			events := c.events(changes, order, since, p)
			cur.Delta, cur.Next, cur.Since, cur.Round = pg.DeltaLink, "", cur.Round, ""
			if cur.Since == "" {
				cur.Since = time.Now().UTC().Format(time.RFC3339)
			}
			return fileResult(events, cur, false)
		default:
			return pdk.PollResult{}, pdk.Errorf(abi.CodeUpstreamError, "Graph's delta answer has neither @odata.nextLink nor @odata.deltaLink")
		}
	}
}

// fileBaseline resolves the drive and the folder and takes the deltaLink of now.
func (c *client) fileBaseline(p FileChangedParams) (fileCursor, error) {
	d, err := c.driveURL(p.DriveRef)
	if err != nil {
		return fileCursor{}, err
	}
	var drive struct {
		ID string `json:"id"`
	}
	if _, err := c.HTTP.GetJSON(d, &drive); err != nil {
		return fileCursor{}, err
	}
	if drive.ID == "" {
		return fileCursor{}, pdk.Errorf(abi.CodeUpstreamError, "Graph answered a drive without an id")
	}
	cur := fileCursor{DriveID: drive.ID}
	segs, err := splitPath("path", p.Path)
	if err != nil {
		return fileCursor{}, err
	}
	if len(segs) > 0 {
		w, err := c.getWireItem(ItemRef{DriveRef: DriveRef{DriveID: drive.ID}, Path: p.Path})
		if err != nil {
			return fileCursor{}, err
		}
		if w.Folder == nil {
			return fileCursor{}, pdk.Errorf(abi.CodeInvalidInput, "path %q is a file; give the folder to watch", p.Path)
		}
		cur.FolderID, cur.FolderPath = w.ID, "/"+strings.Join(segs, "/")
		cur.In = []string{w.ID}
	}
	return c.latest(cur)
}

// latest sets the cursor's deltaLink to Graph's newest (token=latest).
func (c *client) latest(cur fileCursor) (fileCursor, error) {
	u := c.URL("/drives/"+escapeSegment(cur.DriveID)+"/root/delta") + "?" + url.Values{"token": {"latest"}, "$top": {strconv.Itoa(deltaPageSize)}}.Encode()
	resp, err := c.HTTP.Do(pdk.Request{URL: u})
	if err != nil {
		return fileCursor{}, err
	}
	if !resp.OK() {
		return fileCursor{}, msgraph.Error(resp)
	}
	var pg msgraph.Page[wireItem]
	if err := resp.JSON(&pg); err != nil {
		return fileCursor{}, err
	}
	if pg.DeltaLink == "" {
		return fileCursor{}, pdk.Errorf(abi.CodeUpstreamError, "Graph answered delta?token=latest without a deltaLink")
	}
	if err := c.CheckLink("Graph's deltaLink", pg.DeltaLink); err != nil {
		return fileCursor{}, err
	}
	cur.Delta, cur.Next, cur.Round = pg.DeltaLink, "", ""
	cur.Since = graphTime(resp).Format(time.RFC3339Nano)
	return cur, nil
}

// resync re-baselines after a 410 and emits the resync event.
func (c *client) resync(p FileChangedParams, cur fileCursor, gone *pdk.Response) (pdk.PollResult, error) {
	var body msgraph.ErrorBody
	_ = json.Unmarshal(gone.Body, &body)
	fresh, err := c.latest(cur)
	if err != nil {
		return pdk.PollResult{}, err
	}
	fresh.ResyncedAt = fresh.Since
	msg := "Graph expired the change token (410 Gone); the changes between the previous poll and " + fresh.Since +
		" are lost and watching resumed from now"
	ev := pdk.Event{ID: "resync:" + fresh.Since, Type: "resync", Time: parseTime(fresh.Since),
		Data: FileEvent{Resync: &Resync{GraphCode: body.Error.Code, Message: msg}}}
	return fileResult([]pdk.Event{ev}, fresh, false)
}

// inScope reports whether a changed item lies under the watched folder, learning folder ids
// on the way.
func (c *client) inScope(cur *fileCursor, w wireItem, lookups *int) (bool, error) {
	if w.Root != nil {
		return false, nil
	}
	if cur.FolderID == "" {
		return true, nil
	}
	if w.ID == cur.FolderID {
		return false, nil // the watched folder itself
	}
	parent := ""
	if w.ParentReference != nil {
		parent = w.ParentReference.ID
	}
	in, known := false, false
	switch {
	case parent == "":
		known = true
	case slices.Contains(cur.In, parent):
		in, known = true, true
	case slices.Contains(cur.Out, parent):
		known = true
	case w.ParentReference.Path != "":
		in, known = under(parentPath(w.ParentReference.Path), cur.FolderPath), true
	}
	if !known {
		if *lookups >= maxLookups {
			return false, errLookups
		}
		*lookups++
		var pw wireItem
		u := c.URL("/drives/" + escapeSegment(cur.DriveID) + "/items/" + escapeSegment(parent) + "?$select=id,name,parentReference,root")
		resp, err := c.HTTP.GetJSON(u, &pw)
		switch {
		case err != nil && resp != nil && resp.Status == 404:
			// The parent is gone too: where it was cannot be told any more.
			in, err = false, nil
		case err != nil:
			return false, err
		case pw.Root != nil:
			in = false
		case pw.ParentReference != nil:
			pp := parentPath(pw.ParentReference.Path)
			in = under(strings.TrimSuffix(pp, "/")+"/"+pw.Name, cur.FolderPath)
		}
		if err == nil {
			remember(cur, parent, in)
		}
	}
	if in && w.Folder != nil && w.Deleted == nil {
		remember(cur, w.ID, true)
	}
	return in, nil
}

// under reports whether path p is folder or lies inside it (case-insensitively, as names are).
func under(p, folder string) bool {
	p, folder = strings.ToLower(p), strings.ToLower(folder)
	return p == folder || strings.HasPrefix(p, folder+"/")
}

func remember(cur *fileCursor, id string, in bool) {
	if in {
		if !slices.Contains(cur.In, id) && len(cur.In) < maxInFolders {
			cur.In = append(cur.In, id)
		}
		return
	}
	if !slices.Contains(cur.Out, id) {
		if len(cur.Out) >= maxOutFolders {
			cur.Out = cur.Out[1:]
		}
		cur.Out = append(cur.Out, id)
	}
}

// events turns the round's changes into events.
func (c *client) events(changes map[string]wireItem, order []string, since time.Time, p FileChangedParams) []pdk.Event {
	var out []pdk.Event
	for _, id := range order {
		w := changes[id]
		isFolder := w.Folder != nil
		if isFolder && !p.IncludeFolders {
			continue
		}
		it := w.item()
		if w.Deleted != nil {
			out = append(out, pdk.Event{ID: w.ID + ":deleted", Type: "deleted", Data: FileEvent{Item: it, Deleted: true}})
			continue
		}
		typ := "updated"
		if w.CreatedDateTime.After(since) {
			typ = "created"
		}
		rev := w.ETag
		if rev == "" {
			rev = w.CTag
		}
		if rev == "" {
			rev = w.LastModifiedDateTime.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, pdk.Event{ID: w.ID + ":" + rev, Type: typ, Time: w.LastModifiedDateTime, Data: FileEvent{Item: it}})
	}
	return out
}

func fileResult(events []pdk.Event, cur fileCursor, more bool) (pdk.PollResult, error) {
	b, err := json.Marshal(cur)
	if err != nil {
		return pdk.PollResult{}, pdk.Errorf(abi.CodeInternal, "encoding the cursor: %v", err)
	}
	return pdk.PollResult{Events: events, Cursor: string(b), More: more}, nil
}

// graphTime is the time of Graph's answer (its Date header), or now.
func graphTime(resp *pdk.Response) time.Time {
	if t, err := time.Parse(time.RFC1123, resp.Header("Date")); err == nil {
		return t.UTC()
	}
	return time.Now().UTC().Truncate(time.Second)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
