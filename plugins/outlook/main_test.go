package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

func harness(t *testing.T, f *graphfake.Fake, edit ...func(*pdktest.Options)) *pdktest.Harness {
	t.Helper()
	opts := pdktest.Options{
		Connection: &abi.Connection{ID: "m365", Params: map[string]any{"base_url": f.URL}},
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
	if m.Name != "outlook" || m.Version != "1.0.0" || m.Title != "Outlook mail" || m.Description == "" || !m.HasAuthType(abi.AuthOAuth2) {
		t.Errorf("manifest = %+v", m)
	}
	o := m.Auth.OAuth2
	if o == nil || !strings.Contains(o.AuthorizationURL, "login.microsoftonline.com/{tenant}/") || !strings.Contains(o.TokenURL, "/{tenant}/oauth2/v2.0/token") ||
		strings.Join(o.Scopes, " ") != "offline_access Mail.ReadWrite Mail.Send" || o.PKCE == nil || !*o.PKCE {
		t.Errorf("oauth2 = %+v", o)
	}
	if !slices.Equal(m.Hosts, []string{"{base_url}"}) {
		t.Errorf("hosts = %v", m.Hosts)
	}
	if got := h.Origins(); !slices.Contains(got, f.URL) {
		t.Errorf("origins = %v", got)
	}
	var names []string
	for _, a := range m.Actions {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, ","); got != "list_messages,get_message,send_mail,reply,mark_read,move_message" {
		t.Errorf("actions = %s", got)
	}
	for _, name := range []string{"list_messages", "get_message"} {
		if a, _ := m.Action(name); a.Annotations == nil || !a.Annotations.ReadOnly || !a.Annotations.Idempotent {
			t.Errorf("%s is not read-only and idempotent", name)
		}
	}
	if a, _ := m.Action("mark_read"); a.Annotations == nil || !a.Annotations.Idempotent || a.Annotations.ReadOnly {
		t.Errorf("mark_read annotations = %+v", a.Annotations)
	}
	for _, name := range []string{"send_mail", "reply", "move_message"} {
		if a, _ := m.Action(name); a.Annotations != nil && (a.Annotations.ReadOnly || a.Annotations.Idempotent) {
			t.Errorf("%s annotations = %+v", name, a.Annotations)
		}
	}
	// message_received (webhook.go) is the other trigger.
	i := slices.IndexFunc(m.Triggers, func(tr abi.Trigger) bool { return tr.Name == "new_message" })
	if i < 0 || m.Triggers[i].Kind != abi.TriggerPoll || m.Triggers[i].DefaultIntervalS != 60 || m.Triggers[i].MinIntervalS != 15 {
		t.Errorf("new_message is not a poll trigger every 60 s (at least 15 s): %v", i)
	}
}

func TestListMessagesPagingAndOrder(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	base := time.Now().Add(-time.Hour)
	var ids []string
	for i := range 5 {
		m := f.Deliver("inbox", graphfake.NewMessage{Subject: "m" + string(rune('0'+i)), From: "megan@contoso.example", FromName: "Megan", Cc: []string{"x@contoso.example"}, Received: base.Add(time.Duration(i) * time.Minute)})
		ids = append(ids, m.ID)
	}
	f.Deliver("archive", graphfake.NewMessage{Subject: "elsewhere"})

	var out ListMessagesOutput
	if e := h.InvokeInto("list_messages", ListMessagesInput{Top: 2}, &out); e != nil {
		t.Fatal(e)
	}
	if len(out.Messages) != 2 || out.Messages[0].ID != ids[4] || out.Messages[1].ID != ids[3] || out.NextCursor == "" {
		t.Fatalf("first page = %+v", out)
	}
	m := out.Messages[0]
	if m.Subject != "m4" || m.From == nil || m.From.Address != "megan@contoso.example" || m.From.Name != "Megan" || len(m.To) != 1 || m.To[0].Address != graphfake.UserPrincipalName ||
		len(m.Cc) != 1 || m.ReceivedDateTime.IsZero() || m.ParentFolderID == "" || m.WebLink == "" || m.ConversationID == "" || m.Importance != "normal" || m.Body != nil {
		t.Errorf("message = %+v", m)
	}
	var seen []string
	for _, p := range out.Messages {
		seen = append(seen, p.ID)
	}
	cursor := out.NextCursor
	for cursor != "" {
		var next ListMessagesOutput
		if e := h.InvokeInto("list_messages", ListMessagesInput{Cursor: cursor}, &next); e != nil {
			t.Fatal(e)
		}
		for _, p := range next.Messages {
			seen = append(seen, p.ID)
		}
		cursor = next.NextCursor
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(seen, want) {
		t.Errorf("pages = %v, want %v", seen, want)
	}
	var arch ListMessagesOutput
	if e := h.InvokeInto("list_messages", ListMessagesInput{Folder: "archive"}, &arch); e != nil || len(arch.Messages) != 1 || arch.Messages[0].Subject != "elsewhere" || arch.NextCursor != "" {
		t.Errorf("archive = %+v, %v", arch, e)
	}
	q := f.Requests()[0].RawQuery
	if !strings.Contains(q, "orderby=receivedDateTime+desc") || !strings.Contains(q, "select=") {
		t.Errorf("query = %s", q)
	}
}

func TestListMessagesFilterAndSelect(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	f.Deliver("inbox", graphfake.NewMessage{Subject: "read", IsRead: true})
	un := f.Deliver("inbox", graphfake.NewMessage{Subject: "unread", From: "boss@contoso.example"})

	var out ListMessagesOutput
	if e := h.InvokeInto("list_messages", ListMessagesInput{Filter: "isRead eq false and from/emailAddress/address eq 'boss@contoso.example'"}, &out); e != nil {
		t.Fatal(e)
	}
	if len(out.Messages) != 1 || out.Messages[0].ID != un.ID {
		t.Errorf("filtered = %+v", out)
	}
	var sel ListMessagesOutput
	if e := h.InvokeInto("list_messages", ListMessagesInput{Select: []string{"subject"}}, &sel); e != nil {
		t.Fatal(e)
	}
	if len(sel.Messages) != 2 || sel.Messages[0].Subject == "" || sel.Messages[0].From != nil || sel.Messages[0].ID == "" {
		t.Errorf("selected = %+v", sel)
	}
	// Graph's 400 for a filter it refuses is invalid_input with Graph's message.
	_, e := h.Invoke("list_messages", ListMessagesInput{Filter: "startswith(subject,'x')"})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "query filter", "ErrorInvalidUrlQueryFilter")
	if pdktest.Details(t, e)["graph_code"] != "ErrorInvalidUrlQueryFilter" {
		t.Errorf("details = %v", pdktest.Details(t, e))
	}

	_, e = h.Invoke("list_messages", ListMessagesInput{Top: 1001})
	pdktest.WantError(t, e, abi.CodeInvalidInput)
	_, e = h.Invoke("list_messages", ListMessagesInput{Folder: "no such/folder"})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "well-known folder")
	_, e = h.Invoke("list_messages", ListMessagesInput{Select: []string{"sub ject"}})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "select")
	_, e = h.Invoke("list_messages", ListMessagesInput{Cursor: "https://evil.example/v1.0/me/messages"})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "not a Microsoft Graph URL")
	_, e = h.Invoke("list_messages", ListMessagesInput{Folder: "AAMkAGunknownfolder"})
	pdktest.WantError(t, e, abi.CodeNotFound)
}

