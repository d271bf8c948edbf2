package graphfake

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The drive endpoints: sites, drives, driveItems addressed by id and by path, children paging,
// simple upload, upload sessions on the download host, content downloads by redirect, and delta.
//
// What the fake keeps from Graph's documentation (driveItem, driveItem: delta, createUploadSession,
// driveitem-put-content, driveitem-get-content):
//   - GET .../content answers 302 with Location on the download host, which serves the bytes to
//     a request without an Authorization header.
//   - PUT .../content (simple upload) is refused over 250 MB (413), the limit Graph's v1.0
//     reference states; OneDrive's older reference states 4 MB, which clients keep to.
//   - An upload session's uploadUrl is on the download host; chunks are PUT there with
//     Content-Range, in order, each a multiple of 320 KiB except the last; a range that does
//     not start where the received bytes end answers 416; an intermediate chunk answers 202
//     with nextExpectedRanges, the last one 201 (new file) or 200 (replaced) with the item;
//     DELETE on the uploadUrl cancels the session (204).
//   - delta on the root: token=latest answers no items and a deltaLink; without a token the
//     whole drive is enumerated; a deltaLink's token answers the items changed since (their
//     current state; deleted ones with the deleted facet, without name); parentReference has
//     no path in delta answers and cTag is omitted (OneDrive for Business); a token from before
//     [Fake.ExpireDeltaTokens] answers 410 Gone with resyncChangesApplyDifferences and a
//     Location that starts a fresh enumeration.

// driveSimpleUploadLimit is the largest body PUT .../content accepts (a variable so the tests can
// lower it).
var driveSimpleUploadLimit int64 = 250 << 20

// driveUploadFragment is the unit every non-final upload session chunk is a multiple of: 320 KiB.
const driveUploadFragment = 320 << 10

// Site is a SharePoint site of the fake.
type Site struct {
	ID, Name, DisplayName, WebURL string
	// DriveID is the site's default document library.
	DriveID string
}

// Item is a driveItem of the fake, as the tests see it.
type Item struct {
	ID, Name string
	DriveID  string
	// ParentID is the parent folder's id ("" for a drive's root).
	ParentID string
	// Path is the item's path from the drive's root, "/Reports/q3.xlsx" ("/" for the root).
	Path       string
	Folder     bool
	Size       int64
	ETag, CTag string
	Content    []byte
	Created    time.Time
	Modified   time.Time
}

type driveStore struct {
	sites     []*Site
	drives    map[string]*fdrive
	userDrive string
	sessions  map[string]*driveUploadSession
	downloads map[string]driveDownloadRef
	epoch     int // delta tokens of an older epoch are expired
}

type fdrive struct {
	id, name, driveType, webURL string
	root                        *fitem
	items                       map[string]*fitem
	created                     time.Time
}

type fitem struct {
	id, name   string
	parent     *fitem
	folder     bool
	content    []byte
	mime       string
	created    time.Time
	modified   time.Time
	version    int   // eTag revision: metadata or content changed
	cversion   int   // cTag revision: content changed
	changed    int64 // the change sequence number of its last change (delta)
	deleted    bool
	children   map[string]*fitem // by lower-case name
	childOrder []*fitem
}

type driveUploadSession struct {
	id       string
	drive    *fdrive
	parent   *fitem
	name     string
	conflict string
	target   *fitem // an existing file the session replaces (addressed by id)
	total    int64
	data     []byte
	expires  time.Time
}

type driveDownloadRef struct {
	drive *fdrive
	item  *fitem
}

func (f *Fake) initDrives() {
	f.drives = &driveStore{drives: map[string]*fdrive{}, sessions: map[string]*driveUploadSession{}, downloads: map[string]driveDownloadRef{}}
	d := f.newDrive("OneDrive", "business", "https://contoso-my.sharepoint.com/personal/adele_vance_contoso_example/Documents")
	f.drives.userDrive = d.id

	f.handle("GET", `/sites`, f.searchSites)
	f.handle("GET", `/sites/([^/]+)`, f.getSite)
	f.handle("GET", `/sites/([^/]+)/drives`, f.listSiteDrives)
	f.handle("GET", `/me/drives`, f.listUserDrives)
	for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		f.handle(method, `(/drives/[^/]+|/me/drive|/sites/[^/]+/drive)(/.*)?`, f.serveDrive)
	}
	f.handleDownload("GET", `/download/([^/]+)`, f.serveDownloadContent)
	f.handleDownload("PUT", `/upload/([^/]+)`, f.driveUploadChunk)
	f.handleDownload("GET", `/upload/([^/]+)`, f.driveUploadStatus)
	f.handleDownload("DELETE", `/upload/([^/]+)`, f.cancelDriveUpload)
}

// newDrive creates a drive (with f.mu not held).
func (f *Fake) newDrive(name, driveType, webURL string) *fdrive {
	id := "b!" + f.nextID("drv")
	now := time.Now().UTC()
	d := &fdrive{id: id, name: name, driveType: driveType, webURL: webURL, items: map[string]*fitem{}, created: now}
	d.root = &fitem{id: f.nextID("01ROOT"), name: "root", folder: true, created: now, modified: now, version: 1, cversion: 1, children: map[string]*fitem{}}
	d.items[d.root.id] = d.root
	f.mu.Lock()
	f.drives.drives[id] = d
	f.mu.Unlock()
	return d
}

