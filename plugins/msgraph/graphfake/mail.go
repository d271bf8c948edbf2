package graphfake

// The fake user's mailbox, from Graph's message, mailFolder, sendMail, reply, move and
// message delta documentation:
//
//   - Well-known folders (inbox, drafts, sentitems, deleteditems, archive, junkemail) with ids;
//     a folder is addressed by either.
//   - GET {user}/messages and {user}/mailFolders/{folder}/messages page with $top (default 10)
//     and $skip (the @odata.nextLink carries $skip), take $select, $orderby receivedDateTime
//     desc|asc and a $filter subset (isRead, receivedDateTime ge|gt|lt|le, from/emailAddress/
//     address eq, hasAttachments, joined by and); anything else is 400 ErrorInvalidUrlQueryFilter.
//     As Graph, a $orderby with a $filter needs the ordered property first in the filter
//     (400 InefficientFilter otherwise).
//   - Delta (GET {user}/mailFolders/{folder}/messages/delta): the first round lists the folder's
//     messages (filtered by receivedDateTime ge|gt, the only filter message delta supports),
//     Prefer: odata.maxpagesize pages (default 10) linked by $skiptoken, and ends with a
//     deltaLink ($deltatoken) that later returns only the changes after it. Tokens are opaque
//     to clients; [Fake.ExpireDeltaTokens] makes every earlier one answer 410 SyncStateNotFound.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EmailAddress is Graph's emailAddress.
type EmailAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Recipient is Graph's recipient: {"emailAddress": {...}}.
type Recipient struct {
	EmailAddress EmailAddress `json:"emailAddress"`
}

// ItemBody is Graph's itemBody.
type ItemBody struct {
	ContentType string `json:"contentType" jsonschema:"text or html"`
	Content     string `json:"content"`
}

// Message is a message as Graph encodes it.
type Message struct {
	ETag             string      `json:"@odata.etag"`
	ID               string      `json:"id"`
	CreatedDateTime  string      `json:"createdDateTime"`
	ReceivedDateTime string      `json:"receivedDateTime"`
	SentDateTime     string      `json:"sentDateTime"`
	HasAttachments   bool        `json:"hasAttachments"`
	Subject          string      `json:"subject"`
	BodyPreview      string      `json:"bodyPreview"`
	Importance       string      `json:"importance"`
	ParentFolderID   string      `json:"parentFolderId"`
	ConversationID   string      `json:"conversationId"`
	IsRead           bool        `json:"isRead"`
	IsDraft          bool        `json:"isDraft"`
	WebLink          string      `json:"webLink"`
	Body             ItemBody    `json:"body"`
	Sender           *Recipient  `json:"sender"`
	From             *Recipient  `json:"from"`
	ToRecipients     []Recipient `json:"toRecipients"`
	CcRecipients     []Recipient `json:"ccRecipients"`
	BccRecipients    []Recipient `json:"bccRecipients"`
	Categories       []string    `json:"categories"`
}

// NewMessage describes a message for [Fake.Deliver].
type NewMessage struct {
	Subject string
	// Body is the content, ContentType "text" (default) or "html".
	Body, ContentType string
	// From is the sender's address (default "megan.bowen@contoso.example"), FromName its name.
	From, FromName string
	// To and Cc are addresses (To defaults to the fake user).
	To, Cc         []string
	HasAttachments bool
	IsRead         bool
	// Importance is low, normal (default) or high.
	Importance string
	// Received is when it arrived (default now).
	Received time.Time
}

// wellKnownFolders are the well-known folder names the fake has.
var wellKnownFolders = []string{"inbox", "drafts", "sentitems", "deleteditems", "archive", "junkemail"}

var folderDisplayNames = map[string]string{"inbox": "Inbox", "drafts": "Drafts", "sentitems": "Sent Items",
	"deleteditems": "Deleted Items", "archive": "Archive", "junkemail": "Junk Email"}

type mailFolder struct{ id, wellKnown string }

type mailItem struct {
	m        Message
	received time.Time
	seq      int64 // creation order in the change log
}

// mailChange is one entry of the change log delta reads.
type mailChange struct {
	seq     int64
	id      string
	folder  string
	removed bool
}

