// Command sharepoint is the SharePoint and OneDrive connector: sites, document libraries
// (drives), folders and files through Microsoft Graph v1.0, on the Microsoft 365 connection
// the outlook connector uses as well (plugins/internal/msgraph).
//
// A drive is named by drive_id, or by site_id (the site's default document library), or by
// neither (the connection user's OneDrive). An item is named by item_id or by path from the
// drive's root ("/Reports/2026/q3.xlsx", sent as root:/Reports/2026/q3.xlsx: with each segment
// percent-escaped); neither means the root.
//
// Files move without the connection's credential reaching the file hosts: download_file asks
// Graph for .../content, which answers 302 to a pre-authenticated URL on another host
// (*.sharepoint.com, *.files.1drv.com); the Plugboard host follows the redirect and, since the
// origin changed, drops the Authorization header. upload_file sends up to 4 MiB in one PUT and
// more through an upload session whose uploadUrl (*.sharepoint.com, *.up.1drv.com) takes the
// chunks with auth: false.
//
// Graph's errors map as msgraph.Error does: 404 not_found, 409 conflict (nameAlreadyExists),
// 429 and 503 retryable with details.retry_after_s, Graph's code in details.graph_code.
//
// The file_changed poll trigger is in triggers.go.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sharepoint.wasm ./plugins/sharepoint
package main

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
	"github.com/plugboard/plugboard/plugins/internal/msgraph"
)

func main() {}

// version is the connector's version, also sent in the User-Agent.
const version = "1.0.0"

const userAgent = "plugboard-sharepoint/" + version

func init() {
	pdk.Connector(pdk.Info{
		Name:        "sharepoint",
		Version:     version,
		Title:       "SharePoint and OneDrive",
		Description: "Sites, document libraries, folders and files in SharePoint Online and OneDrive, through Microsoft Graph: list, read, download, upload, create folders, delete, and a trigger on changed files.",
		Auth:        msgraph.OAuth2("Files.ReadWrite.All", "Sites.Read.All"),
		// One connection serves outlook and sharepoint, so both take the same params.
		ConnectionParams: msgraph.ConnectionParams,
		// Graph itself, one more file origin of the connection, and Graph's pre-authenticated
		// hosts: downloadUrl and upload sessions on SharePoint and OneDrive for Business
		// ({tenant}.sharepoint.com, {tenant}-my.sharepoint.com), downloads (*.files.1drv.com) and
		// upload sessions (*.up.1drv.com) on personal OneDrive.
		Hosts: []string{"{base_url}", "{download_origin}", "https://*.sharepoint.com", "https://*.files.1drv.com", "https://*.up.1drv.com"},
	})
	pdk.Action("list_sites", listSites,
		pdk.Title("List sites"),
		pdk.Description("Searches the SharePoint sites the user can see (Graph's /sites?search=); an empty search lists them all. Pages with top and cursor."),
		pdk.ReadOnly(), pdk.Idempotent())
	pdk.Action("list_drives", listDrives,
		pdk.Title("List drives"),
		pdk.Description("Lists the document libraries of a site (site_id), or the user's drives (their OneDrive) without it."),
		pdk.ReadOnly(), pdk.Idempotent())
	pdk.Action("list_items", listItems,
		pdk.Title("List folder"),
		pdk.Description("Lists the files and folders in a folder (path or item_id; the drive's root by default), top per page; pass next_cursor back as cursor for the next page."),
		pdk.ReadOnly(), pdk.Idempotent())
	pdk.Action("get_item", getItem,
		pdk.Title("Get item"),
		pdk.Description("Returns a file's or folder's metadata: size, dates, eTag, MIME type, parent, who changed it last."),
		pdk.ReadOnly(), pdk.Idempotent())
	pdk.Action("download_file", downloadFile,
		pdk.Title("Download file"),
		pdk.Description("Returns a file's content as base64 (default) or as UTF-8 text, up to max_bytes (4 MiB by default, at most 8 MiB; 7 MiB as base64, which the host's output cap bounds)."),
		pdk.ReadOnly(), pdk.Idempotent(), pdk.Timeout(60*time.Second))
	pdk.Action("upload_file", uploadFile,
		pdk.Title("Upload file"),
		pdk.Description("Writes a file from content_base64 or text, at path (folder path and name) or as name in the folder parent_id; missing folders of a path are created. "+
			"Up to 4 MiB goes in one request, larger files (up to 16 MiB) through an upload session. conflict says what to do when the name exists: replace (default), rename or fail. "+
			"Plugboard's API caps request bodies (4 MiB by default, about 3 MiB of file as base64), which bounds the file first unless the server allows larger bodies."),
		pdk.Timeout(60*time.Second))
	pdk.Action("create_folder", createFolder,
		pdk.Title("Create folder"),
		pdk.Description("Creates a folder named name in the folder path or parent_id (the root by default). conflict: fail (default), rename or replace."))
	pdk.Action("delete_item", deleteItem,
		pdk.Title("Delete item"),
		pdk.Description("Moves a file or a folder (with what it holds) to the recycle bin."),
		pdk.Destructive(), pdk.Idempotent())
}

