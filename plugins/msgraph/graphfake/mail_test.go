package graphfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// mailCall sends a Graph request to the fake with the test token and returns the status, the
// decoded body (nil when empty) and the headers.
func mailCall(t *testing.T, f *Fake, method, u string, body any, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	if !strings.HasPrefix(u, "http") {
		u = f.URL + "/v1.0" + u
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("Authorization", "Bearer "+Token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s %s: %v: %s", method, u, err, raw)
		}
	}
	return resp.StatusCode, doc, resp.Header
}

func mailIDs(doc map[string]any) []string {
	var ids []string
	for _, v := range doc["value"].([]any) {
		ids = append(ids, v.(map[string]any)["id"].(string))
	}
	return ids
}

func mailCode(doc map[string]any) string {
	e, _ := doc["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestMailListPagingSelectOrder(t *testing.T) {
	f := New(t)
	base := time.Now().Add(-time.Hour)
	var ids []string
	for i := range 5 {
		ids = append(ids, f.Deliver("inbox", NewMessage{Subject: "s", Received: base.Add(time.Duration(i) * time.Minute)}).ID)
	}
	f.Deliver("archive", NewMessage{Subject: "a"})
	status, doc, _ := mailCall(t, f, "GET", "/me/mailFolders/inbox/messages?$top=2&$select=subject", nil)
	if status != 200 || strings.Join(mailIDs(doc), ",") != ids[4]+","+ids[3] {
		t.Fatalf("page 1: %d %v", status, doc)
	}
	first := doc["value"].([]any)[0].(map[string]any)
	if first["subject"] != "s" || first["from"] != nil || first["@odata.etag"] == nil {
		t.Errorf("selected = %v", first)
	}
	next, _ := doc["@odata.nextLink"].(string)
	if u, err := url.Parse(next); err != nil || u.Query().Get("$skip") != "2" || u.Query().Get("$select") != "subject" {
		t.Fatalf("nextLink %q", next)
	}
	// users/{upn} and users/{id} are the same mailbox; an unknown folder is 404.
	_, doc, _ = mailCall(t, f, "GET", "/users/"+UserPrincipalName+"/mailFolders/Inbox/messages?$orderby=receivedDateTime+asc&$top=10", nil)
	if strings.Join(mailIDs(doc), ",") != strings.Join(ids, ",") {
		t.Errorf("ascending = %v", mailIDs(doc))
	}
	if _, doc, _ = mailCall(t, f, "GET", "/users/"+UserID+"/messages", nil); len(mailIDs(doc)) != 6 {
		t.Errorf("all messages = %v", mailIDs(doc))
	}
	if status, doc, _ := mailCall(t, f, "GET", "/me/mailFolders/nope/messages", nil); status != 404 || mailCode(doc) != "ErrorItemNotFound" {
		t.Errorf("unknown folder: %d %v", status, doc)
	}
	if status, doc, _ := mailCall(t, f, "GET", "/me/messages?$select=nope", nil); status != 400 || mailCode(doc) == "" {
		t.Errorf("unknown property: %d %v", status, doc)
	}
}

func TestMailFilterSubset(t *testing.T) {
	f := New(t)
	old := f.Deliver("inbox", NewMessage{Subject: "old", IsRead: true, Received: time.Now().Add(-48 * time.Hour)})
	boss := f.Deliver("inbox", NewMessage{Subject: "boss", From: "boss@contoso.example", HasAttachments: true})
	q := func(filter string, orderby ...string) (int, map[string]any) {
		v := url.Values{"$filter": {filter}}
		if len(orderby) > 0 {
			v.Set("$orderby", orderby[0])
		}
		s, d, _ := mailCall(t, f, "GET", "/me/messages?"+v.Encode(), nil)
		return s, d
	}
	for filter, want := range map[string]string{
		"isRead eq true":  old.ID,
		"isRead eq false": boss.ID,
		"receivedDateTime lt " + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339):                                 old.ID,
		"receivedDateTime ge " + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + " and hasAttachments eq true": boss.ID,
		"from/emailAddress/address eq 'BOSS@contoso.example'":                                                          boss.ID,
	} {
		if s, d := q(filter); s != 200 || strings.Join(mailIDs(d), ",") != want {
			t.Errorf("%s: %d %v", filter, s, d)
		}
	}
	for _, filter := range []string{"subject eq 'x'", "isRead eq maybe", "contains(subject,'a')"} {
		if s, d := q(filter); s != 400 || mailCode(d) != "ErrorInvalidUrlQueryFilter" || !strings.Contains(d["error"].(map[string]any)["message"].(string), "filter") {
			t.Errorf("%s: %d %v", filter, s, d)
		}
	}
	// $orderby with $filter: the ordered property must come first in the filter.
	if s, d := q("isRead eq false", "receivedDateTime desc"); s != 400 || mailCode(d) != "InefficientFilter" {
		t.Errorf("orderby after another filter: %d %v", s, d)
	}
	if s, _ := q("receivedDateTime ge 2000-01-01T00:00:00Z and isRead eq false", "receivedDateTime desc"); s != 200 {
		t.Errorf("orderby matching the filter: %d", s)
	}
}