type mailStore struct {
	folders []mailFolder
	msgs    map[string]*mailItem
	log     []mailChange
	seq     int64
}

func (f *Fake) initMail() {
	f.mail = &mailStore{msgs: map[string]*mailItem{}}
	for _, wk := range wellKnownFolders {
		f.mail.folders = append(f.mail.folders, mailFolder{id: f.nextID("AAMkAGFolder"), wellKnown: wk})
	}
	f.handle("GET", `(?i)/me/messages`, f.mailList)
	f.handle("GET", `(?i)/me/mailFolders/([^/]+)/messages`, f.mailList)
	f.handle("GET", `(?i)/me/mailFolders/([^/]+)/messages/delta`, f.mailDelta)
	f.handle("GET", `(?i)/me/mailFolders/([^/]+)`, f.mailGetFolder)
	f.handle("GET", `(?i)/me/messages/([^/]+)`, f.mailGet)
	f.handle("PATCH", `(?i)/me/messages/([^/]+)`, f.mailPatch)
	f.handle("POST", `(?i)/me/sendMail`, f.mailSend)
	f.handle("POST", `(?i)/me/messages/([^/]+)/reply`, f.mailReply)
	f.handle("POST", `(?i)/me/messages/([^/]+)/move`, f.mailMove)
}

// mailFolderOf resolves a well-known name (any case) or a folder id; the caller holds f.mu
// (the folder list never changes after New, so it is also safe without).
func (f *Fake) mailFolderOf(ref string) (mailFolder, bool) {
	for _, fo := range f.mail.folders {
		if fo.id == ref || strings.EqualFold(fo.wellKnown, ref) {
			return fo, true
		}
	}
	return mailFolder{}, false
}

// findMessage returns a copy of message id and its folder id. It takes no lock: the caller
// holds f.mu.
func (f *Fake) findMessage(id string) (Message, string, bool) {
	it, ok := f.mail.msgs[id]
	if !ok {
		return Message{}, "", false
	}
	return mailCopy(it.m), it.m.ParentFolderID, true
}

func mailCopy(m Message) Message {
	m.ToRecipients = slices.Clone(m.ToRecipients)
	m.CcRecipients = slices.Clone(m.CcRecipients)
	m.BccRecipients = slices.Clone(m.BccRecipients)
	m.Categories = slices.Clone(m.Categories)
	if m.From != nil {
		c := *m.From
		m.From = &c
	}
	if m.Sender != nil {
		c := *m.Sender
		m.Sender = &c
	}
	return m
}

func mailTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

var mailTags = regexp.MustCompile(`<[^>]*>`)