func TestGetMarkAndMove(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	d := f.Deliver("inbox", graphfake.NewMessage{Subject: "hello", Body: "<p>Hi <b>Adele</b></p>", ContentType: "html"})

	var got Message
	if e := h.InvokeInto("get_message", MessageRef{ID: d.ID}, &got); e != nil {
		t.Fatal(e)
	}
	if got.ID != d.ID || got.Body == nil || got.Body.ContentType != "html" || got.Body.Content != "<p>Hi <b>Adele</b></p>" || got.BodyPreview != "Hi Adele" || got.IsRead {
		t.Errorf("get = %+v", got)
	}
	var marked Message
	if e := h.InvokeInto("mark_read", MarkReadInput{ID: d.ID}, &marked); e != nil || !marked.IsRead {
		t.Errorf("mark_read = %+v, %v", marked, e)
	}
	if m, _ := f.Message(d.ID); !m.IsRead {
		t.Error("the fake's message is not read")
	}
	no := false
	if e := h.InvokeInto("mark_read", MarkReadInput{ID: d.ID, IsRead: &no}, &marked); e != nil || marked.IsRead {
		t.Errorf("mark unread = %+v, %v", marked, e)
	}

	var moved Message
	if e := h.InvokeInto("move_message", MoveInput{ID: d.ID, Folder: "archive"}, &moved); e != nil {
		t.Fatal(e)
	}
	arch := f.Messages("archive")
	if moved.ID == d.ID || len(arch) != 1 || arch[0].ID != moved.ID || moved.ParentFolderID != arch[0].ParentFolderID || len(f.Messages("inbox")) != 0 {
		t.Errorf("moved = %+v, archive = %+v", moved, arch)
	}
	// The old id is gone: not_found with Graph's code.
	_, e := h.Invoke("get_message", MessageRef{ID: d.ID})
	pdktest.WantError(t, e, abi.CodeNotFound, "not found")
	if pdktest.Details(t, e)["graph_code"] != "ErrorItemNotFound" || pdktest.Details(t, e)["request_id"] == nil {
		t.Errorf("details = %v", pdktest.Details(t, e))
	}
	// By folder id too.
	inboxID := ""
	f.Deliver("inbox", graphfake.NewMessage{Subject: "probe"})
	inboxID = f.Messages("inbox")[0].ParentFolderID
	if e := h.InvokeInto("move_message", MoveInput{ID: moved.ID, Folder: inboxID}, &moved); e != nil || moved.ParentFolderID != inboxID {
		t.Errorf("move by id = %+v, %v", moved, e)
	}

	for _, c := range []struct {
		action string
		in     any
		code   string
	}{
		{"get_message", MessageRef{}, abi.CodeInvalidInput},
		{"get_message", MessageRef{ID: "a b"}, abi.CodeInvalidInput},
		{"mark_read", MarkReadInput{ID: "AAMkAGnope"}, abi.CodeNotFound},
		{"move_message", MoveInput{ID: "AAMkAGnope", Folder: "inbox"}, abi.CodeNotFound},
		{"move_message", MoveInput{ID: moved.ID}, abi.CodeInvalidInput},
		{"move_message", MoveInput{ID: moved.ID, Folder: "AAMkAGnofolder"}, abi.CodeNotFound},
		{"reply", ReplyInput{ID: "AAMkAGnope", Comment: "x"}, abi.CodeNotFound},
	} {
		_, e := h.Invoke(c.action, c.in)
		if e == nil || e.Code != c.code {
			t.Errorf("%s %+v = %v, want %s", c.action, c.in, e, c.code)
		}
	}
}