// UserDriveID is the id of the user's OneDrive ({user}/drive).
func (f *Fake) UserDriveID() string { return f.drives.userDrive }

// AddSite adds a SharePoint site named name with its default document library ("Documents").
func (f *Fake) AddSite(name string) Site {
	host := "contoso.sharepoint.com"
	webURL := "https://" + host + "/sites/" + url.PathEscape(name)
	d := f.newDrive("Documents", "documentLibrary", webURL+"/Shared%20Documents")
	s := &Site{ID: host + "," + newRequestID() + "," + newRequestID(), Name: name, DisplayName: name, WebURL: webURL, DriveID: d.id}
	f.mu.Lock()
	f.drives.sites = append(f.drives.sites, s)
	f.mu.Unlock()
	return *s
}

// AddFile creates (or replaces the content of) the file at path in the drive, creating the
// missing folders, and returns it.
func (f *Fake) AddFile(driveID, path string, content []byte) Item {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.drives.drives[driveID]
	if d == nil {
		f.t.Fatalf("graphfake: no drive %q", driveID)
	}
	segs := driveSplitPath(path)
	if len(segs) == 0 {
		f.t.Fatalf("graphfake: AddFile needs a file path, not %q", path)
	}
	parent := f.driveMkdirs(d, segs[:len(segs)-1])
	it := f.drivePutFile(d, parent, segs[len(segs)-1], content, "replace")
	return f.exportItem(d, it)
}

// UpdateFile replaces the content of the file at path (a new eTag and cTag).
func (f *Fake) UpdateFile(driveID, path string, content []byte) Item {
	f.t.Helper()
	if _, ok := f.Item(driveID, path); !ok {
		f.t.Fatalf("graphfake: UpdateFile: no item %q in drive %q", path, driveID)
	}
	return f.AddFile(driveID, path, content)
}

// AddFolder creates the folder at path (and its missing parents) and returns it.
func (f *Fake) AddFolder(driveID, path string) Item {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.drives.drives[driveID]
	if d == nil {
		f.t.Fatalf("graphfake: no drive %q", driveID)
	}
	return f.exportItem(d, f.driveMkdirs(d, driveSplitPath(path)))
}

// DeleteItem deletes the item at path (a folder with what it holds), as DELETE does.
func (f *Fake) DeleteItem(driveID, path string) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.drives.drives[driveID]
	var it *fitem
	if d != nil {
		it = driveWalk(d.root, driveSplitPath(path))
	}
	if it == nil || it == d.root {
		f.t.Fatalf("graphfake: DeleteItem: no item %q in drive %q", path, driveID)
	}
	f.removeItem(it)
}

// Item returns the item at path in the drive.
func (f *Fake) Item(driveID, path string) (Item, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.drives.drives[driveID]
	if d == nil {
		return Item{}, false
	}
	it := driveWalk(d.root, driveSplitPath(path))
	if it == nil {
		return Item{}, false
	}
	return f.exportItem(d, it), true
}

// ExpireDeltaTokens makes every delta token issued so far expired: using one answers 410 Gone,
// as Graph does for a token it can no longer serve.
func (f *Fake) ExpireDeltaTokens() {
	f.mu.Lock()
	f.drives.epoch++
	f.mu.Unlock()
}

// UploadSessions returns the number of upload sessions still open (neither completed nor
// cancelled).
func (f *Fake) UploadSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.drives.sessions)
}

func (f *Fake) exportItem(d *fdrive, it *fitem) Item {
	out := Item{ID: it.id, Name: it.name, DriveID: d.id, Path: driveItemPath(it), Folder: it.folder, Size: driveSize(it),
		ETag: driveETag(it), CTag: driveCTag(it), Content: append([]byte(nil), it.content...), Created: it.created, Modified: it.modified}
	if it.parent != nil {
		out.ParentID = it.parent.id
	}
	return out
}

// --- the tree (f.mu held) ---

func driveSplitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func driveWalk(from *fitem, segs []string) *fitem {
	it := from
	for _, s := range segs {
		if it == nil || !it.folder {
			return nil
		}
		it = it.children[strings.ToLower(s)]
	}
	return it
}

func driveItemPath(it *fitem) string {
	if it.parent == nil {
		return "/"
	}
	var segs []string
	for x := it; x.parent != nil; x = x.parent {
		segs = append([]string{x.name}, segs...)
	}
	return "/" + strings.Join(segs, "/")
}

func driveSize(it *fitem) int64 {
	if !it.folder {
		return int64(len(it.content))
	}
	var n int64
	for _, c := range it.childOrder {
		n += driveSize(c)
	}
	return n
}

func driveETag(it *fitem) string {
	return fmt.Sprintf("\"{%s},%d\"", strings.ToUpper(it.id), it.version)
}
func driveCTag(it *fitem) string {
	return fmt.Sprintf("\"c:{%s},%d\"", strings.ToUpper(it.id), it.cversion)
}

// touchItem records a change of it (and of its folders, which delta reports with their children).
func (f *Fake) touchItem(it *fitem) {
	f.seq++
	for x := it; x != nil; x = x.parent {
		x.changed = f.seq
	}
}