func mailPreview(b ItemBody) string {
	s := b.Content
	if strings.EqualFold(b.ContentType, "html") {
		s = mailTags.ReplaceAllString(s, " ")
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 255 {
		s = string(r[:255])
	}
	return s
}

func mailRecipients(addrs []string) []Recipient {
	out := []Recipient{}
	for _, a := range addrs {
		out = append(out, Recipient{EmailAddress: EmailAddress{Name: a, Address: a}})
	}
	return out
}

// mailStoreNew files m (its id already set) in folder fo with the change log entry, under f.mu.
func (f *Fake) mailStoreNew(m Message, fo mailFolder, received time.Time) {
	f.mail.seq++
	m.ParentFolderID = fo.id
	m.ETag = `W/"CQAAABYAAAD` + strconv.FormatInt(f.mail.seq, 36) + `"`
	m.WebLink = "https://outlook.office365.com/owa/?ItemID=" + url.QueryEscape(m.ID) + "&exvsurl=1&viewmodel=ReadMessageItem"
	if m.CreatedDateTime == "" {
		m.CreatedDateTime = mailTime(time.Now())
	}
	m.BodyPreview = mailPreview(m.Body)
	if m.Categories == nil {
		m.Categories = []string{}
	}
	if m.BccRecipients == nil {
		m.BccRecipients = []Recipient{}
	}
	if m.CcRecipients == nil {
		m.CcRecipients = []Recipient{}
	}
	f.mail.msgs[m.ID] = &mailItem{m: m, received: received, seq: f.mail.seq}
	f.mail.log = append(f.mail.log, mailChange{seq: f.mail.seq, id: m.ID, folder: fo.id})
}

// me is the fake user as a recipient.
func me() *Recipient {
	return &Recipient{EmailAddress: EmailAddress{Name: "Adele Vance", Address: UserPrincipalName}}
}

// Deliver files a new message received now (or at m.Received) in folder (a well-known name or
// an id) and returns it, as mail arriving from outside would. Subscriptions are notified.
func (f *Fake) Deliver(folder string, m NewMessage) Message {
	f.t.Helper()
	fo, ok := f.mailFolderOf(folder)
	if !ok {
		f.t.Fatalf("graphfake: Deliver to unknown folder %q", folder)
	}
	id := f.nextID("AAMkAGMsg")
	conv := f.nextID("AAQkAGConv")
	received := m.Received
	if received.IsZero() {
		received = time.Now()
	}
	from := m.From
	if from == "" {
		from = "megan.bowen@contoso.example"
	}
	name := m.FromName
	if name == "" {
		name = from
	}
	to := m.To
	if len(to) == 0 {
		to = []string{UserPrincipalName}
	}
	ct := m.ContentType
	if ct == "" {
		ct = "text"
	}
	imp := m.Importance
	if imp == "" {
		imp = "normal"
	}
	sender := &Recipient{EmailAddress: EmailAddress{Name: name, Address: from}}
	msg := Message{ID: id, ReceivedDateTime: mailTime(received), SentDateTime: mailTime(received.Add(-2 * time.Second)),
		HasAttachments: m.HasAttachments, Subject: m.Subject, Importance: imp, ConversationID: conv, IsRead: m.IsRead,
		Body: ItemBody{ContentType: ct, Content: m.Body}, Sender: sender, From: sender,
		ToRecipients: mailRecipients(to), CcRecipients: mailRecipients(m.Cc)}
	f.mu.Lock()
	f.mailStoreNew(msg, fo, received)
	out, _, _ := f.findMessage(id)
	f.mu.Unlock()
	f.messageCreated(fo.id, fo.wellKnown, id)
	return out
}

// Messages returns the messages in folder (a well-known name or an id), newest first.
func (f *Fake) Messages(folder string) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	fo, ok := f.mailFolderOf(folder)
	if !ok {
		return nil
	}
	var out []Message
	for _, it := range f.mailSorted(fo.id, true) {
		out = append(out, mailCopy(it.m))
	}
	return out
}

// Sent returns the messages in Sent Items, newest first.
func (f *Fake) Sent() []Message { return f.Messages("sentitems") }

// Message returns message id wherever it is.
func (f *Fake) Message(id string) (Message, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, _, ok := f.findMessage(id)
	return m, ok
}

// mailSorted lists the messages of folderID ("" for all) by receivedDateTime, under f.mu.
func (f *Fake) mailSorted(folderID string, desc bool) []*mailItem {
	var items []*mailItem
	for _, it := range f.mail.msgs {
		if folderID == "" || it.m.ParentFolderID == folderID {
			items = append(items, it)
		}
	}
	slices.SortFunc(items, func(a, b *mailItem) int {
		c := a.received.Compare(b.received)
		if c == 0 {
			c = int(a.seq - b.seq)
		}
		if desc {
			return -c
		}
		return c
	})
	return items
}

func mailNotFound(w http.ResponseWriter) {
	WriteError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
}

// mailFilter is a parsed $filter of the subset the fake knows.
type mailFilter []func(*mailItem) bool

// firstProp is the property of the first clause, for the $orderby rule.
var (
	mailClauseBool = regexp.MustCompile(`(?i)^(isRead|hasAttachments) eq (true|false)$`)
	mailClauseTime = regexp.MustCompile(`(?i)^receivedDateTime (ge|gt|lt|le) '?([0-9T:.+Z-]+)'?$`)
	mailClauseFrom = regexp.MustCompile(`(?i)^from/emailAddress/address eq '([^']*)'$`)
	mailAnd        = regexp.MustCompile(`(?i)\s+and\s+`)
)

