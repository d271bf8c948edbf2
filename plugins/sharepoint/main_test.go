package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

func harness(t *testing.T, f *graphfake.Fake, edit ...func(*pdktest.Options)) *pdktest.Harness {
	t.Helper()
	opts := pdktest.Options{
		Connection: &abi.Connection{ID: "m365", Params: map[string]any{"base_url": f.URL, "download_origin": f.DownloadURL}},
		Credential: pdktest.Credential{AccessToken: graphfake.Token},
	}
	for _, e := range edit {
		e(&opts)
	}
	return pdktest.New(t, opts)
}

func TestManifest(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	m := h.Describe()
	if m.Name != "sharepoint" || m.Version != "1.0.0" || m.Title != "SharePoint and OneDrive" || m.Description == "" || !m.HasAuthType(abi.AuthOAuth2) {
		t.Errorf("manifest = %+v", m)
	}
	o := m.Auth.OAuth2
	if o == nil || !strings.Contains(o.AuthorizationURL, "login.microsoftonline.com/{tenant}/") ||
		strings.Join(o.Scopes, " ") != "offline_access Files.ReadWrite.All Sites.Read.All" {
		t.Errorf("oauth2 = %+v", o)
	}
	want := []string{"{base_url}", "{download_origin}", "https://*.sharepoint.com", "https://*.files.1drv.com", "https://*.up.1drv.com"}
	if !slices.Equal(m.Hosts, want) {
		t.Errorf("hosts = %v", m.Hosts)
	}
	if got := h.Origins(); !slices.Contains(got, f.URL) || !slices.Contains(got, f.DownloadURL) {
		t.Errorf("origins = %v", got)
	}
	var props map[string]any
	json.Unmarshal(m.ConnectionParams, &props)
	for _, p := range []string{"base_url", "tenant", "user", "download_origin"} {
		if props["properties"].(map[string]any)[p] == nil {
			t.Errorf("connection_params lacks %s", p)
		}
	}
	var names []string
	for _, a := range m.Actions {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, ","); got != "list_sites,list_drives,list_items,get_item,download_file,upload_file,create_folder,delete_item" {
		t.Errorf("actions = %s", got)
	}
	for _, name := range []string{"list_sites", "list_drives", "list_items", "get_item", "download_file"} {
		if a, _ := m.Action(name); a.Annotations == nil || !a.Annotations.ReadOnly || !a.Annotations.Idempotent {
			t.Errorf("%s is not read-only and idempotent", name)
		}
	}
	if a, _ := m.Action("delete_item"); a.Annotations == nil || !a.Annotations.Destructive || !a.Annotations.Idempotent || a.Annotations.ReadOnly {
		t.Errorf("delete_item annotations = %+v", a.Annotations)
	}
	if a, _ := m.Action("upload_file"); a.Annotations != nil && (a.Annotations.ReadOnly || a.Annotations.Idempotent) {
		t.Errorf("upload_file annotations = %+v", a.Annotations)
	}
	if len(m.Triggers) != 1 || m.Triggers[0].Name != "file_changed" || m.Triggers[0].Kind != abi.TriggerPoll ||
		m.Triggers[0].DefaultIntervalS != 60 || m.Triggers[0].MinIntervalS != 15 {
		t.Errorf("triggers = %+v", m.Triggers)
	}
}

func TestListSitesAndDrives(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	mk := f.AddSite("Marketing")
	f.AddSite("Marketing Archive")
	f.AddSite("Engineering")

	var out ListSitesOutput
	if e := h.InvokeInto("list_sites", ListSitesInput{Search: "marketing", Top: 1}, &out); e != nil {
		t.Fatal(e)
	}
	if len(out.Sites) != 1 || out.Sites[0].ID != mk.ID || out.Sites[0].WebURL != mk.WebURL || out.NextCursor == "" {
		t.Fatalf("first page = %+v", out)
	}
	var second ListSitesOutput
	if e := h.InvokeInto("list_sites", ListSitesInput{Cursor: out.NextCursor}, &second); e != nil {
		t.Fatal(e)
	}
	if len(second.Sites) != 1 || second.Sites[0].Name != "Marketing Archive" || second.NextCursor != "" {
		t.Errorf("second page = %+v", second)
	}
	var all ListSitesOutput
	h.InvokeInto("list_sites", nil, &all)
	if len(all.Sites) != 3 {
		t.Errorf("all sites = %+v", all)
	}
	_, e := h.Invoke("list_sites", ListSitesInput{Cursor: "https://evil.example/v1.0/sites?search=*"})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "not a Microsoft Graph URL")

	var drives ListDrivesOutput
	if e := h.InvokeInto("list_drives", ListDrivesInput{SiteID: mk.ID}, &drives); e != nil {
		t.Fatal(e)
	}
	if len(drives.Drives) != 1 || drives.Drives[0].ID != mk.DriveID || drives.Drives[0].DriveType != "documentLibrary" {
		t.Errorf("site drives = %+v", drives)
	}
	if e := h.InvokeInto("list_drives", nil, &drives); e != nil {
		t.Fatal(e)
	}
	if len(drives.Drives) != 1 || drives.Drives[0].ID != f.UserDriveID() || drives.Drives[0].Owner != "Adele Vance" || drives.Drives[0].QuotaSize == nil {
		t.Errorf("user drives = %+v", drives)
	}
	_, e = h.Invoke("list_drives", ListDrivesInput{SiteID: "contoso.sharepoint.com,nope,nope"})
	pdktest.WantError(t, e, abi.CodeNotFound)
	if d := pdktest.Details(t, e); d["graph_code"] != "itemNotFound" {
		t.Errorf("details = %v", d)
	}
}