func TestMailGetPatchMoveAndErrors(t *testing.T) {
	f := New(t)
	m := f.Deliver("inbox", NewMessage{Subject: "hi", Body: "<p>Hello</p>", ContentType: "html"})
	status, doc, _ := mailCall(t, f, "GET", "/me/messages/"+m.ID, nil)
	body := doc["body"].(map[string]any)
	from := doc["from"].(map[string]any)["emailAddress"].(map[string]any)
	if status != 200 || body["contentType"] != "html" || doc["bodyPreview"] != "Hello" || from["address"] == "" || doc["webLink"] == "" ||
		doc["parentFolderId"] != m.ParentFolderID || doc["toRecipients"].([]any)[0].(map[string]any)["emailAddress"].(map[string]any)["address"] != UserPrincipalName {
		t.Errorf("get = %d %v", status, doc)
	}
	status, doc, _ = mailCall(t, f, "PATCH", "/me/messages/"+m.ID, map[string]any{"isRead": true, "categories": []string{"Red"}})
	if status != 200 || doc["isRead"] != true || doc["@odata.etag"] == m.ETag {
		t.Errorf("patch = %d %v", status, doc)
	}
	status, doc, _ = mailCall(t, f, "POST", "/me/messages/"+m.ID+"/move", map[string]any{"destinationId": "deleteditems"})
	if status != 201 || doc["id"] == m.ID || doc["id"] == nil {
		t.Fatalf("move = %d %v", status, doc)
	}
	if _, ok := f.Message(m.ID); ok {
		t.Error("the old id still exists")
	}
	if d := f.Messages("deleteditems"); len(d) != 1 || d[0].ID != doc["id"] || !d[0].IsRead {
		t.Errorf("deleted items = %+v", d)
	}
	status, doc, _ = mailCall(t, f, "GET", "/me/messages/"+m.ID, nil)
	e := doc["error"].(map[string]any)
	inner, _ := e["innerError"].(map[string]any)
	if status != 404 || e["code"] != "ErrorItemNotFound" || e["message"] != "The specified object was not found in the store." || inner["request-id"] == nil || inner["date"] == nil {
		t.Errorf("404 = %d %v", status, doc)
	}
	for _, c := range []struct{ method, path string }{{"PATCH", "/me/messages/nope"}, {"POST", "/me/messages/nope/move"}, {"POST", "/me/messages/nope/reply"}} {
		if s, d, _ := mailCall(t, f, c.method, c.path, map[string]any{"destinationId": "inbox"}); s != 404 || mailCode(d) != "ErrorItemNotFound" {
			t.Errorf("%s %s: %d %v", c.method, c.path, s, d)
		}
	}
	// 401 with WWW-Authenticate without a valid token.
	req, _ := http.NewRequest("GET", f.URL+"/v1.0/me/messages", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("wrong token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestMailSendAndReply(t *testing.T) {
	f := New(t)
	msg := func(to ...string) map[string]any {
		var rs []map[string]any
		for _, a := range to {
			rs = append(rs, map[string]any{"emailAddress": map[string]any{"address": a}})
		}
		return map[string]any{"subject": "S", "body": map[string]any{"contentType": "Text", "content": "hello"}, "toRecipients": rs}
	}
	status, doc, _ := mailCall(t, f, "POST", "/me/sendMail", map[string]any{"message": msg("megan@contoso.example")})
	if status != 202 || doc != nil {
		t.Fatalf("sendMail = %d %v", status, doc)
	}
	if s := f.Sent(); len(s) != 1 || s[0].From.EmailAddress.Address != UserPrincipalName || s[0].Body.ContentType != "text" || len(f.Messages("inbox")) != 0 {
		t.Errorf("sent = %+v", s)
	}
	mailCall(t, f, "POST", "/me/sendMail", map[string]any{"message": msg(UserPrincipalName), "saveToSentItems": false})
	in := f.Messages("inbox")
	if len(f.Sent()) != 1 || len(in) != 1 || in[0].IsRead {
		t.Errorf("to self without a copy: sent %d, inbox %+v", len(f.Sent()), in)
	}
	for _, bad := range []map[string]any{{"message": msg()}, {"message": msg("not-an-address")}} {
		if s, d, _ := mailCall(t, f, "POST", "/me/sendMail", bad); s != 400 || mailCode(d) != "ErrorInvalidRecipients" {
			t.Errorf("bad recipients: %d %v", s, d)
		}
	}
	// Replying to the message from self delivers the reply to the inbox too.
	if s, _, _ := mailCall(t, f, "POST", "/me/messages/"+in[0].ID+"/reply", map[string]any{"comment": "ok"}); s != 202 {
		t.Fatalf("reply = %d", s)
	}
	if s := f.Sent(); len(s) != 2 || s[0].Subject != "RE: S" || s[0].ConversationID != in[0].ConversationID {
		t.Errorf("sent after the reply = %+v", s)
	}
	if n := len(f.Messages("inbox")); n != 2 {
		t.Errorf("inbox has %d messages, want the reply too", n)
	}
}

func TestMailDelta(t *testing.T) {
	f := New(t)
	old := f.Deliver("inbox", NewMessage{Subject: "old", Received: time.Now().Add(-time.Hour)})
	var baseline []string
	for range 3 {
		baseline = append(baseline, f.Deliver("inbox", NewMessage{Subject: "recent"}).ID)
	}
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	u := "/me/mailFolders/inbox/messages/delta?" + url.Values{"changeType": {"created"}, "$select": {"subject"}, "$filter": {"receivedDateTime ge " + since}}.Encode()
	pref := []string{"Prefer", "odata.maxpagesize=2"}
	status, doc, _ := mailCall(t, f, "GET", u, nil, pref...)
	next, _ := doc["@odata.nextLink"].(string)
	if status != 200 || len(mailIDs(doc)) != 2 || !strings.Contains(next, "$skiptoken=") || doc["@odata.deltaLink"] != nil {
		t.Fatalf("baseline page 1: %d %v", status, doc)
	}
	got := mailIDs(doc)
	_, doc, _ = mailCall(t, f, "GET", next, nil, pref...)
	got = append(got, mailIDs(doc)...)
	delta, _ := doc["@odata.deltaLink"].(string)
	if strings.Join(got, ",") != strings.Join(baseline, ",") || !strings.Contains(delta, "$deltatoken=") {
		t.Fatalf("baseline = %v (old %s), deltaLink %q", got, old.ID, delta)
	}
	if v := doc["value"].([]any)[0].(map[string]any); v["subject"] != "recent" || v["from"] != nil {
		t.Errorf("selected delta entry = %v", v)
	}
	// Nothing new: an empty page and a new deltaLink.
	_, doc, _ = mailCall(t, f, "GET", delta, nil)
	if len(mailIDs(doc)) != 0 || doc["@odata.deltaLink"] == nil {
		t.Fatalf("quiet round = %v", doc)
	}
	delta = doc["@odata.deltaLink"].(string)
	n := f.Deliver("inbox", NewMessage{Subject: "new"})
	f.Deliver("archive", NewMessage{Subject: "elsewhere"})
	_, doc, _ = mailCall(t, f, "GET", delta, nil)
	if ids := mailIDs(doc); len(ids) != 1 || ids[0] != n.ID {
		t.Fatalf("created after the deltaLink = %v", ids)
	}
	delta = doc["@odata.deltaLink"].(string)
	// A move out is a removal, listed without changeType=created.
	mailCall(t, f, "POST", "/me/messages/"+n.ID+"/move", map[string]any{"destinationId": "archive"})
	_, doc, _ = mailCall(t, f, "GET", delta, nil)
	if ids := mailIDs(doc); len(ids) != 0 {
		t.Errorf("changeType=created listed %v", ids)
	}
	_, all, _ := mailCall(t, f, "GET", "/me/mailFolders/inbox/messages/delta", nil)
	allDelta := all["@odata.deltaLink"].(string)
	moved := f.Deliver("inbox", NewMessage{Subject: "to move"})
	mailCall(t, f, "POST", "/me/messages/"+moved.ID+"/move", map[string]any{"destinationId": "archive"})
	_, doc, _ = mailCall(t, f, "GET", allDelta, nil)
	var removed int
	for _, v := range doc["value"].([]any) {
		if r, ok := v.(map[string]any)["@removed"].(map[string]any); ok && r["reason"] == "deleted" && v.(map[string]any)["id"] == moved.ID {
			removed++
		}
	}
	if removed != 1 {
		t.Errorf("removals = %v", doc)
	}
	// Bad filters; expired and unknown tokens answer 410.
	if s, d, _ := mailCall(t, f, "GET", "/me/mailFolders/inbox/messages/delta?$filter=isRead+eq+false", nil); s != 400 || mailCode(d) == "" {
		t.Errorf("a filter delta refuses: %d %v", s, d)
	}
	if s, d, _ := mailCall(t, f, "GET", "/me/mailFolders/inbox/messages/delta?$deltatoken=garbage", nil); s != 410 || mailCode(d) != "SyncStateNotFound" {
		t.Errorf("unknown token: %d %v", s, d)
	}
	f.ExpireDeltaTokens()
	if s, d, _ := mailCall(t, f, "GET", allDelta, nil); s != 410 || mailCode(d) != "SyncStateNotFound" {
		t.Errorf("expired token: %d %v", s, d)
	}
	if s, _, _ := mailCall(t, f, "GET", "/me/mailFolders/inbox/messages/delta", nil); s != 200 {
		t.Errorf("a new baseline after the expiry: %d", s)
	}
}