func invalidFilter(w http.ResponseWriter, s string) {
	WriteError(w, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes: '"+s+"'.")
}

// parseMailFilter parses s; onlyTime limits it to receivedDateTime ge|gt (message delta).
// It returns the first clause's property (lower case) for the $orderby rule.
func parseMailFilter(s string, onlyTime bool) (mailFilter, string, bool) {
	if strings.TrimSpace(s) == "" {
		return nil, "", true
	}
	var out mailFilter
	first := ""
	for i, c := range mailAnd.Split(strings.TrimSpace(s), -1) {
		c = strings.TrimSpace(c)
		var fn func(*mailItem) bool
		prop := ""
		if m := mailClauseTime.FindStringSubmatch(c); m != nil {
			t, err := time.Parse(time.RFC3339Nano, m[2])
			op := strings.ToLower(m[1])
			if err != nil || (onlyTime && op != "ge" && op != "gt") {
				return nil, "", false
			}
			prop = "receiveddatetime"
			// Graph compares at its stored precision, whole seconds.
			t = t.Truncate(time.Second)
			fn = func(it *mailItem) bool {
				r := it.received.Truncate(time.Second)
				switch op {
				case "ge":
					return !r.Before(t)
				case "gt":
					return r.After(t)
				case "lt":
					return r.Before(t)
				}
				return !r.After(t)
			}
		} else if onlyTime {
			return nil, "", false
		} else if m := mailClauseBool.FindStringSubmatch(c); m != nil {
			want := strings.EqualFold(m[2], "true")
			prop = strings.ToLower(m[1])
			if prop == "isread" {
				fn = func(it *mailItem) bool { return it.m.IsRead == want }
			} else {
				fn = func(it *mailItem) bool { return it.m.HasAttachments == want }
			}
		} else if m := mailClauseFrom.FindStringSubmatch(c); m != nil {
			addr := m[1]
			prop = "from"
			fn = func(it *mailItem) bool {
				return it.m.From != nil && strings.EqualFold(it.m.From.EmailAddress.Address, addr)
			}
		} else {
			return nil, "", false
		}
		if i == 0 {
			first = prop
		}
		out = append(out, fn)
	}
	return out, first, true
}

func (mf mailFilter) match(it *mailItem) bool {
	for _, fn := range mf {
		if !fn(it) {
			return false
		}
	}
	return true
}

// mailSelect encodes m with only the $select properties (plus id and @odata.etag, as Graph).
func mailSelect(m Message, sel string) map[string]any {
	b, _ := json.Marshal(m)
	var all map[string]any
	_ = json.Unmarshal(b, &all)
	if strings.TrimSpace(sel) == "" {
		return all
	}
	out := map[string]any{"id": all["id"], "@odata.etag": all["@odata.etag"]}
	for _, p := range strings.Split(sel, ",") {
		p = strings.TrimSpace(p)
		for k, v := range all {
			if strings.EqualFold(k, p) {
				out[k] = v
			}
		}
	}
	return out
}

var mailSelectOK = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)

// checkSelect answers 400 for a $select naming a property a message does not have.
func checkSelect(w http.ResponseWriter, sel string) bool {
	if strings.TrimSpace(sel) == "" {
		return true
	}
	known, _ := json.Marshal(Message{})
	var props map[string]any
	_ = json.Unmarshal(known, &props)
	for _, p := range strings.Split(sel, ",") {
		p = strings.TrimSpace(p)
		ok := mailSelectOK.MatchString(p)
		if ok {
			ok = false
			for k := range props {
				if strings.EqualFold(k, p) {
					ok = true
				}
			}
		}
		if !ok {
			WriteError(w, http.StatusBadRequest, "RequestBroker--ParseUri", "Could not find a property named '"+p+"' on type 'microsoft.graph.message'.")
			return false
		}
	}
	return true
}