// DriveRef names a drive: drive_id, or site_id (its default document library), or neither
// (the user's OneDrive).
type DriveRef struct {
	DriveID string `json:"drive_id,omitempty" jsonschema:"Drive (document library) id, from list_drives. Omit for the site's default library or the user's OneDrive." maxLength:"512"`
	SiteID  string `json:"site_id,omitempty" jsonschema:"Site id (hostname,site-guid,web-guid) from list_sites: its default document library. Omit with drive_id." maxLength:"512"`
}

// ItemRef names an item of a drive: item_id or path; neither is the root.
type ItemRef struct {
	DriveRef
	ItemID string `json:"item_id,omitempty" jsonschema:"Item id. Give item_id or path, not both." maxLength:"512"`
	Path   string `json:"path,omitempty" jsonschema:"Path from the drive's root, such as /Reports/2026/q3.xlsx. Give item_id or path, not both; neither means the root." maxLength:"2048"`
}

// Item is a file or a folder.
type Item struct {
	ID                   string     `json:"id"`
	Name                 string     `json:"name"`
	Size                 int64      `json:"size" jsonschema:"Bytes; for a folder, the size of what it holds"`
	WebURL               string     `json:"web_url,omitempty" jsonschema:"Where a browser opens it"`
	CreatedDateTime      time.Time  `json:"created_date_time,omitzero"`
	LastModifiedDateTime time.Time  `json:"last_modified_date_time,omitzero"`
	ETag                 string     `json:"e_tag,omitempty" jsonschema:"Changes with the item's metadata or content"`
	CTag                 string     `json:"c_tag,omitempty" jsonschema:"Changes with the content"`
	IsFolder             bool       `json:"is_folder"`
	ChildCount           *int       `json:"child_count,omitempty" jsonschema:"Items in a folder"`
	MimeType             string     `json:"mime_type,omitempty"`
	Parent               *ParentRef `json:"parent,omitempty"`
	LastModifiedBy       *Identity  `json:"last_modified_by,omitempty"`
}

// ParentRef is where an item is.
type ParentRef struct {
	DriveID string `json:"drive_id,omitempty"`
	ID      string `json:"id,omitempty"`
	Path    string `json:"path,omitempty" jsonschema:"The parent folder's path from the drive's root (/Reports/2026); absent when Graph does not say"`
}

// Identity is a user.
type Identity struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// wireItem is Graph's driveItem, the part the connector reads.
type wireItem struct {
	ID                   string    `json:"id"`
	Name                 string    `json:"name"`
	Size                 int64     `json:"size"`
	WebURL               string    `json:"webUrl"`
	CreatedDateTime      time.Time `json:"createdDateTime"`
	LastModifiedDateTime time.Time `json:"lastModifiedDateTime"`
	ETag                 string    `json:"eTag"`
	CTag                 string    `json:"cTag"`
	File                 *struct {
		MimeType string `json:"mimeType"`
	} `json:"file"`
	Folder *struct {
		ChildCount int `json:"childCount"`
	} `json:"folder"`
	Root    *struct{} `json:"root"`
	Deleted *struct {
		State string `json:"state"`
	} `json:"deleted"`
	ParentReference *struct {
		DriveID string `json:"driveId"`
		ID      string `json:"id"`
		Path    string `json:"path"`
	} `json:"parentReference"`
	LastModifiedBy *struct {
		User *struct {
			DisplayName string `json:"displayName"`
			Email       string `json:"email"`
		} `json:"user"`
	} `json:"lastModifiedBy"`
}

