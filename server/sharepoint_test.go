package server

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

// sharepointEnv is a server with the real sharepoint.wasm and an oauth2 connection "m365" made
// ready through the real OAuth server, whose tokens the Graph fake checks.
type sharepointEnv struct{ *graphEnv }

func newSharePointEnv(t *testing.T, edit func(*Options)) *sharepointEnv {
	t.Helper()
	env := &sharepointEnv{newGraphEnv(t, edit, "sharepoint")}
	oa, fake := env.oa, env.fake
	doc := env.must(201, env.do("POST", "/v1/connections", map[string]any{
		"id": "m365", "connectors": []string{"sharepoint"},
		"params": map[string]any{"base_url": fake.URL, "download_origin": fake.DownloadURL},
		"auth": map[string]any{"type": "oauth2", "client_id": oauthClientID, "client_secret": oauthClientSecret,
			"authorization_url": oa.Issuer + "/authorize", "token_url": oa.Issuer + "/token"},
	})).json(t)
	if _, r := env.consent(doc["consent_url"].(string)); r.Status != 200 {
		t.Fatalf("consent: %d %s", r.Status, r.Body)
	}
	return env
}

// call invokes a sharepoint action on m365 and returns the response.
func (e *sharepointEnv) call(action string, input map[string]any) response {
	e.t.Helper()
	return e.invoke("sharepoint", action, map[string]any{"connection": "m365", "input": input})
}

// output invokes an action that must succeed and returns its output.
func (e *sharepointEnv) output(action string, input map[string]any) map[string]any {
	e.t.Helper()
	return e.must(200, e.call(action, input)).json(e.t)["output"].(map[string]any)
}