func (f *Fake) mailList(w http.ResponseWriter, r *http.Request, m []string) {
	q := r.URL.Query()
	folderID := ""
	if len(m) > 1 {
		fo, ok := f.mailFolderOf(m[1])
		if !ok {
			mailNotFound(w)
			return
		}
		folderID = fo.id
	}
	top, skip := 10, 0
	if s := q.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			WriteError(w, http.StatusBadRequest, "BadRequest", "Invalid $top value '"+s+"': use an integer from 1 to 1000.")
			return
		}
		top = n
	}
	if s := q.Get("$skip"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			WriteError(w, http.StatusBadRequest, "BadRequest", "Invalid $skip value '"+s+"'.")
			return
		}
		skip = n
	}
	filter, first, ok := parseMailFilter(q.Get("$filter"), false)
	if !ok {
		invalidFilter(w, q.Get("$filter"))
		return
	}
	desc := true
	if ob := strings.TrimSpace(q.Get("$orderby")); ob != "" {
		parts := strings.Fields(ob)
		if !strings.EqualFold(parts[0], "receivedDateTime") || len(parts) > 2 || (len(parts) == 2 && !strings.EqualFold(parts[1], "desc") && !strings.EqualFold(parts[1], "asc")) {
			WriteError(w, http.StatusBadRequest, "BadRequest", "The fake orders by receivedDateTime asc|desc only, not '"+ob+"'.")
			return
		}
		desc = len(parts) == 1 || strings.EqualFold(parts[1], "desc")
		if len(filter) > 0 && first != "receiveddatetime" {
			WriteError(w, http.StatusBadRequest, "InefficientFilter", "The restriction or sort order is too complex for this operation.")
			return
		}
	}
	if !checkSelect(w, q.Get("$select")) {
		return
	}
	f.mu.Lock()
	var page []map[string]any
	n := 0
	more := false
	for _, it := range f.mailSorted(folderID, desc) {
		if !filter.match(it) {
			continue
		}
		if n >= skip && n < skip+top {
			page = append(page, mailSelect(it.m, q.Get("$select")))
		} else if n >= skip+top {
			more = true
			break
		}
		n++
	}
	f.mu.Unlock()
	if page == nil {
		page = []map[string]any{}
	}
	body := map[string]any{"@odata.context": f.baseURL("/$metadata#users('" + UserID + "')/messages"), "value": page}
	if more {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("$top", strconv.Itoa(top))
		nq.Set("$skip", strconv.Itoa(skip+top))
		body["@odata.nextLink"] = f.URL + r.URL.Path + "?" + nq.Encode()
	}
	WriteJSON(w, http.StatusOK, body)
}

func (f *Fake) mailGetFolder(w http.ResponseWriter, r *http.Request, m []string) {
	fo, ok := f.mailFolderOf(m[1])
	if !ok {
		mailNotFound(w)
		return
	}
	f.mu.Lock()
	total, unread := 0, 0
	for _, it := range f.mail.msgs {
		if it.m.ParentFolderID == fo.id {
			total++
			if !it.m.IsRead {
				unread++
			}
		}
	}
	f.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"id": fo.id, "displayName": folderDisplayNames[fo.wellKnown],
		"totalItemCount": total, "unreadItemCount": unread, "childFolderCount": 0, "isHidden": false})
}

func (f *Fake) mailGet(w http.ResponseWriter, r *http.Request, m []string) {
	if !checkSelect(w, r.URL.Query().Get("$select")) {
		return
	}
	f.mu.Lock()
	msg, _, ok := f.findMessage(m[1])
	f.mu.Unlock()
	if !ok {
		mailNotFound(w)
		return
	}
	WriteJSON(w, http.StatusOK, mailSelect(msg, r.URL.Query().Get("$select")))
}