func (f *Fake) newDriveItem(d *fdrive, parent *fitem, name string, folder bool) *fitem {
	f.seq++
	now := time.Now().UTC()
	it := &fitem{id: fmt.Sprintf("01F%06dQ%s", f.seq, strings.ToUpper(driveRandHex(6))), name: name, parent: parent, folder: folder,
		created: now, modified: now, version: 1, cversion: 1}
	if folder {
		it.children = map[string]*fitem{}
	}
	parent.children[strings.ToLower(name)] = it
	parent.childOrder = append(parent.childOrder, it)
	d.items[it.id] = it
	f.touchItem(it)
	return it
}

func (f *Fake) driveMkdirs(d *fdrive, segs []string) *fitem {
	it := d.root
	for _, s := range segs {
		next := it.children[strings.ToLower(s)]
		if next == nil {
			next = f.newDriveItem(d, it, s, true)
		}
		it = next
	}
	return it
}

// drivePutFile writes content to parent/name under the conflict behaviour; nil means it conflicts.
func (f *Fake) drivePutFile(d *fdrive, parent *fitem, name string, content []byte, conflict string) *fitem {
	existing := parent.children[strings.ToLower(name)]
	switch {
	case existing != nil && conflict == "fail":
		return nil
	case existing != nil && conflict == "rename":
		name = driveFreeName(parent, name)
		existing = nil
	case existing != nil && existing.folder:
		f.removeItem(existing)
		existing = nil
	}
	it := existing
	if it == nil {
		it = f.newDriveItem(d, parent, name, false)
	} else {
		it.version++
		it.cversion++
		it.modified = time.Now().UTC()
		f.touchItem(it)
	}
	it.content = append([]byte(nil), content...)
	it.mime = driveMimeType(name)
	return it
}

func driveFreeName(parent *fitem, name string) string {
	ext := ""
	if i := strings.LastIndex(name, "."); i > 0 {
		name, ext = name[:i], name[i:]
	}
	for n := 1; ; n++ {
		c := fmt.Sprintf("%s %d%s", name, n, ext)
		if parent.children[strings.ToLower(c)] == nil {
			return c
		}
	}
}

func (f *Fake) removeItem(it *fitem) {
	if it.parent != nil {
		delete(it.parent.children, strings.ToLower(it.name))
		for i, c := range it.parent.childOrder {
			if c == it {
				it.parent.childOrder = append(it.parent.childOrder[:i:i], it.parent.childOrder[i+1:]...)
				break
			}
		}
	}
	var mark func(x *fitem)
	mark = func(x *fitem) {
		x.deleted = true
		f.touchItem(x)
		for _, c := range x.childOrder {
			mark(c)
		}
	}
	mark(it)
	// The tombstone keeps its parent pointer so delta can name the parent.
}

func driveMimeType(name string) string {
	switch strings.ToLower(name[strings.LastIndex(name, ".")+1:]) {
	case "txt":
		return "text/plain"
	case "json":
		return "application/json"
	case "csv":
		return "text/csv"
	case "pdf":
		return "application/pdf"
	case "xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case "docx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case "png":
		return "image/png"
	}
	return "application/octet-stream"
}

func driveRandHex(n int) string {
	id := newRequestID()
	return strings.ReplaceAll(id, "-", "")[:n*2]
}

// --- JSON shapes ---

func (f *Fake) siteJSON(s *Site) map[string]any {
	return map[string]any{"id": s.ID, "name": s.Name, "displayName": s.DisplayName, "webUrl": s.WebURL,
		"createdDateTime": "2026-01-05T09:00:00Z", "siteCollection": map[string]any{"hostname": "contoso.sharepoint.com"}}
}

func (f *Fake) driveJSON(d *fdrive) map[string]any {
	return map[string]any{"id": d.id, "name": d.name, "driveType": d.driveType, "webUrl": d.webURL,
		"createdDateTime": d.created.Format(time.RFC3339),
		"owner":           map[string]any{"user": map[string]any{"displayName": "Adele Vance", "id": UserID}},
		"quota":           map[string]any{"total": int64(1) << 40, "used": driveSize(d.root), "state": "normal"}}
}

// driveItemJSON is the driveItem resource. inDelta drops what delta answers lack (parentReference's
// path, cTag) and renders a deleted item as a tombstone.
func (f *Fake) driveItemJSON(d *fdrive, it *fitem, inDelta bool) map[string]any {
	m := map[string]any{"id": it.id}
	parent := map[string]any{"driveId": d.id, "driveType": d.driveType}
	if it.parent != nil {
		parent["id"] = it.parent.id
		if !inDelta {
			pp := driveItemPath(it.parent)
			if pp == "/" {
				pp = ""
			}
			parent["path"] = "/drives/" + d.id + "/root:" + pp
		}
	}
	m["parentReference"] = parent
	if it.deleted {
		m["deleted"] = map[string]any{"state": "deleted"}
		if it.folder {
			m["folder"] = map[string]any{"childCount": 0}
		} else {
			m["file"] = map[string]any{}
		}
		return m
	}
	m["name"] = it.name
	m["size"] = driveSize(it)
	m["eTag"] = driveETag(it)
	if !inDelta {
		m["cTag"] = driveCTag(it)
	}
	m["createdDateTime"] = it.created.Format(time.RFC3339Nano)
	m["lastModifiedDateTime"] = it.modified.Format(time.RFC3339Nano)
	m["webUrl"] = d.webURL + strings.ReplaceAll(url.PathEscape(driveItemPath(it)), "%2F", "/")
	by := map[string]any{"user": map[string]any{"displayName": "Adele Vance", "email": UserPrincipalName, "id": UserID}}
	m["createdBy"], m["lastModifiedBy"] = by, by
	switch {
	case it.parent == nil:
		m["root"] = map[string]any{}
		m["folder"] = map[string]any{"childCount": len(it.childOrder)}
	case it.folder:
		m["folder"] = map[string]any{"childCount": len(it.childOrder)}
	default:
		m["file"] = map[string]any{"mimeType": it.mime, "hashes": map[string]any{"quickXorHash": base64.StdEncoding.EncodeToString([]byte(driveCTag(it)))[:20]}}
		if !inDelta {
			m["@microsoft.graph.downloadUrl"] = f.driveDownloadURL(d, it)
		}
	}
	return m
}