func TestSendMailAndReply(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	var out SentOutput
	if e := h.InvokeInto("send_mail", SendMailInput{To: []string{"megan@contoso.example", graphfake.UserPrincipalName}, Cc: []string{"c@contoso.example"},
		Bcc: []string{"b@contoso.example"}, Subject: "Report", Body: "<h1>Q3</h1>", ContentType: "html"}, &out); e != nil || !out.Sent {
		t.Fatalf("send_mail = %+v, %v", out, e)
	}
	sent := f.Sent()
	if len(sent) != 1 || sent[0].Subject != "Report" || sent[0].Body.ContentType != "html" || len(sent[0].ToRecipients) != 2 ||
		len(sent[0].CcRecipients) != 1 || len(sent[0].BccRecipients) != 1 {
		t.Fatalf("sent = %+v", sent)
	}
	// To self: delivered to the inbox.
	if in := f.Messages("inbox"); len(in) != 1 || in[0].Subject != "Report" {
		t.Errorf("inbox = %+v", in)
	}
	no := false
	if e := h.InvokeInto("send_mail", SendMailInput{To: []string{"megan@contoso.example"}, Subject: "no copy", SaveToSent: &no}, &out); e != nil {
		t.Fatal(e)
	}
	if len(f.Sent()) != 1 {
		t.Errorf("save_to_sent false kept a copy: %+v", f.Sent())
	}
	var body map[string]any
	for _, r := range h.Requests() {
		if strings.HasSuffix(r.URL, "/me/sendMail") && r.Body != nil {
			json.Unmarshal([]byte(*r.Body), &body)
		}
	}
	if body["saveToSentItems"] != false || body["message"].(map[string]any)["body"].(map[string]any)["contentType"] != "text" {
		t.Errorf("last sendMail body = %v", body)
	}

	for _, in := range []SendMailInput{{}, {To: []string{"not an address"}}, {To: []string{"a@b.example"}, ContentType: "rtf"}, {To: []string{"a@b.example"}, Cc: []string{"x"}}} {
		_, e := h.Invoke("send_mail", in)
		pdktest.WantError(t, e, abi.CodeInvalidInput)
	}

	// reply to a message from someone else: saved to sentitems only; from self: delivered too.
	other := f.Deliver("inbox", graphfake.NewMessage{Subject: "Lunch?", From: "megan@contoso.example"})
	var rep RepliedOutput
	if e := h.InvokeInto("reply", ReplyInput{ID: other.ID, Comment: "Yes!"}, &rep); e != nil || !rep.Replied {
		t.Fatalf("reply = %+v, %v", rep, e)
	}
	s := f.Sent()[0]
	if s.Subject != "RE: Lunch?" || s.ToRecipients[0].EmailAddress.Address != "megan@contoso.example" || !strings.HasPrefix(s.Body.Content, "Yes!") || s.ConversationID != other.ConversationID {
		t.Errorf("reply = %+v", s)
	}
	inbox := len(f.Messages("inbox"))
	self := f.Messages("inbox")[len(f.Messages("inbox"))-1] // the "Report" sent to self
	if e := h.InvokeInto("reply", ReplyInput{ID: self.ID, Comment: "noted"}, &rep); e != nil {
		t.Fatal(e)
	}
	if n := len(f.Messages("inbox")); n != inbox+1 {
		t.Errorf("a reply to self did not reach the inbox: %d messages, had %d", n, inbox)
	}
}