func TestListAndGetItems(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	site := f.AddSite("Finance")
	for i := range 3 {
		f.AddFile(site.DriveID, fmt.Sprintf("/Reports/2026/r%d.csv", i), []byte("a,b\n"))
	}
	f.AddFolder(site.DriveID, "/Reports/2026/Drafts")
	q3 := f.AddFile(f.UserDriveID(), "/Reports/2026/q3 #1.xlsx", []byte("sheet"))

	var page ListItemsOutput
	if e := h.InvokeInto("list_items", ListItemsInput{ItemRef: ItemRef{DriveRef: DriveRef{SiteID: site.ID}, Path: "/Reports/2026"}, Top: 3}, &page); e != nil {
		t.Fatal(e)
	}
	if len(page.Items) != 3 || page.NextCursor == "" || !page.Items[0].IsFolder || page.Items[0].Name != "Drafts" || page.Items[1].Name != "r0.csv" {
		t.Fatalf("page = %+v", page)
	}
	var rest ListItemsOutput
	if e := h.InvokeInto("list_items", ListItemsInput{Cursor: page.NextCursor}, &rest); e != nil {
		t.Fatal(e)
	}
	if len(rest.Items) != 1 || rest.Items[0].Name != "r2.csv" || rest.NextCursor != "" {
		t.Errorf("rest = %+v", rest)
	}
	// The root of the user's OneDrive by default.
	var root ListItemsOutput
	h.InvokeInto("list_items", nil, &root)
	if len(root.Items) != 1 || root.Items[0].Name != "Reports" || root.Items[0].ChildCount == nil || *root.Items[0].ChildCount != 1 {
		t.Errorf("root = %+v", root)
	}

	var it Item
	if e := h.InvokeInto("get_item", ItemRef{Path: "/Reports/2026/q3 #1.xlsx"}, &it); e != nil {
		t.Fatal(e)
	}
	if it.ID != q3.ID || it.Size != 5 || it.ETag != q3.ETag || it.CTag != q3.CTag || it.IsFolder || it.ChildCount != nil ||
		it.MimeType != "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" || it.Parent == nil ||
		it.Parent.Path != "/Reports/2026" || it.Parent.DriveID != f.UserDriveID() || it.Parent.ID != q3.ParentID ||
		it.LastModifiedBy == nil || it.LastModifiedBy.Email != graphfake.UserPrincipalName || it.CreatedDateTime.IsZero() || it.WebURL == "" {
		t.Errorf("item = %+v", it)
	}
	if req := h.Requests()[len(h.Requests())-1]; !strings.HasSuffix(req.URL, "/v1.0/me/drive/root:/Reports/2026/q3%20%231.xlsx:") ||
		req.Headers["User-Agent"] != "plugboard-sharepoint/1.0.0" {
		t.Errorf("request = %+v", req)
	}
	var byID Item
	h.InvokeInto("get_item", ItemRef{DriveRef: DriveRef{DriveID: f.UserDriveID()}, ItemID: q3.ID}, &byID)
	if byID.ID != q3.ID {
		t.Errorf("by id = %+v", byID)
	}

	for _, tt := range []struct {
		name  string
		in    any
		code  string
		parts []string
	}{
		{"a missing path is not_found with Graph's code", ItemRef{Path: "/nope.txt"}, abi.CodeNotFound, []string{"itemNotFound"}},
		{"a missing id is not_found", ItemRef{ItemID: "01NOPE"}, abi.CodeNotFound, nil},
		{"item_id and path together", ItemRef{ItemID: "x", Path: "/a"}, abi.CodeInvalidInput, []string{"item_id or path"}},
		{"drive_id and site_id together", ItemRef{DriveRef: DriveRef{DriveID: "d", SiteID: "s"}}, abi.CodeInvalidInput, []string{"drive_id or site_id"}},
		{"a .. segment", ItemRef{Path: "/Reports/../x"}, abi.CodeInvalidInput, []string{".."}},
		{"an empty segment", ItemRef{Path: "/Reports//x"}, abi.CodeInvalidInput, []string{"empty segment"}},
		{"an unknown field", map[string]any{"paht": "/x"}, abi.CodeInvalidInput, []string{"paht"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, e := h.Invoke("get_item", tt.in)
			pdktest.WantError(t, e, tt.code, tt.parts...)
		})
	}
	_, e := h.Invoke("list_items", ListItemsInput{ItemRef: ItemRef{Path: "/Reports/2026/q3 #1.xlsx"}})
	pdktest.WantError(t, e, abi.CodeInvalidInput)
	_, e = h.Invoke("list_items", ListItemsInput{Cursor: "http://127.0.0.1:1/v1.0/me/drive/root/children"})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "the cursor")
	_, e = h.Invoke("list_items", ListItemsInput{ItemRef: ItemRef{DriveRef: DriveRef{DriveID: "b!missing"}}})
	pdktest.WantError(t, e, abi.CodeNotFound)
}