// driveDownloadURL mints a pre-authenticated URL of it on the download host (f.mu held).
func (f *Fake) driveDownloadURL(d *fdrive, it *fitem) string {
	tok := driveRandHex(16)
	f.drives.downloads[tok] = driveDownloadRef{drive: d, item: it}
	return f.DownloadURL + "/download/" + tok + "?tempauth=" + driveRandHex(8)
}

// --- handlers ---

func (f *Fake) searchSites(w http.ResponseWriter, r *http.Request, _ []string) {
	q := strings.ToLower(strings.Trim(r.URL.Query().Get("search"), `"`))
	if !r.URL.Query().Has("search") {
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The $search or search query option is required to list sites.")
		return
	}
	f.mu.Lock()
	var list []map[string]any
	for _, s := range f.drives.sites {
		if q == "*" || q == "" || strings.Contains(strings.ToLower(s.Name), q) || strings.Contains(strings.ToLower(s.DisplayName), q) {
			list = append(list, f.siteJSON(s))
		}
	}
	f.mu.Unlock()
	f.writeDrivePage(w, r, "/sites", list)
}

// writeDrivePage answers one page of list with $top and $skiptoken, linking the next page.
func (f *Fake) writeDrivePage(w http.ResponseWriter, r *http.Request, path string, list []map[string]any) {
	q := r.URL.Query()
	top := 200
	if s := q.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			WriteError(w, http.StatusBadRequest, "invalidRequest", "Invalid $top value: "+s)
			return
		}
		top = min(n, 999)
	}
	skip := 0
	if s := q.Get("$skiptoken"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "skip:"))
		if err != nil || err2 != nil || n < 0 {
			WriteError(w, http.StatusBadRequest, "invalidRequest", "Invalid $skiptoken.")
			return
		}
		skip = n
	}
	end := min(skip+top, len(list))
	page := []map[string]any{}
	if skip < len(list) {
		page = list[skip:end]
	}
	body := map[string]any{"@odata.context": f.baseURL("/$metadata#Collection"), "value": page}
	if end < len(list) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("$top", strconv.Itoa(top))
		nq.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("skip:"+strconv.Itoa(end))))
		body["@odata.nextLink"] = f.baseURL(path) + "?" + nq.Encode()
	}
	WriteJSON(w, http.StatusOK, body)
}

func (f *Fake) findSite(id string) *Site {
	for _, s := range f.drives.sites {
		if s.ID == id || strings.EqualFold(s.Name, id) {
			return s
		}
	}
	return nil
}

func driveNotFound(w http.ResponseWriter) {
	WriteError(w, http.StatusNotFound, "itemNotFound", "The resource could not be found.")
}

func (f *Fake) getSite(w http.ResponseWriter, r *http.Request, m []string) {
	f.mu.Lock()
	s := f.findSite(m[1])
	var body map[string]any
	if s != nil {
		body = f.siteJSON(s)
	}
	f.mu.Unlock()
	if s == nil {
		driveNotFound(w)
		return
	}
	WriteJSON(w, http.StatusOK, body)
}

func (f *Fake) listSiteDrives(w http.ResponseWriter, r *http.Request, m []string) {
	f.mu.Lock()
	s := f.findSite(m[1])
	var list []map[string]any
	if s != nil {
		list = append(list, f.driveJSON(f.drives.drives[s.DriveID]))
	}
	f.mu.Unlock()
	if s == nil {
		driveNotFound(w)
		return
	}
	f.writeDrivePage(w, r, r.URL.Path[len("/v1.0"):], list)
}

func (f *Fake) listUserDrives(w http.ResponseWriter, r *http.Request, _ []string) {
	f.mu.Lock()
	list := []map[string]any{f.driveJSON(f.drives.drives[f.drives.userDrive])}
	f.mu.Unlock()
	f.writeDrivePage(w, r, "/me/drives", list)
}

// driveItemAddr splits what follows the drive: the base item ("root", or an id), the path
// relative to it (when addressed with ":/path:"), and the operation suffix ("", "children",
// "content", "delta", "createUploadSession").
var driveItemAddr = regexp.MustCompile(`^/(root|items/([^/:]+))(.*)$`)

type driveAddress struct {
	base   string // "root" or an item id
	rel    []string
	hasRel bool
	op     string
}

