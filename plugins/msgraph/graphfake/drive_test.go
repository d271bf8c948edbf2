package graphfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// driveClient talks to the fake as a Graph driveClient would; redirects are not followed.
type driveClient struct {
	t *testing.T
	f *Fake
}

type driveReply struct {
	status int
	header http.Header
	body   []byte
}

func (r driveReply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", r.status, err, r.body)
	}
	return m
}

func (r driveReply) graphCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// do sends a request; a url without a scheme is relative to the fake's /v1.0; token "" sends no
// Authorization header.
func (c driveClient) do(method, url, token string, body []byte, header ...string) driveReply {
	c.t.Helper()
	if !strings.HasPrefix(url, "http") {
		url = c.f.URL + "/v1.0" + url
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return driveReply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (c driveClient) graph(method, url string, body any) driveReply {
	c.t.Helper()
	var b []byte
	switch x := body.(type) {
	case nil:
	case []byte:
		b = x
	default:
		b, _ = json.Marshal(x)
	}
	return c.do(method, url, Token, b, "Content-Type", "application/json")
}

func mustDrive(t *testing.T, status int, r driveReply) driveReply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

func TestDriveAddressing(t *testing.T) {
	f := New(t)
	c := driveClient{t, f}
	drive := f.UserDriveID()
	file := f.AddFile(drive, "/Reports/2026/q3 summary.txt", []byte("hello"))

	byPath := mustDrive(t, 200, c.graph("GET", "/me/drive/root:/Reports/2026/q3%20summary.txt:", nil)).json(t)
	byID := mustDrive(t, 200, c.graph("GET", "/drives/"+drive+"/items/"+file.ID, nil)).json(t)
	byUser := mustDrive(t, 200, c.graph("GET", "/users/"+UserPrincipalName+"/drive/items/"+file.ID, nil)).json(t)
	for _, m := range []map[string]any{byPath, byID, byUser} {
		parent := m["parentReference"].(map[string]any)
		if m["id"] != file.ID || m["name"] != "q3 summary.txt" || m["size"] != 5.0 || m["eTag"] != file.ETag || m["cTag"] != file.CTag ||
			m["file"].(map[string]any)["mimeType"] != "text/plain" || parent["driveId"] != drive ||
			parent["path"] != "/drives/"+drive+"/root:/Reports/2026" || m["@microsoft.graph.downloadUrl"] == nil {
			t.Errorf("item = %v", m)
		}
	}
	// A path relative to a folder addressed by id, without the closing colon.
	folder, _ := f.Item(drive, "/Reports")
	if m := mustDrive(t, 200, c.graph("GET", "/me/drive/items/"+folder.ID+":/2026/q3 summary.txt", nil)).json(t); m["id"] != file.ID {
		t.Errorf("relative path: %v", m)
	}
	root := mustDrive(t, 200, c.graph("GET", "/me/drive/root", nil)).json(t)
	if root["root"] == nil || root["folder"].(map[string]any)["childCount"] != 1.0 {
		t.Errorf("root = %v", root)
	}
	if d := mustDrive(t, 200, c.graph("GET", "/me/drive", nil)).json(t); d["id"] != drive || d["driveType"] != "business" {
		t.Errorf("drive = %v", d)
	}

	for _, u := range []string{"/me/drive/root:/nope.txt:", "/me/drive/items/01NOPE", "/drives/b!nope/root", "/sites/nope"} {
		r := mustDrive(t, 404, c.graph("GET", u, nil))
		if r.graphCode(t) != "itemNotFound" || !strings.Contains(string(r.body), "The resource could not be found.") {
			t.Errorf("%s: %s", u, r.body)
		}
	}
	if r := c.do("GET", "/me/drive/root", "", nil); r.status != 401 || r.graphCode(t) != "InvalidAuthenticationToken" {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
}

func TestDriveSitesAndPaging(t *testing.T) {
	f := New(t)
	c := driveClient{t, f}
	mk := f.AddSite("Marketing")
	f.AddSite("Engineering")
	list := mustDrive(t, 200, c.graph("GET", "/sites?search=market", nil)).json(t)["value"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != mk.ID {
		t.Fatalf("search = %v", list)
	}
	if all := mustDrive(t, 200, c.graph("GET", "/sites?search=*", nil)).json(t)["value"].([]any); len(all) != 2 {
		t.Errorf("search=* found %d sites", len(all))
	}
	if d := mustDrive(t, 200, c.graph("GET", "/sites/"+mk.ID+"/drive", nil)).json(t); d["id"] != mk.DriveID || d["driveType"] != "documentLibrary" {
		t.Errorf("site drive = %v", d)
	}
	if ds := mustDrive(t, 200, c.graph("GET", "/sites/"+mk.ID+"/drives", nil)).json(t)["value"].([]any); len(ds) != 1 {
		t.Errorf("site drives = %v", ds)
	}

	for i := range 5 {
		f.AddFile(mk.DriveID, fmt.Sprintf("/Plans/p%d.txt", i), []byte("x"))
	}
	var names []string
	next := "/sites/" + mk.ID + "/drive/root:/Plans:/children?$top=2"
	pages := 0
	for next != "" {
		m := mustDrive(t, 200, c.graph("GET", next, nil)).json(t)
		pages++
		for _, v := range m["value"].([]any) {
			names = append(names, v.(map[string]any)["name"].(string))
		}
		next, _ = m["@odata.nextLink"].(string)
		if next != "" && !strings.HasPrefix(next, f.URL+"/v1.0/") {
			t.Fatalf("nextLink %q is not absolute on the fake", next)
		}
	}
	if pages != 3 || strings.Join(names, ",") != "p0.txt,p1.txt,p2.txt,p3.txt,p4.txt" {
		t.Errorf("%d pages: %v", pages, names)
	}
}

func TestDriveContentRedirectsToTheDownloadHost(t *testing.T) {
	f := New(t)
	c := driveClient{t, f}
	file := f.AddFile(f.UserDriveID(), "/a.bin", []byte{0, 1, 2, 0xff})
	r := mustDrive(t, 302, c.graph("GET", "/me/drive/items/"+file.ID+"/content", nil))
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, f.DownloadURL+"/") {
		t.Fatalf("Location %q is not on the download host %s", loc, f.DownloadURL)
	}
	got := mustDrive(t, 200, c.do("GET", loc, "", nil))
	if !bytes.Equal(got.body, []byte{0, 1, 2, 0xff}) {
		t.Errorf("content = %v", got.body)
	}
	if len(f.CredentialLeaks()) != 0 {
		t.Fatalf("leaks before any: %v", f.CredentialLeaks())
	}
	// A driveClient that forwards the bearer token is refused and recorded.
	if r := c.do("GET", loc, Token, nil); r.status != 401 {
		t.Errorf("with a token: %d", r.status)
	}
	if leaks := f.CredentialLeaks(); len(leaks) != 1 || leaks[0].Authorization != "Bearer "+Token {
		t.Errorf("leaks = %+v", leaks)
	}
	if r := mustDrive(t, 302, c.graph("GET", "/me/drive/root:/a.bin:/content", nil)); !strings.HasPrefix(r.header.Get("Location"), f.DownloadURL) {
		t.Errorf("by path: %v", r.header)
	}
}

func TestDriveSimpleUploadAndFolders(t *testing.T) {
	f := New(t)
	c := driveClient{t, f}
	drive := f.UserDriveID()
	created := mustDrive(t, 201, c.graph("PUT", "/me/drive/root:/Docs/new.txt:/content", []byte("one"))).json(t)
	replaced := mustDrive(t, 200, c.graph("PUT", "/me/drive/root:/Docs/new.txt:/content", []byte("two!"))).json(t)
	if created["id"] != replaced["id"] || created["eTag"] == replaced["eTag"] || replaced["size"] != 4.0 {
		t.Errorf("created %v, replaced %v", created, replaced)
	}
	if r := mustDrive(t, 409, c.graph("PUT", "/me/drive/root:/Docs/new.txt:/content?@microsoft.graph.conflictBehavior=fail", []byte("x"))); r.graphCode(t) != "nameAlreadyExists" {
		t.Errorf("fail: %s", r.body)
	}
	if m := mustDrive(t, 201, c.graph("PUT", "/me/drive/root:/Docs/new.txt:/content?@microsoft.graph.conflictBehavior=rename", []byte("x"))).json(t); m["name"] != "new 1.txt" {
		t.Errorf("rename: %v", m)
	}
	old := driveSimpleUploadLimit
	driveSimpleUploadLimit = 10
	defer func() { driveSimpleUploadLimit = old }()
	if r := c.graph("PUT", "/me/drive/root:/big.bin:/content", bytes.Repeat([]byte("x"), 11)); r.status != 413 {
		t.Errorf("over the simple upload limit: %d %s", r.status, r.body)
	}

	folder := map[string]any{"name": "Docs", "folder": map[string]any{}}
	if r := mustDrive(t, 409, c.graph("POST", "/me/drive/root/children", folder)); r.graphCode(t) != "nameAlreadyExists" {
		t.Errorf("create an existing folder: %s", r.body)
	}
	folder["@microsoft.graph.conflictBehavior"] = "rename"
	if m := mustDrive(t, 201, c.graph("POST", "/me/drive/root/children", folder)).json(t); m["name"] != "Docs 1" || m["folder"] == nil {
		t.Errorf("renamed folder: %v", m)
	}
	docs, _ := f.Item(drive, "/Docs")
	if m := mustDrive(t, 200, c.graph("PATCH", "/me/drive/items/"+docs.ID, map[string]any{"name": "Papers"})).json(t); m["name"] != "Papers" {
		t.Errorf("rename: %v", m)
	}
	mustDrive(t, 204, c.graph("DELETE", "/me/drive/root:/Papers:", nil))
	if _, ok := f.Item(drive, "/Papers/new.txt"); ok {
		t.Error("a deleted folder's file is still there")
	}
	mustDrive(t, 404, c.graph("DELETE", "/me/drive/items/"+docs.ID, nil))
}

func TestDriveUploadSession(t *testing.T) {
	f := New(t)
	c := driveClient{t, f}
	content := bytes.Repeat([]byte("0123456789abcdef"), (2*driveUploadFragment+1000)/16)
	total := len(content)
	start := func() string {
		s := mustDrive(t, 200, c.graph("POST", "/me/drive/root:/Big/large.bin:/createUploadSession",
			map[string]any{"item": map[string]any{"@microsoft.graph.conflictBehavior": "replace"}})).json(t)
		u := s["uploadUrl"].(string)
		if !strings.HasPrefix(u, f.DownloadURL+"/") || s["expirationDateTime"] == nil || fmt.Sprint(s["nextExpectedRanges"]) != "[0-]" {
			t.Fatalf("session = %v", s)
		}
		return u
	}
	put := func(u string, a, b int) driveReply {
		return c.do("PUT", u, "", content[a:b], "Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, b-1, total))
	}
	f.AddFolder(f.UserDriveID(), "/Big")
	u := start()
	if r := put(u, 0, 1000); r.status != 400 {
		t.Errorf("a first chunk that is not a multiple of 320 KiB: %d %s", r.status, r.body)
	}
	r := mustDrive(t, 202, put(u, 0, driveUploadFragment))
	if fmt.Sprint(r.json(t)["nextExpectedRanges"]) != fmt.Sprintf("[%d-%d]", driveUploadFragment, total-1) {
		t.Errorf("202 = %s", r.body)
	}
	if r := put(u, 0, driveUploadFragment); r.status != 416 {
		t.Errorf("a range received already: %d %s", r.status, r.body)
	}
	mustDrive(t, 202, put(u, driveUploadFragment, 2*driveUploadFragment))
	done := mustDrive(t, 201, put(u, 2*driveUploadFragment, total)).json(t)
	it, ok := f.Item(f.UserDriveID(), "/Big/large.bin")
	if !ok || done["id"] != it.ID || !bytes.Equal(it.Content, content) || f.UploadSessions() != 0 {
		t.Fatalf("completed upload: %v (%d bytes stored)", done, len(it.Content))
	}
	if r := put(u, 0, driveUploadFragment); r.status != 404 {
		t.Errorf("a completed session: %d", r.status)
	}

	u = start()
	mustDrive(t, 202, put(u, 0, driveUploadFragment))
	mustDrive(t, 204, c.do("DELETE", u, "", nil))
	if r := put(u, driveUploadFragment, 2*driveUploadFragment); r.status != 404 || f.UploadSessions() != 0 {
		t.Errorf("a cancelled session: %d", r.status)
	}
	if len(f.CredentialLeaks()) != 0 {
		t.Errorf("leaks: %v", f.CredentialLeaks())
	}
}

func TestDriveDelta(t *testing.T) {
	f := New(t)
	c := driveClient{t, f}
	drive := f.UserDriveID()
	old := f.AddFile(drive, "/old.txt", []byte("old"))
	gone := f.AddFile(drive, "/Folder/gone.txt", []byte("bye"))

	latest := mustDrive(t, 200, c.graph("GET", "/me/drive/root/delta?token=latest&$top=2", nil)).json(t)
	link, _ := latest["@odata.deltaLink"].(string)
	if len(latest["value"].([]any)) != 0 || !strings.HasPrefix(link, f.URL+"/v1.0/me/drive/root/delta?") {
		t.Fatalf("token=latest = %v", latest)
	}
	// Nothing changed: the deltaLink answers nothing.
	if m := mustDrive(t, 200, c.graph("GET", link, nil)).json(t); len(m["value"].([]any)) != 0 {
		t.Errorf("no change: %v", m)
	}

	added := f.AddFile(drive, "/new.txt", []byte("new"))
	f.UpdateFile(drive, "/old.txt", []byte("old, edited"))
	f.DeleteItem(drive, "/Folder/gone.txt")
	byID := map[string]map[string]any{}
	next, pages := link, 0
	for next != "" {
		m := mustDrive(t, 200, c.graph("GET", next, nil)).json(t)
		pages++
		for _, v := range m["value"].([]any) {
			byID[v.(map[string]any)["id"].(string)] = v.(map[string]any)
		}
		next, _ = m["@odata.nextLink"].(string)
		if next == "" {
			link, _ = m["@odata.deltaLink"].(string)
		}
	}
	if pages < 2 {
		t.Errorf("%d pages with $top=2", pages)
	}
	if a := byID[added.ID]; a == nil || a["name"] != "new.txt" || a["deleted"] != nil || a["cTag"] != nil ||
		a["parentReference"].(map[string]any)["path"] != nil || a["parentReference"].(map[string]any)["id"] == nil {
		t.Errorf("added = %v", a)
	}
	if o := byID[old.ID]; o == nil || o["size"] != 11.0 || o["eTag"] == old.ETag {
		t.Errorf("updated = %v", o)
	}
	if g := byID[gone.ID]; g == nil || g["deleted"] == nil || g["name"] != nil {
		t.Errorf("deleted = %v", g)
	}
	if m := mustDrive(t, 200, c.graph("GET", link, nil)).json(t); len(m["value"].([]any)) != 0 {
		t.Errorf("after the deltaLink: %v", m)
	}

	// A full enumeration (no token) lists what exists, not the deleted.
	full := map[string]bool{}
	next = "/me/drive/root/delta"
	for next != "" {
		m := mustDrive(t, 200, c.graph("GET", next, nil)).json(t)
		for _, v := range m["value"].([]any) {
			full[v.(map[string]any)["id"].(string)] = true
		}
		next, _ = m["@odata.nextLink"].(string)
	}
	if !full[added.ID] || !full[old.ID] || full[gone.ID] {
		t.Errorf("full enumeration = %v", full)
	}

	f.ExpireDeltaTokens()
	r := mustDrive(t, 410, c.graph("GET", link, nil))
	if r.graphCode(t) != "resyncChangesApplyDifferences" || !strings.HasPrefix(r.header.Get("Location"), f.URL+"/v1.0/me/drive/root/delta?") || !strings.Contains(r.header.Get("Location"), "token=") {
		t.Errorf("expired token: %v %s", r.header, r.body)
	}
	if r := c.graph("GET", "/me/drive/items/"+old.ID+"/delta", nil); r.status != 400 {
		t.Errorf("delta on a folder: %d", r.status)
	}
}