func TestThrottledIsRateLimited(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	f.Throttle("/messages", 1, 429, 7)
	_, e := h.Invoke("list_messages", ListMessagesInput{})
	pdktest.WantError(t, e, abi.CodeRateLimited)
	if d := pdktest.Details(t, e); d["retry_after_s"] != float64(7) || d["graph_code"] != "TooManyRequests" {
		t.Errorf("details = %v", d)
	}
	if _, e := h.Invoke("list_messages", ListMessagesInput{}); e != nil {
		t.Errorf("after the throttle: %v", e)
	}
}

func TestClientCredentialsUser(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f, func(o *pdktest.Options) { o.Connection.Params["user"] = graphfake.UserPrincipalName })
	d := f.Deliver("inbox", graphfake.NewMessage{Subject: "app-only"})
	var out ListMessagesOutput
	if e := h.InvokeInto("list_messages", ListMessagesInput{}, &out); e != nil || len(out.Messages) != 1 || out.Messages[0].ID != d.ID {
		t.Fatalf("list = %+v, %v", out, e)
	}
	if e := h.InvokeInto("send_mail", SendMailInput{To: []string{"x@contoso.example"}}, &SentOutput{}); e != nil {
		t.Fatal(e)
	}
	want := "/v1.0/users/" + graphfake.UserPrincipalName + "/"
	for _, r := range f.Requests() {
		if !strings.HasPrefix(r.Path, want) {
			t.Errorf("request %s %s is not under %s", r.Method, r.Path, want)
		}
	}
	if strings.Contains(out.NextCursor, "/me/") {
		t.Errorf("cursor %s", out.NextCursor)
	}
}