func (f *Fake) mailPatch(w http.ResponseWriter, r *http.Request, m []string) {
	var in struct {
		IsRead     *bool     `json:"isRead"`
		Categories *[]string `json:"categories"`
		Importance *string   `json:"importance"`
		Subject    *string   `json:"subject"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	f.mu.Lock()
	it, ok := f.mail.msgs[m[1]]
	if ok {
		if in.IsRead != nil {
			it.m.IsRead = *in.IsRead
		}
		if in.Categories != nil {
			it.m.Categories = slices.Clone(*in.Categories)
		}
		if in.Importance != nil {
			it.m.Importance = *in.Importance
		}
		if in.Subject != nil && it.m.IsDraft {
			it.m.Subject = *in.Subject
		}
		f.mail.seq++
		it.m.ETag = `W/"CQAAABYAAAD` + strconv.FormatInt(f.mail.seq, 36) + `"`
	}
	msg, _, _ := f.findMessage(m[1])
	f.mu.Unlock()
	if !ok {
		mailNotFound(w)
		return
	}
	WriteJSON(w, http.StatusOK, msg)
}

// wireOutgoing is the message of sendMail.
type wireOutgoing struct {
	Subject       string      `json:"subject"`
	Body          *ItemBody   `json:"body"`
	ToRecipients  []Recipient `json:"toRecipients"`
	CcRecipients  []Recipient `json:"ccRecipients"`
	BccRecipients []Recipient `json:"bccRecipients"`
	Importance    string      `json:"importance"`
}

var mailAddressOK = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)

// mailCreated is a message made by a request, to notify about once f.mu is released.
type mailCreated struct{ folderID, wellKnown, id string }

func (f *Fake) mailNotify(cs []mailCreated) {
	for _, c := range cs {
		f.messageCreated(c.folderID, c.wellKnown, c.id)
	}
}

func (f *Fake) mailSend(w http.ResponseWriter, r *http.Request, _ []string) {
	var in struct {
		Message         *wireOutgoing `json:"message"`
		SaveToSentItems *bool         `json:"saveToSentItems"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if in.Message == nil {
		WriteError(w, http.StatusBadRequest, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
		return
	}
	out := *in.Message
	if len(out.ToRecipients) == 0 {
		WriteError(w, http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
		return
	}
	all := slices.Concat(out.ToRecipients, out.CcRecipients, out.BccRecipients)
	for _, rc := range all {
		if !mailAddressOK.MatchString(rc.EmailAddress.Address) {
			WriteError(w, http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient isn't valid., Recipient '"+rc.EmailAddress.Address+"' isn't resolved. All recipients must be resolved before a message can be submitted.")
			return
		}
	}
	body := ItemBody{ContentType: "text"}
	if out.Body != nil {
		body = *out.Body
		body.ContentType = strings.ToLower(body.ContentType)
		if body.ContentType == "" {
			body.ContentType = "text"
		}
	}
	if out.Importance == "" {
		out.Importance = "normal"
	}
	save := in.SaveToSentItems == nil || *in.SaveToSentItems
	cs := f.mailSubmit(Message{Subject: out.Subject, Body: body, Importance: out.Importance,
		ToRecipients: out.ToRecipients, CcRecipients: out.CcRecipients, BccRecipients: out.BccRecipients}, save, "")
	f.mailNotify(cs)
	w.WriteHeader(http.StatusAccepted)
}

// mailSubmit sends m from the fake user: a copy in sentitems when save, one in the inbox when
// the fake user is a recipient. conv is the conversation to join ("" for a new one).
func (f *Fake) mailSubmit(m Message, save bool, conv string) []mailCreated {
	if conv == "" {
		conv = f.nextID("AAQkAGConv")
	}
	sentID, inID := f.nextID("AAMkAGMsg"), f.nextID("AAMkAGMsg")
	now := time.Now()
	m.From, m.Sender = me(), me()
	m.ConversationID = conv
	m.SentDateTime, m.ReceivedDateTime = mailTime(now), mailTime(now)
	toSelf := false
	for _, rc := range slices.Concat(m.ToRecipients, m.CcRecipients, m.BccRecipients) {
		if strings.EqualFold(rc.EmailAddress.Address, UserPrincipalName) {
			toSelf = true
		}
	}
	var cs []mailCreated
	f.mu.Lock()
	if save {
		sent, _ := f.mailFolderOf("sentitems")
		c := mailCopy(m)
		c.ID, c.IsRead = sentID, true
		f.mailStoreNew(c, sent, now)
		cs = append(cs, mailCreated{sent.id, sent.wellKnown, sentID})
	}
	if toSelf {
		inbox, _ := f.mailFolderOf("inbox")
		c := mailCopy(m)
		c.ID, c.IsRead, c.BccRecipients = inID, false, nil
		f.mailStoreNew(c, inbox, now)
		cs = append(cs, mailCreated{inbox.id, inbox.wellKnown, inID})
	}
	f.mu.Unlock()
	return cs
}

func (f *Fake) mailReply(w http.ResponseWriter, r *http.Request, m []string) {
	var in struct {
		Comment string        `json:"comment"`
		Message *wireOutgoing `json:"message"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	f.mu.Lock()
	orig, _, ok := f.findMessage(m[1])
	f.mu.Unlock()
	if !ok {
		mailNotFound(w)
		return
	}
	to := []Recipient{}
	if orig.From != nil {
		to = append(to, *orig.From)
	}
	quoted := in.Comment + "\n\n-----\nFrom: "
	if orig.From != nil {
		quoted += orig.From.EmailAddress.Address
	}
	quoted += "\nSubject: " + orig.Subject + "\n\n" + orig.Body.Content
	subject := orig.Subject
	if !strings.HasPrefix(strings.ToUpper(subject), "RE:") {
		subject = "RE: " + subject
	}
	cs := f.mailSubmit(Message{Subject: subject, Body: ItemBody{ContentType: "text", Content: quoted}, Importance: "normal",
		ToRecipients: to}, true, orig.ConversationID)
	f.mailNotify(cs)
	w.WriteHeader(http.StatusAccepted)
}

func (f *Fake) mailMove(w http.ResponseWriter, r *http.Request, m []string) {
	var in struct {
		DestinationID string `json:"destinationId"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	if in.DestinationID == "" {
		WriteError(w, http.StatusBadRequest, "ErrorInvalidParameter", "The value of the parameter 'DestinationId' is empty.")
		return
	}
	dest, ok := f.mailFolderOf(in.DestinationID)
	if !ok {
		WriteError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store., The destination folder '"+in.DestinationID+"' does not exist.")
		return
	}
	newID := f.nextID("AAMkAGMsg")
	f.mu.Lock()
	it, ok := f.mail.msgs[m[1]]
	if !ok {
		f.mu.Unlock()
		mailNotFound(w)
		return
	}
	delete(f.mail.msgs, m[1])
	f.mail.seq++
	f.mail.log = append(f.mail.log, mailChange{seq: f.mail.seq, id: m[1], folder: it.m.ParentFolderID, removed: true})
	moved := mailCopy(it.m)
	moved.ID = newID
	f.mailStoreNew(moved, dest, it.received)
	out, _, _ := f.findMessage(newID)
	f.mu.Unlock()
	f.messageCreated(dest.id, dest.wellKnown, newID)
	WriteJSON(w, http.StatusCreated, out)
}

// mailToken is the state a $skiptoken or $deltatoken carries.
type mailToken struct {
	Folder     string `json:"f"`
	ChangeType string `json:"c,omitempty"`
	Select     string `json:"s,omitempty"`
	Filter     string `json:"q,omitempty"`
	// From and To bound the change log entries of the round (From exclusive, To inclusive);
	// Baseline rounds list the folder's messages created up to To instead.
	From, To int64
	Baseline bool `json:"b,omitempty"`
	Skip     int  `json:"k,omitempty"`
	Epoch    int  `json:"e"`
}

func (t mailToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseMailToken(s string) (mailToken, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var t mailToken
	if err != nil || json.Unmarshal(b, &t) != nil || t.Folder == "" {
		return mailToken{}, false
	}
	return t, true
}

var mailPageSize = regexp.MustCompile(`(?i)odata\.maxpagesize\s*=\s*(\d+)`)

func (f *Fake) mailDelta(w http.ResponseWriter, r *http.Request, m []string) {
	fo, ok := f.mailFolderOf(m[1])
	if !ok {
		mailNotFound(w)
		return
	}
	q := r.URL.Query()
	size := 10
	if pm := mailPageSize.FindStringSubmatch(r.Header.Get("Prefer")); pm != nil {
		if n, err := strconv.Atoi(pm[1]); err == nil && n > 0 {
			size = min(n, 1000)
		}
	}
	var tok mailToken
	raw := q.Get("$skiptoken")
	if raw == "" {
		raw = q.Get("$deltatoken")
	}
	f.mu.Lock()
	epoch := f.drives.epoch
	f.mu.Unlock()
	if raw != "" {
		t, ok := parseMailToken(raw)
		if !ok || t.Epoch != epoch || t.Folder != fo.id {
			WriteError(w, http.StatusGone, "SyncStateNotFound", "The sync state generation is not found or has expired; resync from the start (resyncRequired).")
			return
		}
		tok = t
		if q.Get("$deltatoken") != "" {
			// A new round: the changes after the previous one.
			f.mu.Lock()
			tok = mailToken{Folder: t.Folder, ChangeType: t.ChangeType, Select: t.Select, Filter: t.Filter, From: t.To, To: f.mail.seq, Epoch: epoch}
			f.mu.Unlock()
		}
	} else {
		ct := strings.ToLower(strings.ReplaceAll(q.Get("changeType"), " ", ""))
		if ct != "" && ct != "created" && ct != "updated" && ct != "deleted" {
			WriteError(w, http.StatusBadRequest, "BadRequest", "Invalid changeType '"+q.Get("changeType")+"': use created, updated or deleted.")
			return
		}
		if _, _, ok := parseMailFilter(q.Get("$filter"), true); !ok {
			WriteError(w, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "Message delta supports $filter on receivedDateTime with ge or gt only, not '"+q.Get("$filter")+"'.")
			return
		}
		if !checkSelect(w, q.Get("$select")) {
			return
		}
		f.mu.Lock()
		tok = mailToken{Folder: fo.id, ChangeType: ct, Select: q.Get("$select"), Filter: q.Get("$filter"), To: f.mail.seq, Baseline: true, Epoch: epoch}
		f.mu.Unlock()
	}
	filter, _, _ := parseMailFilter(tok.Filter, true)
	var entries []map[string]any
	f.mu.Lock()
	if tok.Baseline {
		var items []*mailItem
		for _, it := range f.mail.msgs {
			if it.m.ParentFolderID == fo.id && it.seq <= tok.To && filter.match(it) {
				items = append(items, it)
			}
		}
		slices.SortFunc(items, func(a, b *mailItem) int { return int(a.seq - b.seq) })
		if tok.ChangeType != "deleted" && tok.ChangeType != "updated" {
			for _, it := range items {
				entries = append(entries, mailSelect(it.m, tok.Select))
			}
		}
	} else {
		for _, c := range f.mail.log {
			if c.seq <= tok.From || c.seq > tok.To || c.folder != fo.id {
				continue
			}
			if c.removed {
				if tok.ChangeType == "" || tok.ChangeType == "deleted" {
					entries = append(entries, map[string]any{"@odata.type": "#microsoft.graph.message", "id": c.id, "@removed": map[string]any{"reason": "deleted"}})
				}
				continue
			}
			it, ok := f.mail.msgs[c.id]
			if !ok || it.m.ParentFolderID != fo.id || !filter.match(it) || (tok.ChangeType != "" && tok.ChangeType != "created") {
				continue
			}
			entries = append(entries, mailSelect(it.m, tok.Select))
		}
	}
	f.mu.Unlock()
	page := entries[min(tok.Skip, len(entries)):]
	body := map[string]any{"@odata.context": f.baseURL("/$metadata#Collection(message)")}
	link := f.URL + r.URL.Path + "?"
	if len(page) > size {
		page = page[:size]
		next := tok
		next.Skip += size
		body["@odata.nextLink"] = link + "$skiptoken=" + next.encode()
	} else {
		delta := mailToken{Folder: tok.Folder, ChangeType: tok.ChangeType, Select: tok.Select, Filter: tok.Filter, To: tok.To, Epoch: tok.Epoch}
		body["@odata.deltaLink"] = link + "$deltatoken=" + delta.encode()
	}
	if page == nil {
		page = []map[string]any{}
	}
	for _, e := range page {
		if _, ok := e["@odata.type"]; !ok {
			e["@odata.type"] = "#microsoft.graph.message"
		}
	}
	body["value"] = page
	WriteJSON(w, http.StatusOK, body)
}