func (w wireItem) item() Item {
	it := Item{ID: w.ID, Name: w.Name, Size: w.Size, WebURL: w.WebURL, CreatedDateTime: w.CreatedDateTime,
		LastModifiedDateTime: w.LastModifiedDateTime, ETag: w.ETag, CTag: w.CTag, IsFolder: w.Folder != nil}
	if w.Folder != nil {
		n := w.Folder.ChildCount
		it.ChildCount = &n
	}
	if w.File != nil {
		it.MimeType = w.File.MimeType
	}
	if p := w.ParentReference; p != nil && (p.DriveID != "" || p.ID != "" || p.Path != "") {
		it.Parent = &ParentRef{DriveID: p.DriveID, ID: p.ID, Path: parentPath(p.Path)}
	}
	if b := w.LastModifiedBy; b != nil && b.User != nil {
		it.LastModifiedBy = &Identity{Name: b.User.DisplayName, Email: b.User.Email}
	}
	return it
}

// parentPath turns Graph's parentReference.path ("/drives/{id}/root:/Reports/2026", or
// "/drive/root:" for the root) into a path from the drive's root ("/Reports/2026", "/").
func parentPath(p string) string {
	if p == "" {
		return ""
	}
	_, rest, ok := strings.Cut(p, "root:")
	if !ok {
		return ""
	}
	if u, err := url.PathUnescape(rest); err == nil {
		rest = u
	}
	if rest == "" {
		return "/"
	}
	return rest
}

// client is the per-call Graph client of the connector.
type client struct {
	*msgraph.Client
}

func newClient(ctx *pdk.Context) *client {
	return &client{msgraph.New(ctx, userAgent)}
}

// driveURL is the URL of the drive r names.
func (c *client) driveURL(r DriveRef) (string, error) {
	switch {
	case r.DriveID != "" && r.SiteID != "":
		return "", pdk.Errorf(abi.CodeInvalidInput, "give drive_id or site_id, not both (drive_id names a library of any site)")
	case r.DriveID != "":
		return c.URL("/drives/" + escapeSegment(r.DriveID)), nil
	case r.SiteID != "":
		return c.URL("/sites/" + escapeSegment(r.SiteID) + "/drive"), nil
	}
	return c.UserURL("/drive"), nil
}

// itemURL is the URL of the item r names: .../items/{id}, .../root:/a/b: or .../root.
func (c *client) itemURL(r ItemRef) (string, error) {
	d, err := c.driveURL(r.DriveRef)
	if err != nil {
		return "", err
	}
	if r.ItemID != "" && r.Path != "" {
		return "", pdk.Errorf(abi.CodeInvalidInput, "give item_id or path, not both")
	}
	if r.ItemID != "" {
		return d + "/items/" + escapeSegment(r.ItemID), nil
	}
	segs, err := splitPath("path", r.Path)
	if err != nil {
		return "", err
	}
	return d + rootPath(segs), nil
}

// rootPath addresses segs from the root: "/root" or "/root:/a/b:".
func rootPath(segs []string) string {
	if len(segs) == 0 {
		return "/root"
	}
	esc := make([]string, len(segs))
	for i, s := range segs {
		esc[i] = escapeSegment(s)
	}
	return "/root:/" + strings.Join(esc, "/") + ":"
}