func parseDriveAddress(rest string) (driveAddress, bool) {
	m := driveItemAddr.FindStringSubmatch(rest)
	if m == nil {
		return driveAddress{}, false
	}
	a := driveAddress{base: "root"}
	if m[2] != "" {
		a.base = m[2]
	}
	tail := m[3]
	if strings.HasPrefix(tail, ":") {
		a.hasRel = true
		body := tail[1:]
		if j := strings.Index(body, ":"); j >= 0 {
			a.rel, tail = driveSplitPath(body[:j]), body[j+1:]
		} else {
			a.rel, tail = driveSplitPath(body), ""
		}
		a.hasRel = len(a.rel) > 0
	}
	switch tail {
	case "", "/":
	case "/children", "/content", "/delta", "/createUploadSession":
		a.op = tail[1:]
	default:
		return driveAddress{}, false
	}
	return a, true
}

func (f *Fake) driveFor(prefix string) *fdrive {
	switch {
	case prefix == "/me/drive":
		return f.drives.drives[f.drives.userDrive]
	case strings.HasPrefix(prefix, "/drives/"):
		return f.drives.drives[strings.TrimPrefix(prefix, "/drives/")]
	default:
		if s := f.findSite(strings.TrimSuffix(strings.TrimPrefix(prefix, "/sites/"), "/drive")); s != nil {
			return f.drives.drives[s.DriveID]
		}
	}
	return nil
}

func (f *Fake) serveDrive(w http.ResponseWriter, r *http.Request, m []string) {
	f.mu.Lock()
	d := f.driveFor(m[1])
	f.mu.Unlock()
	if d == nil {
		driveNotFound(w)
		return
	}
	prefix, rest := m[1], m[2]
	if rest == "" || rest == "/" {
		if r.Method != "GET" {
			WriteError(w, http.StatusMethodNotAllowed, "invalidRequest", "The HTTP method '"+r.Method+"' is not allowed on a drive.")
			return
		}
		f.mu.Lock()
		body := f.driveJSON(d)
		f.mu.Unlock()
		WriteJSON(w, http.StatusOK, body)
		return
	}
	a, ok := parseDriveAddress(rest)
	if !ok {
		WriteError(w, http.StatusBadRequest, "invalidRequest", "Resource not found for the segment '"+lastSegment(rest)+"'.")
		return
	}
	switch {
	case a.op == "delta" && r.Method == "GET":
		f.driveDelta(w, r, d, prefix, a)
	case a.op == "children" && r.Method == "GET":
		f.listDriveChildren(w, r, d, prefix+rest, a)
	case a.op == "children" && r.Method == "POST":
		f.createDriveChild(w, r, d, a)
	case a.op == "content" && r.Method == "GET":
		f.getDriveContent(w, d, a)
	case a.op == "content" && r.Method == "PUT":
		f.putDriveContent(w, r, d, a)
	case a.op == "createUploadSession" && r.Method == "POST":
		f.createDriveUploadSession(w, r, d, a)
	case a.op == "" && r.Method == "GET":
		f.getDriveItem(w, d, a)
	case a.op == "" && r.Method == "PATCH":
		f.patchDriveItem(w, r, d, a)
	case a.op == "" && r.Method == "DELETE":
		f.deleteDriveItem(w, d, a)
	default:
		WriteError(w, http.StatusMethodNotAllowed, "invalidRequest", "The HTTP method '"+r.Method+"' is not allowed on this resource.")
	}
}

// resolveItem finds the addressed item (f.mu held); nil when it does not exist.
func (f *Fake) resolveItem(d *fdrive, a driveAddress) *fitem {
	base := d.root
	if a.base != "root" {
		base = d.items[a.base]
		if base == nil || base.deleted {
			return nil
		}
	}
	return driveWalk(base, a.rel)
}

func (f *Fake) getDriveItem(w http.ResponseWriter, d *fdrive, a driveAddress) {
	f.mu.Lock()
	it := f.resolveItem(d, a)
	var body map[string]any
	if it != nil {
		body = f.driveItemJSON(d, it, false)
	}
	f.mu.Unlock()
	if it == nil {
		driveNotFound(w)
		return
	}
	WriteJSON(w, http.StatusOK, body)
}

func (f *Fake) listDriveChildren(w http.ResponseWriter, r *http.Request, d *fdrive, path string, a driveAddress) {
	f.mu.Lock()
	it := f.resolveItem(d, a)
	var list []map[string]any
	isFolder := it != nil && it.folder
	if isFolder {
		kids := append([]*fitem(nil), it.childOrder...)
		sort.Slice(kids, func(i, j int) bool { return strings.ToLower(kids[i].name) < strings.ToLower(kids[j].name) })
		for _, c := range kids {
			list = append(list, f.driveItemJSON(d, c, false))
		}
	}
	f.mu.Unlock()
	switch {
	case it == nil:
		driveNotFound(w)
	case !isFolder:
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The item is not a folder, so it has no children.")
	default:
		f.writeDrivePage(w, r, path, list)
	}
}

func driveConflict(s, def string) (string, bool) {
	switch s {
	case "":
		return def, true
	case "fail", "replace", "rename":
		return s, true
	}
	return "", false
}