func TestCreateFolderAndDelete(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	f.AddFolder(f.UserDriveID(), "/Projects")

	var made Item
	if e := h.InvokeInto("create_folder", CreateFolderInput{ParentRefInput: ParentRefInput{Path: "/Projects"}, Name: "Apollo"}, &made); e != nil {
		t.Fatal(e)
	}
	if !made.IsFolder || made.Name != "Apollo" || made.Parent == nil || made.Parent.Path != "/Projects" {
		t.Errorf("folder = %+v", made)
	}
	_, e := h.Invoke("create_folder", CreateFolderInput{ParentRefInput: ParentRefInput{Path: "/Projects"}, Name: "Apollo"})
	pdktest.WantError(t, e, abi.CodeConflict, "nameAlreadyExists", "set conflict to rename or replace")
	if d := pdktest.Details(t, e); d["graph_code"] != "nameAlreadyExists" || d["status"] != 409.0 {
		t.Errorf("details = %v", d)
	}
	var renamed Item
	projects, _ := f.Item(f.UserDriveID(), "/Projects")
	if e := h.InvokeInto("create_folder", CreateFolderInput{ParentRefInput: ParentRefInput{ParentID: projects.ID}, Name: "Apollo", Conflict: "rename"}, &renamed); e != nil {
		t.Fatal(e)
	}
	if renamed.Name != "Apollo 1" || renamed.ID == made.ID {
		t.Errorf("renamed = %+v", renamed)
	}
	var atRoot Item
	h.InvokeInto("create_folder", CreateFolderInput{Name: "Top"}, &atRoot)
	if _, ok := f.Item(f.UserDriveID(), "/Top"); !ok || atRoot.Name != "Top" {
		t.Errorf("a folder at the root: %+v", atRoot)
	}
	for _, in := range []CreateFolderInput{{Name: "a:b"}, {Name: "x", Conflict: "merge"}, {Name: "trailing."}} {
		_, e := h.Invoke("create_folder", in)
		pdktest.WantError(t, e, abi.CodeInvalidInput)
	}
	_, e = h.Invoke("create_folder", CreateFolderInput{ParentRefInput: ParentRefInput{Path: "/Missing"}, Name: "x"})
	pdktest.WantError(t, e, abi.CodeNotFound)

	var del DeleteOutput
	if e := h.InvokeInto("delete_item", ItemRef{ItemID: made.ID}, &del); e != nil || !del.Deleted {
		t.Fatalf("delete = %+v %v", del, e)
	}
	if _, ok := f.Item(f.UserDriveID(), "/Projects/Apollo"); ok {
		t.Error("the folder is still there")
	}
	_, e = h.Invoke("delete_item", ItemRef{ItemID: made.ID})
	pdktest.WantError(t, e, abi.CodeNotFound)
	if e := h.InvokeInto("delete_item", ItemRef{Path: "/Projects/Apollo 1"}, &del); e != nil {
		t.Fatal(e)
	}
	_, e = h.Invoke("delete_item", ItemRef{Path: "/"})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "root")
}

func TestThrottlingIsRateLimited(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	f.AddFile(f.UserDriveID(), "/a.txt", []byte("a"))
	f.Throttle("/drive", 1, http.StatusTooManyRequests, 7)
	_, e := h.Invoke("get_item", ItemRef{Path: "/a.txt"})
	pdktest.WantError(t, e, abi.CodeRateLimited)
	if d := pdktest.Details(t, e); !e.Retryable || d["retry_after_s"] != 7.0 || d["graph_code"] != "TooManyRequests" {
		t.Errorf("error %+v details %v", e, d)
	}
	f.Throttle("/drive", 1, http.StatusServiceUnavailable, 2)
	_, e = h.Invoke("list_items", nil)
	pdktest.WantError(t, e, abi.CodeUnavailable)
	if d := pdktest.Details(t, e); !e.Retryable || d["retry_after_s"] != 2.0 {
		t.Errorf("503: %+v %v", e, d)
	}
	var it Item
	if e := h.InvokeInto("get_item", ItemRef{Path: "/a.txt"}, &it); e != nil || it.Name != "a.txt" {
		t.Errorf("after the throttling: %+v %v", it, e)
	}
}