// splitPath checks a drive path and returns its segments; "" and "/" are the root.
func splitPath(field, p string) ([]string, error) {
	var segs []string
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		switch s {
		case "":
			if strings.Trim(p, "/") != "" {
				return nil, pdk.Errorf(abi.CodeInvalidInput, "%s %q has an empty segment (//); write it as /Folder/file.txt", field, p)
			}
		case ".", "..":
			return nil, pdk.Errorf(abi.CodeInvalidInput, "%s %q has a %q segment; give the path from the drive's root without . or ..", field, p, s)
		default:
			segs = append(segs, s)
		}
	}
	return segs, nil
}

// escapeSegment percent-escapes one path segment, ':' included (it ends a root:/path: address).
func escapeSegment(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
}

// checkName refuses a file or folder name SharePoint and OneDrive do not accept.
func checkName(field, name string) error {
	switch {
	case name == "":
		return pdk.Errorf(abi.CodeInvalidInput, "%s is required", field)
	case strings.ContainsAny(name, `"*:<>?/\|`):
		return pdk.Errorf(abi.CodeInvalidInput, "%s %q has a character SharePoint and OneDrive do not allow in names (\" * : < > ? / \\ |)", field, name)
	case name == "." || name == ".." || strings.TrimSpace(name) != name || strings.HasSuffix(name, "."):
		return pdk.Errorf(abi.CodeInvalidInput, "%s %q: names may not be . or .., start or end with a space, or end with a period", field, name)
	}
	return nil
}

// conflictBehavior checks a conflict input against Graph's values, defaulting to def.
func conflictBehavior(s, def string) (string, error) {
	switch s {
	case "":
		return def, nil
	case "fail", "replace", "rename":
		return s, nil
	}
	return "", pdk.Errorf(abi.CodeInvalidInput, "conflict %q: use fail, replace or rename", s)
}

// --- list_sites ---

// ListSitesInput is the input of list_sites.
type ListSitesInput struct {
	Search string `json:"search,omitempty" jsonschema:"Words in the site's name or description; empty lists every site" maxLength:"256"`
	Top    int    `json:"top,omitempty" jsonschema:"Sites per page" minimum:"1" maximum:"200" default:"50"`
	Cursor string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page" maxLength:"4096"`
}

// Site is a SharePoint site.
type Site struct {
	ID          string    `json:"id" jsonschema:"hostname,site-collection-guid,web-guid: the site_id of the other actions"`
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name,omitempty"`
	Description string    `json:"description,omitempty"`
	WebURL      string    `json:"web_url,omitempty"`
	Created     time.Time `json:"created_date_time,omitzero"`
}

// ListSitesOutput is the output of list_sites.
type ListSitesOutput struct {
	Sites      []Site `json:"sites"`
	NextCursor string `json:"next_cursor,omitempty" jsonschema:"Pass as cursor for the next page; absent on the last page"`
}

type wireSite struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	DisplayName string    `json:"displayName"`
	Description string    `json:"description"`
	WebURL      string    `json:"webUrl"`
	Created     time.Time `json:"createdDateTime"`
}

func listSites(ctx *pdk.Context, in ListSitesInput) (ListSitesOutput, error) {
	c := newClient(ctx)
	u, err := c.pageURL(in.Cursor, func() string {
		search := in.Search
		if search == "" {
			search = "*"
		}
		return c.URL("/sites?" + url.Values{"search": {search}, "$top": {strconv.Itoa(topOr(in.Top, 50))}}.Encode())
	})
	if err != nil {
		return ListSitesOutput{}, err
	}
	var page msgraph.Page[wireSite]
	if _, err := c.HTTP.GetJSON(u, &page); err != nil {
		return ListSitesOutput{}, err
	}
	out := ListSitesOutput{Sites: []Site{}, NextCursor: page.NextLink}
	for _, s := range page.Value {
		out.Sites = append(out.Sites, Site{ID: s.ID, Name: s.Name, DisplayName: s.DisplayName, Description: s.Description, WebURL: s.WebURL, Created: s.Created})
	}
	return out, nil
}

// pageURL is the cursor (a Graph nextLink, checked to be on the connection's Graph origin) or,
// without one, the first page's URL.
func (c *client) pageURL(cursor string, first func() string) (string, error) {
	if cursor == "" {
		return first(), nil
	}
	if err := c.CheckLink("the cursor", cursor); err != nil {
		return "", err
	}
	return cursor, nil
}