// Every action of the sharepoint connector through the real server, host and OAuth flow:
// downloads follow Graph's 302 to the pre-authenticated host without the credential (and the
// leak check is shown to catch a request that carries one), a large upload goes in chunks to
// the upload session, and a 503 with Retry-After is retried by the host.
func TestSharePointActionsEndToEnd(t *testing.T) {
	e := newSharePointEnv(t, func(o *Options) { o.MaxBodyBytes = 16 << 20 })
	fake := e.fake
	site := fake.AddSite("Finance")
	fake.AddFile(site.DriveID, "/Reports/q1.csv", []byte("q,1\n"))

	sites := e.output("list_sites", map[string]any{"search": "fin"})["sites"].([]any)
	if len(sites) != 1 || sites[0].(map[string]any)["id"] != site.ID {
		t.Fatalf("sites = %v", sites)
	}
	drives := e.output("list_drives", map[string]any{"site_id": site.ID})["drives"].([]any)
	if len(drives) != 1 || drives[0].(map[string]any)["id"] != site.DriveID {
		t.Fatalf("drives = %v", drives)
	}
	if mine := e.output("list_drives", nil)["drives"].([]any); len(mine) != 1 || mine[0].(map[string]any)["id"] != fake.UserDriveID() {
		t.Fatalf("the user's drives = %v", mine)
	}
	items := e.output("list_items", map[string]any{"drive_id": site.DriveID, "path": "/Reports"})["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["name"] != "q1.csv" {
		t.Fatalf("items = %v", items)
	}

	// Upload, read back, download through the redirect.
	up := e.output("upload_file", map[string]any{"site_id": site.ID, "path": "/Reports/notes.txt", "text": "héllo from plugboard"})
	if up["name"] != "notes.txt" || up["size"] != float64(len("héllo from plugboard")) {
		t.Fatalf("uploaded = %v", up)
	}
	got := e.output("get_item", map[string]any{"drive_id": site.DriveID, "item_id": up["id"]})
	if got["e_tag"] != up["e_tag"] || got["parent"].(map[string]any)["path"] != "/Reports" {
		t.Errorf("get_item = %v", got)
	}
	dl := e.output("download_file", map[string]any{"site_id": site.ID, "path": "/Reports/notes.txt", "as": "text"})
	if dl["text"] != "héllo from plugboard" {
		t.Fatalf("download = %v", dl)
	}
	var downloads []graphfake.Request
	for _, r := range fake.Requests() {
		if strings.HasPrefix(r.Path, "/download/") {
			downloads = append(downloads, r)
		}
	}
	if len(downloads) != 1 || downloads[0].Status != 200 || downloads[0].Authorization != "" {
		t.Fatalf("download host requests = %+v", downloads)
	}
	if leaks := fake.CredentialLeaks(); len(leaks) != 0 {
		t.Fatalf("the credential reached the download host: %+v", leaks)
	}

	// A large upload goes through an upload session, in 320 KiB-multiple chunks without the
	// credential.
	big := bytes.Repeat([]byte("0123456789"), 550_000) // 5.5 MB
	bigUp := e.output("upload_file", map[string]any{"path": "/Media/big.bin", "content_base64": base64.StdEncoding.EncodeToString(big)})
	stored, ok := fake.Item(fake.UserDriveID(), "/Media/big.bin")
	if !ok || !bytes.Equal(stored.Content, big) || bigUp["id"] != stored.ID {
		t.Fatalf("large upload: %v (%d bytes stored)", bigUp, len(stored.Content))
	}
	if n := fake.CountRequests("PUT", "/upload/"); n != 2 || fake.UploadSessions() != 0 {
		t.Errorf("%d chunk PUTs, %d sessions open", n, fake.UploadSessions())
	}
	b64 := e.output("download_file", map[string]any{"path": "/Media/big.bin", "max_bytes": 8 << 20})
	if raw, _ := base64.StdEncoding.DecodeString(b64["content_base64"].(string)); !bytes.Equal(raw, big) {
		t.Errorf("large download: %d bytes", len(raw))
	}
	if r := e.call("download_file", map[string]any{"path": "/Media/big.bin"}); r.Status != 400 || r.code(t) != "invalid_input" ||
		!strings.Contains(string(r.Body), "5500000 bytes") {
		t.Errorf("over max_bytes: %d %s", r.Status, r.Body)
	}
	if leaks := fake.CredentialLeaks(); len(leaks) != 0 {
		t.Fatalf("the credential reached the upload or download host: %+v", leaks)
	}

	// The check can fail: the connection's own token sent straight to the download host is
	// recorded as a leak (and refused there).
	var token string
	for _, r := range fake.Requests() {
		if strings.HasPrefix(r.Authorization, "Bearer ") {
			token = r.Authorization
		}
	}
	req, _ := http.NewRequest("GET", sharepointDownloadLocation(t, fake, token, stored.ID), nil)
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if leaks := fake.CredentialLeaks(); resp.StatusCode != 401 || len(leaks) != 1 || leaks[0].Authorization != token {
		t.Fatalf("a direct request with the token: %d, leaks %+v", resp.StatusCode, leaks)
	}

	// A 503 with Retry-After 1 on a GET is retried by the host and succeeds.
	fake.Throttle("/Reports/q1.csv", 1, http.StatusServiceUnavailable, 1)
	start := time.Now()
	if it := e.output("get_item", map[string]any{"site_id": site.ID, "path": "/Reports/q1.csv"}); it["name"] != "q1.csv" {
		t.Errorf("after the retry: %v", it)
	}
	if n := fake.CountRequests("GET", "/Reports/q1.csv"); n != 2 || time.Since(start) < 900*time.Millisecond {
		t.Errorf("%d requests in %s, want the 503 and a retry after about 1 s", n, time.Since(start))
	}

	// Folders, conflicts, deletes.
	folder := e.output("create_folder", map[string]any{"site_id": site.ID, "path": "/Reports", "name": "2026"})
	if folder["is_folder"] != true || folder["name"] != "2026" {
		t.Errorf("folder = %v", folder)
	}
	if r := e.call("create_folder", map[string]any{"site_id": site.ID, "path": "/Reports", "name": "2026"}); r.Status != 409 || r.code(t) != "conflict" {
		t.Errorf("an existing folder: %d %s", r.Status, r.Body)
	}
	if del := e.output("delete_item", map[string]any{"drive_id": site.DriveID, "item_id": folder["id"]}); del["deleted"] != true {
		t.Errorf("delete = %v", del)
	}
	if r := e.call("delete_item", map[string]any{"drive_id": site.DriveID, "item_id": folder["id"]}); r.Status != 404 || r.code(t) != "not_found" {
		t.Errorf("deleting again: %d %s", r.Status, r.Body)
	}
	if r := e.call("get_item", map[string]any{"drive_id": site.DriveID, "path": "/a/../b"}); r.Status != 400 || r.code(t) != "invalid_input" {
		t.Errorf("a .. path: %d %s", r.Status, r.Body)
	}
}