func (f *Fake) createDriveChild(w http.ResponseWriter, r *http.Request, d *fdrive, a driveAddress) {
	var body struct {
		Name     string         `json:"name"`
		Folder   map[string]any `json:"folder"`
		File     map[string]any `json:"file"`
		Conflict string         `json:"@microsoft.graph.conflictBehavior"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	conflict, ok := driveConflict(body.Conflict, "fail")
	switch {
	case !ok:
		WriteError(w, http.StatusBadRequest, "invalidRequest", "Invalid value for @microsoft.graph.conflictBehavior: "+body.Conflict)
		return
	case body.Name == "" || strings.ContainsAny(body.Name, `"*:<>?/\|`):
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The provided name is not valid.")
		return
	case body.Folder == nil:
		WriteError(w, http.StatusBadRequest, "invalidRequest", "A folder or file facet is required; this fake creates folders only.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	parent := f.resolveItem(d, a)
	if parent == nil || !parent.folder {
		driveNotFound(w)
		return
	}
	name := body.Name
	if existing := parent.children[strings.ToLower(name)]; existing != nil {
		switch conflict {
		case "fail":
			WriteError(w, http.StatusConflict, "nameAlreadyExists", "The specified item name already exists.")
			return
		case "rename":
			name = driveFreeName(parent, name)
		case "replace":
			f.removeItem(existing)
		}
	}
	it := f.newDriveItem(d, parent, name, true)
	WriteJSON(w, http.StatusCreated, f.driveItemJSON(d, it, false))
}

func (f *Fake) patchDriveItem(w http.ResponseWriter, r *http.Request, d *fdrive, a driveAddress) {
	var body struct {
		Name string `json:"name"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	it := f.resolveItem(d, a)
	switch {
	case it == nil:
		driveNotFound(w)
		return
	case it.parent == nil:
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The root cannot be renamed.")
		return
	case body.Name == "":
		WriteJSON(w, http.StatusOK, f.driveItemJSON(d, it, false))
		return
	case strings.ContainsAny(body.Name, `"*:<>?/\|`):
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The provided name is not valid.")
		return
	}
	if other := it.parent.children[strings.ToLower(body.Name)]; other != nil && other != it {
		WriteError(w, http.StatusConflict, "nameAlreadyExists", "The specified item name already exists.")
		return
	}
	delete(it.parent.children, strings.ToLower(it.name))
	it.name = body.Name
	it.parent.children[strings.ToLower(it.name)] = it
	it.version++
	it.modified = time.Now().UTC()
	f.touchItem(it)
	WriteJSON(w, http.StatusOK, f.driveItemJSON(d, it, false))
}

func (f *Fake) deleteDriveItem(w http.ResponseWriter, d *fdrive, a driveAddress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it := f.resolveItem(d, a)
	switch {
	case it == nil:
		driveNotFound(w)
	case it.parent == nil:
		WriteError(w, http.StatusForbidden, "accessDenied", "The root of a drive cannot be deleted.")
	default:
		f.removeItem(it)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *Fake) getDriveContent(w http.ResponseWriter, d *fdrive, a driveAddress) {
	f.mu.Lock()
	it := f.resolveItem(d, a)
	loc := ""
	if it != nil && !it.folder {
		loc = f.driveDownloadURL(d, it)
	}
	f.mu.Unlock()
	switch {
	case it == nil:
		driveNotFound(w)
	case loc == "":
		WriteError(w, http.StatusBadRequest, "invalidRequest", "A folder has no content to download.")
	default:
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	}
}

func (f *Fake) serveDownloadContent(w http.ResponseWriter, r *http.Request, m []string) {
	f.mu.Lock()
	ref, ok := f.drives.downloads[m[1]]
	var body []byte
	var mime string
	if ok && !ref.item.deleted {
		body, mime = append([]byte(nil), ref.item.content...), ref.item.mime
	}
	f.mu.Unlock()
	if !ok || ref.item.deleted {
		driveNotFound(w)
		return
	}
	w.Header().Set("Content-Type", mime)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (f *Fake) putDriveContent(w http.ResponseWriter, r *http.Request, d *fdrive, a driveAddress) {
	conflict, ok := driveConflict(r.URL.Query().Get("@microsoft.graph.conflictBehavior"), "replace")
	if !ok {
		WriteError(w, http.StatusBadRequest, "invalidRequest", "Invalid value for @microsoft.graph.conflictBehavior.")
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, driveSimpleUploadLimit+1))
	if err != nil {
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The request body could not be read.")
		return
	}
	if int64(len(data)) > driveSimpleUploadLimit {
		WriteError(w, http.StatusRequestEntityTooLarge, "requestTooLarge", "The request is too large for a simple upload; use an upload session.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var it *fitem
	created := false
	if !a.hasRel {
		target := f.resolveItem(d, a)
		if target == nil {
			driveNotFound(w)
			return
		}
		if target.folder {
			WriteError(w, http.StatusBadRequest, "invalidRequest", "Content cannot be written to a folder.")
			return
		}
		it = f.drivePutFile(d, target.parent, target.name, data, "replace")
	} else {
		parent, name := f.drivePathParent(d, a)
		if parent == nil {
			driveNotFound(w)
			return
		}
		created = parent.children[strings.ToLower(name)] == nil || conflict == "rename"
		if it = f.drivePutFile(d, parent, name, data, conflict); it == nil {
			WriteError(w, http.StatusConflict, "nameAlreadyExists", "The specified item name already exists.")
			return
		}
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	WriteJSON(w, status, f.driveItemJSON(d, it, false))
}

// drivePathParent is the folder a path upload writes into and the file's name, creating the
// missing folders of the path as Graph does; nil when the base item is missing or a segment is
// a file.
func (f *Fake) drivePathParent(d *fdrive, a driveAddress) (*fitem, string) {
	base := a
	base.rel = nil
	parent := f.resolveItem(d, base)
	for _, seg := range a.rel[:len(a.rel)-1] {
		if parent == nil || !parent.folder {
			return nil, ""
		}
		parent = f.driveMkdirUnder(d, parent, seg)
	}
	if parent == nil || !parent.folder {
		return nil, ""
	}
	return parent, a.rel[len(a.rel)-1]
}

func (f *Fake) driveMkdirUnder(d *fdrive, parent *fitem, name string) *fitem {
	if c := parent.children[strings.ToLower(name)]; c != nil {
		return c
	}
	return f.newDriveItem(d, parent, name, true)
}

func (f *Fake) createDriveUploadSession(w http.ResponseWriter, r *http.Request, d *fdrive, a driveAddress) {
	var body struct {
		Item struct {
			Conflict string `json:"@microsoft.graph.conflictBehavior"`
			Name     string `json:"name"`
		} `json:"item"`
	}
	if r.ContentLength != 0 && !readJSON(w, r, &body) {
		return
	}
	conflict, ok := driveConflict(body.Item.Conflict, "replace")
	if !ok {
		WriteError(w, http.StatusBadRequest, "invalidRequest", "Invalid value for @microsoft.graph.conflictBehavior: "+body.Item.Conflict)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &driveUploadSession{id: driveRandHex(12), drive: d, conflict: conflict, expires: time.Now().UTC().Add(24 * time.Hour)}
	if len(a.rel) == 0 {
		target := f.resolveItem(d, a)
		if target == nil || target.folder {
			driveNotFound(w)
			return
		}
		s.target, s.parent, s.name = target, target.parent, target.name
	} else {
		parent, name := f.drivePathParent(d, a)
		if parent == nil {
			driveNotFound(w)
			return
		}
		if conflict == "fail" && parent.children[strings.ToLower(name)] != nil {
			WriteError(w, http.StatusConflict, "nameAlreadyExists", "The specified item name already exists.")
			return
		}
		s.parent, s.name = parent, name
	}
	f.drives.sessions[s.id] = s
	WriteJSON(w, http.StatusOK, map[string]any{
		"uploadUrl":          f.DownloadURL + "/upload/" + s.id + "?guid=" + driveRandHex(8),
		"expirationDateTime": s.expires.Format(time.RFC3339Nano),
		"nextExpectedRanges": []string{"0-"},
	})
}

var driveContentRange = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+)$`)

func (f *Fake) driveUploadChunk(w http.ResponseWriter, r *http.Request, m []string) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 61<<20))
	if err != nil {
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The request body could not be read.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.drives.sessions[m[1]]
	if s == nil {
		WriteError(w, http.StatusNotFound, "itemNotFound", "The upload session was not found; it expired, completed or was cancelled.")
		return
	}
	cr := driveContentRange.FindStringSubmatch(r.Header.Get("Content-Range"))
	if cr == nil {
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The Content-Range header is missing or malformed: "+r.Header.Get("Content-Range"))
		return
	}
	start, _ := strconv.ParseInt(cr[1], 10, 64)
	end, _ := strconv.ParseInt(cr[2], 10, 64)
	total, _ := strconv.ParseInt(cr[3], 10, 64)
	switch {
	case end < start || end >= total || int64(len(data)) != end-start+1:
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The Content-Range does not match the request body's length.")
		return
	case len(data) > 60<<20:
		WriteError(w, http.StatusRequestEntityTooLarge, "requestTooLarge", "A fragment must be smaller than 60 MiB.")
		return
	case s.total != 0 && total != s.total:
		WriteError(w, http.StatusBadRequest, "invalidRequest", "The total size in Content-Range changed during the session.")
		return
	case start != int64(len(s.data)):
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", total))
		WriteError(w, http.StatusRequestedRangeNotSatisfiable, "invalidRange", fmt.Sprintf("The fragment starts at %d; the next expected range starts at %d.", start, len(s.data)))
		return
	case end != total-1 && len(data)%driveUploadFragment != 0:
		WriteError(w, http.StatusBadRequest, "invalidRequest", "Fragments other than the last must be a multiple of 320 KiB (327,680 bytes).")
		return
	}
	s.total = total
	s.data = append(s.data, data...)
	s.expires = time.Now().UTC().Add(24 * time.Hour)
	if int64(len(s.data)) < total {
		WriteJSON(w, http.StatusAccepted, map[string]any{"expirationDateTime": s.expires.Format(time.RFC3339Nano),
			"nextExpectedRanges": []string{fmt.Sprintf("%d-%d", len(s.data), total-1)}})
		return
	}
	delete(f.drives.sessions, s.id)
	if s.parent == nil || s.parent.deleted {
		driveNotFound(w)
		return
	}
	created := s.target == nil && (s.parent.children[strings.ToLower(s.name)] == nil || s.conflict == "rename")
	it := f.drivePutFile(s.drive, s.parent, s.name, s.data, s.conflict)
	if it == nil {
		WriteError(w, http.StatusConflict, "nameAlreadyExists", "The specified item name already exists.")
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	WriteJSON(w, status, f.driveItemJSON(s.drive, it, false))
}

func (f *Fake) driveUploadStatus(w http.ResponseWriter, _ *http.Request, m []string) {
	f.mu.Lock()
	s := f.drives.sessions[m[1]]
	var body map[string]any
	if s != nil {
		next := fmt.Sprintf("%d-", len(s.data))
		if s.total > 0 {
			next += strconv.FormatInt(s.total-1, 10)
		}
		body = map[string]any{"expirationDateTime": s.expires.Format(time.RFC3339Nano), "nextExpectedRanges": []string{next}}
	}
	f.mu.Unlock()
	if s == nil {
		driveNotFound(w)
		return
	}
	WriteJSON(w, http.StatusOK, body)
}

func (f *Fake) cancelDriveUpload(w http.ResponseWriter, _ *http.Request, m []string) {
	f.mu.Lock()
	_, ok := f.drives.sessions[m[1]]
	delete(f.drives.sessions, m[1])
	f.mu.Unlock()
	if !ok {
		driveNotFound(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// driveDeltaToken is the opaque token of a delta link: the epoch it was issued in, the change
// sequence it covers up to, and (for a nextLink) the sequence the enumeration started after and
// the offset reached.
type driveDeltaToken struct {
	epoch       int
	since, upto int64
	offset      int
	paging      bool
}

func (t driveDeltaToken) String() string {
	s := fmt.Sprintf("%d.%d.%d.%d", t.epoch, t.since, t.upto, t.offset)
	if t.paging {
		s += ".p"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func parseDriveDeltaToken(s string) (driveDeltaToken, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return driveDeltaToken{}, false
	}
	parts := strings.Split(string(b), ".")
	if len(parts) < 4 {
		return driveDeltaToken{}, false
	}
	var t driveDeltaToken
	var e1, e2, e3, e4 error
	t.epoch, e1 = strconv.Atoi(parts[0])
	t.since, e2 = strconv.ParseInt(parts[1], 10, 64)
	t.upto, e3 = strconv.ParseInt(parts[2], 10, 64)
	t.offset, e4 = strconv.Atoi(parts[3])
	t.paging = len(parts) > 4
	return t, e1 == nil && e2 == nil && e3 == nil && e4 == nil
}

func (f *Fake) driveDelta(w http.ResponseWriter, r *http.Request, d *fdrive, prefix string, a driveAddress) {
	if a.base != "root" || a.hasRel {
		WriteError(w, http.StatusBadRequest, "invalidRequest", "Delta is only supported on the root of a drive in OneDrive for Business and SharePoint.")
		return
	}
	q := r.URL.Query()
	top := 200
	if s := q.Get("$top"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			top = min(n, 999)
		}
	}
	link := func(t driveDeltaToken) string {
		return f.baseURL(prefix+"/root/delta") + "?" + url.Values{"token": {t.String()}, "$top": {strconv.Itoa(top)}}.Encode()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.seq
	var tok driveDeltaToken
	switch s := q.Get("token"); s {
	case "latest":
		WriteJSON(w, http.StatusOK, map[string]any{"@odata.context": f.baseURL("/$metadata#Collection(driveItem)"), "value": []any{},
			"@odata.deltaLink": link(driveDeltaToken{epoch: f.drives.epoch, since: now, upto: now})})
		return
	case "":
		tok = driveDeltaToken{epoch: f.drives.epoch, since: -1, upto: now, paging: true}
	default:
		t, ok := parseDriveDeltaToken(s)
		if !ok {
			WriteError(w, http.StatusBadRequest, "invalidRequest", "The delta token is not valid.")
			return
		}
		if t.epoch != f.drives.epoch {
			w.Header().Set("Location", link(driveDeltaToken{epoch: f.drives.epoch, since: -1, upto: now, paging: true}))
			WriteError(w, http.StatusGone, "resyncChangesApplyDifferences", "The delta token is expired; start a new enumeration from the Location.")
			return
		}
		if !t.paging {
			t = driveDeltaToken{epoch: t.epoch, since: t.upto, upto: now, paging: true}
		}
		tok = t
	}
	// The changed items in a stable order: by the sequence of their last change, then id.
	var changed []*fitem
	for _, it := range d.items {
		full := tok.since < 0
		if full && !it.deleted || !full && it.changed > tok.since {
			changed = append(changed, it)
		}
	}
	sort.Slice(changed, func(i, j int) bool {
		if changed[i].changed != changed[j].changed {
			return changed[i].changed < changed[j].changed
		}
		return changed[i].id < changed[j].id
	})
	end := min(tok.offset+top, len(changed))
	page := []map[string]any{}
	for _, it := range changed[min(tok.offset, len(changed)):end] {
		page = append(page, f.driveItemJSON(d, it, true))
	}
	body := map[string]any{"@odata.context": f.baseURL("/$metadata#Collection(driveItem)"), "value": page}
	if end < len(changed) {
		next := tok
		next.offset = end
		body["@odata.nextLink"] = link(next)
	} else {
		body["@odata.deltaLink"] = link(driveDeltaToken{epoch: tok.epoch, since: tok.upto, upto: tok.upto})
	}
	WriteJSON(w, http.StatusOK, body)
}