func topOr(top, def int) int {
	if top <= 0 {
		return def
	}
	return top
}

// --- list_drives ---

// ListDrivesInput is the input of list_drives.
type ListDrivesInput struct {
	SiteID string `json:"site_id,omitempty" jsonschema:"Site id from list_sites; omit for the user's own drives" maxLength:"512"`
}

// Drive is a document library or a OneDrive.
type Drive struct {
	ID        string    `json:"id" jsonschema:"The drive_id of the other actions"`
	Name      string    `json:"name"`
	DriveType string    `json:"drive_type" jsonschema:"documentLibrary (SharePoint), business (OneDrive for Business) or personal"`
	WebURL    string    `json:"web_url,omitempty"`
	Owner     string    `json:"owner,omitempty" jsonschema:"Display name of the owner"`
	Created   time.Time `json:"created_date_time,omitzero"`
	QuotaUsed *int64    `json:"quota_used,omitempty" jsonschema:"Bytes used"`
	QuotaSize *int64    `json:"quota_total,omitempty" jsonschema:"Bytes available in all"`
}

// ListDrivesOutput is the output of list_drives.
type ListDrivesOutput struct {
	Drives []Drive `json:"drives"`
}

type wireDrive struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	DriveType string    `json:"driveType"`
	WebURL    string    `json:"webUrl"`
	Created   time.Time `json:"createdDateTime"`
	Owner     *struct {
		User *struct {
			DisplayName string `json:"displayName"`
		} `json:"user"`
		Group *struct {
			DisplayName string `json:"displayName"`
		} `json:"group"`
	} `json:"owner"`
	Quota *struct {
		Total *int64 `json:"total"`
		Used  *int64 `json:"used"`
	} `json:"quota"`
}

func listDrives(ctx *pdk.Context, in ListDrivesInput) (ListDrivesOutput, error) {
	c := newClient(ctx)
	u := c.UserURL("/drives")
	if in.SiteID != "" {
		u = c.URL("/sites/" + escapeSegment(in.SiteID) + "/drives")
	}
	out := ListDrivesOutput{Drives: []Drive{}}
	// A site has a handful of libraries; follow Graph's paging to the end (bounded).
	for page := 0; u != "" && page < 20; page++ {
		var p msgraph.Page[wireDrive]
		if _, err := c.HTTP.GetJSON(u, &p); err != nil {
			return ListDrivesOutput{}, err
		}
		for _, d := range p.Value {
			dr := Drive{ID: d.ID, Name: d.Name, DriveType: d.DriveType, WebURL: d.WebURL, Created: d.Created}
			if o := d.Owner; o != nil && o.User != nil {
				dr.Owner = o.User.DisplayName
			} else if o != nil && o.Group != nil {
				dr.Owner = o.Group.DisplayName
			}
			if q := d.Quota; q != nil {
				dr.QuotaUsed, dr.QuotaSize = q.Used, q.Total
			}
			out.Drives = append(out.Drives, dr)
		}
		u = p.NextLink
		if u != "" && !c.Owns(u) {
			return ListDrivesOutput{}, pdk.Errorf(abi.CodeUpstreamError, "Graph answered a next page %q outside %s", u, c.Base)
		}
	}
	return out, nil
}

// --- list_items, get_item ---

// ListItemsInput is the input of list_items.
type ListItemsInput struct {
	ItemRef
	Top    int    `json:"top,omitempty" jsonschema:"Items per page" minimum:"1" maximum:"999" default:"100"`
	Cursor string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page; the other fields are then ignored" maxLength:"4096"`
}

// ListItemsOutput is the output of list_items.
type ListItemsOutput struct {
	Items      []Item `json:"items"`
	NextCursor string `json:"next_cursor,omitempty" jsonschema:"Pass as cursor for the next page; absent on the last page"`
}