// sharepointDownloadLocation asks Graph for a file's content with token and returns the redirect's
// Location, without following it.
func sharepointDownloadLocation(t *testing.T, fake *graphfake.Fake, token, itemID string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", fake.URL+"/v1.0/me/drive/items/"+itemID+"/content", nil)
	req.Header.Set("Authorization", token)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 302 || !strings.HasPrefix(loc, fake.DownloadURL) {
		t.Fatalf("content: %d, Location %q", resp.StatusCode, loc)
	}
	return loc
}

// file_changed with queue delivery: the files that existed before the subscription are not
// replayed; added, updated and deleted files arrive once each.
func TestSharePointFileChangedEndToEnd(t *testing.T) {
	e := newSharePointEnv(t, func(o *Options) { o.Triggers.Tick = 50 * time.Millisecond })
	fake := e.fake
	drive := fake.UserDriveID()
	fake.AddFile(drive, "/Old/existing.txt", []byte("before the subscription"))

	sub := e.must(201, e.do("POST", "/v1/subscriptions", map[string]any{"connector": "sharepoint", "trigger": "file_changed",
		"connection": "m365", "params": map[string]any{}, "interval_s": 15, "delivery": map[string]any{"type": "queue"}})).json(t)["id"].(string)
	if n := fake.CountRequests("GET", "/root/delta"); n != 1 {
		t.Fatalf("%d delta requests after the subscription, want the baseline", n)
	}
	a := fake.AddFile(drive, "/Docs/a.txt", []byte("a"))
	b := fake.AddFile(drive, "/Docs/b.txt", []byte("b"))
	first := e.drain(sub, 2, 30*time.Second)
	checkSharePointEvents(t, first, "created:"+a.ID+":"+a.ETag, "created:"+b.ID+":"+b.ETag)

	a2 := fake.UpdateFile(drive, "/Docs/a.txt", []byte("a, edited"))
	fake.DeleteItem(drive, "/Docs/b.txt")
	second := e.drain(sub, 2, 30*time.Second)
	checkSharePointEvents(t, second, "updated:"+a.ID+":"+a2.ETag, "deleted:"+b.ID+":deleted")
	if d := second[0]["data"].(map[string]any); d["size"] != 9.0 || d["name"] != "a.txt" {
		t.Errorf("updated data = %v", d)
	}
	if more := e.pull(sub, "max=10&wait_s=1"); len(more) != 0 {
		t.Errorf("more events than the changes: %v", more)
	}
}

// checkSharePointEvents asserts the delivered events' event_type and source_event_id, in order.
func checkSharePointEvents(t *testing.T, got []map[string]any, want ...string) {
	t.Helper()
	var have []string
	for _, ev := range got {
		if ev["type"] != "sharepoint.file_changed" {
			t.Errorf("event type %v", ev["type"])
		}
		have = append(have, ev["event_type"].(string)+":"+ev["source_event_id"].(string))
	}
	if strings.Join(have, " ") != strings.Join(want, " ") {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
}