func listItems(ctx *pdk.Context, in ListItemsInput) (ListItemsOutput, error) {
	c := newClient(ctx)
	u, err := c.pageURL(in.Cursor, func() string { return "" })
	if err != nil {
		return ListItemsOutput{}, err
	}
	if u == "" {
		base, err := c.itemURL(in.ItemRef)
		if err != nil {
			return ListItemsOutput{}, err
		}
		u = base + "/children?" + url.Values{"$top": {strconv.Itoa(topOr(in.Top, 100))}}.Encode()
	}
	var page msgraph.Page[wireItem]
	if _, err := c.HTTP.GetJSON(u, &page); err != nil {
		return ListItemsOutput{}, err
	}
	out := ListItemsOutput{Items: []Item{}, NextCursor: page.NextLink}
	for _, w := range page.Value {
		out.Items = append(out.Items, w.item())
	}
	return out, nil
}

func getItem(ctx *pdk.Context, in ItemRef) (Item, error) {
	c := newClient(ctx)
	w, err := c.getWireItem(in)
	if err != nil {
		return Item{}, err
	}
	return w.item(), nil
}

func (c *client) getWireItem(in ItemRef) (wireItem, error) {
	u, err := c.itemURL(in)
	if err != nil {
		return wireItem{}, err
	}
	var w wireItem
	if _, err := c.HTTP.GetJSON(u, &w); err != nil {
		return wireItem{}, err
	}
	return w, nil
}

// --- create_folder, delete_item ---

// ParentRefInput names the folder something goes into: path or parent_id (the root by default).
type ParentRefInput struct {
	DriveRef
	ParentID string `json:"parent_id,omitempty" jsonschema:"Id of the parent folder. Give parent_id or path, not both; neither means the root." maxLength:"512"`
	Path     string `json:"path,omitempty" jsonschema:"Path of the parent folder from the drive's root, such as /Reports/2026" maxLength:"2048"`
}

// CreateFolderInput is the input of create_folder.
type CreateFolderInput struct {
	ParentRefInput
	Name     string `json:"name" jsonschema:"The new folder's name" minLength:"1" maxLength:"255"`
	Conflict string `json:"conflict,omitempty" jsonschema:"When the name exists: fail, rename (adds a number) or replace" enum:"fail,rename,replace" default:"fail"`
}

func createFolder(ctx *pdk.Context, in CreateFolderInput) (Item, error) {
	if err := checkName("name", in.Name); err != nil {
		return Item{}, err
	}
	conflict, err := conflictBehavior(in.Conflict, "fail")
	if err != nil {
		return Item{}, err
	}
	c := newClient(ctx)
	parent, err := c.itemURL(ItemRef{DriveRef: in.DriveRef, ItemID: in.ParentID, Path: in.Path})
	if err != nil {
		return Item{}, err
	}
	body := map[string]any{"name": in.Name, "folder": map[string]any{}, "@microsoft.graph.conflictBehavior": conflict}
	var w wireItem
	if resp, err := c.HTTP.PostJSON(parent+"/children", body, &w); err != nil {
		return Item{}, conflictHint(resp, err)
	}
	return w.item(), nil
}

// conflictHint adds what to do to Graph's nameAlreadyExists.
func conflictHint(resp *pdk.Response, err error) error {
	if resp == nil || resp.Status != 409 {
		return err
	}
	if e, ok := err.(*abi.Error); ok {
		c := *e
		c.Message += "; set conflict to rename or replace"
		return &c
	}
	return err
}

// DeleteOutput is the output of delete_item.
type DeleteOutput struct {
	Deleted bool `json:"deleted"`
}

func deleteItem(ctx *pdk.Context, in ItemRef) (DeleteOutput, error) {
	if in.ItemID == "" && strings.Trim(in.Path, "/") == "" {
		return DeleteOutput{}, pdk.Errorf(abi.CodeInvalidInput, "give item_id or path of the item to delete (a drive's root cannot be deleted)")
	}
	c := newClient(ctx)
	u, err := c.itemURL(in)
	if err != nil {
		return DeleteOutput{}, err
	}
	if _, err := c.HTTP.DoJSON("DELETE", u, nil, nil); err != nil {
		return DeleteOutput{}, err
	}
	return DeleteOutput{Deleted: true}, nil
}
