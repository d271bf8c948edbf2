// Command outlook is the Outlook mail connector: list, read, send, reply to, mark and move the
// messages of a Microsoft 365 mailbox through Microsoft Graph v1.0, on the Microsoft 365
// connection the sharepoint connector uses as well (plugins/internal/msgraph).
//
// The mailbox is the signed-in user's (me), or the connection's user param (users/{id}) with an
// app-only token from client credentials. Folders are named by a well-known name (inbox,
// drafts, sentitems, deleteditems, archive, junkemail) or a folder id.
//
// Graph's errors map as msgraph.Error does: 404 not_found (ErrorItemNotFound), 400
// invalid_input with Graph's message (a $filter Graph refuses), 429 and 503 retryable with
// details.retry_after_s, Graph's code in details.graph_code.
//
// The new_message poll trigger (a message delta query, its deltaLink the cursor) is in
// triggers.go; the message_received webhook trigger (a Graph change-notification subscription
// whose clientState is the source's secret, renewed by PATCH before it expires, caught up by
// delta after a missed lifecycle notification) in webhook.go.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o outlook.wasm ./plugins/outlook
package main

import (
	"net/url"
	"regexp"
	"slices"
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

const userAgent = "plugboard-outlook/" + version

func init() {
	pdk.Connector(pdk.Info{
		Name:        "outlook",
		Version:     version,
		Title:       "Outlook mail",
		Description: "Mail in Microsoft 365 and Outlook.com mailboxes, through Microsoft Graph: list and read messages, send mail, reply, mark read or unread, move between folders, and a trigger on new mail.",
		Auth:        msgraph.OAuth2("Mail.ReadWrite", "Mail.Send"),
		// One connection serves outlook and sharepoint, so both take the same params.
		ConnectionParams: msgraph.ConnectionParams,
		Hosts:            []string{"{base_url}"},
	})
	pdk.Action("list_messages", listMessages,
		pdk.Title("List messages"),
		pdk.Description("Lists the messages of a folder (inbox by default), newest first, top per page; filter is an OData $filter passed to Graph "+
			"(isRead eq false, receivedDateTime ge 2026-01-01T00:00:00Z, from/emailAddress/address eq 'a@b.com', joined by and). Pass next_cursor back as cursor for the next page."),
		pdk.ReadOnly(), pdk.Idempotent())
	pdk.Action("get_message", getMessage,
		pdk.Title("Get message"),
		pdk.Description("Returns one message with its body (text or HTML, as sent)."),
		pdk.ReadOnly(), pdk.Idempotent())
	pdk.Action("send_mail", sendMail,
		pdk.Title("Send mail"),
		pdk.Description("Sends a new message from the mailbox to the to, cc and bcc addresses; a copy is kept in Sent Items unless save_to_sent is false."))
	pdk.Action("reply", reply,
		pdk.Title("Reply"),
		pdk.Description("Replies to the sender of a message with comment (the original is quoted below it); the reply is saved in Sent Items."))
	pdk.Action("mark_read", markRead,
		pdk.Title("Mark read or unread"),
		pdk.Description("Marks a message read (is_read true, the default) or unread, and returns it."),
		pdk.Idempotent())
	pdk.Action("move_message", moveMessage,
		pdk.Title("Move message"),
		pdk.Description("Moves a message to another folder (well-known name or id) and returns it: the moved message has a new id, use it from then on."))
}

// Address is a mail address with its display name.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Body is a message's body.
type Body struct {
	ContentType string `json:"content_type" jsonschema:"text or html"`
	Content     string `json:"content"`
}

// Message is a mail message.
type Message struct {
	ID               string    `json:"id" jsonschema:"The message id; it changes when the message is moved"`
	Subject          string    `json:"subject"`
	From             *Address  `json:"from,omitempty"`
	To               []Address `json:"to"`
	Cc               []Address `json:"cc"`
	ReceivedDateTime time.Time `json:"received_date_time,omitzero"`
	SentDateTime     time.Time `json:"sent_date_time,omitzero"`
	IsRead           bool      `json:"is_read"`
	HasAttachments   bool      `json:"has_attachments"`
	Importance       string    `json:"importance,omitempty" jsonschema:"low, normal or high"`
	BodyPreview      string    `json:"body_preview,omitempty" jsonschema:"The first 255 characters of the body, as text"`
	ConversationID   string    `json:"conversation_id,omitempty"`
	ParentFolderID   string    `json:"parent_folder_id,omitempty" jsonschema:"Id of the folder the message is in"`
	WebLink          string    `json:"web_link,omitempty" jsonschema:"Opens the message in Outlook on the web"`
	Body             *Body     `json:"body,omitempty" jsonschema:"get_message only"`
}

// wireRecipient is Graph's recipient.
type wireRecipient struct {
	EmailAddress struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"emailAddress"`
}

func (r wireRecipient) address() Address {
	return Address{Name: r.EmailAddress.Name, Address: r.EmailAddress.Address}
}

// wireMessage is Graph's message, the part the connector reads.
type wireMessage struct {
	ID               string          `json:"id"`
	Subject          string          `json:"subject"`
	From             *wireRecipient  `json:"from"`
	ToRecipients     []wireRecipient `json:"toRecipients"`
	CcRecipients     []wireRecipient `json:"ccRecipients"`
	ReceivedDateTime time.Time       `json:"receivedDateTime"`
	SentDateTime     time.Time       `json:"sentDateTime"`
	IsRead           bool            `json:"isRead"`
	HasAttachments   bool            `json:"hasAttachments"`
	Importance       string          `json:"importance"`
	BodyPreview      string          `json:"bodyPreview"`
	ConversationID   string          `json:"conversationId"`
	ParentFolderID   string          `json:"parentFolderId"`
	WebLink          string          `json:"webLink"`
	Body             *struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	Removed *struct {
		Reason string `json:"reason"`
	} `json:"@removed"`
}

func (w wireMessage) message(withBody bool) Message {
	m := Message{ID: w.ID, Subject: w.Subject, To: []Address{}, Cc: []Address{}, ReceivedDateTime: w.ReceivedDateTime,
		SentDateTime: w.SentDateTime, IsRead: w.IsRead, HasAttachments: w.HasAttachments, Importance: w.Importance,
		BodyPreview: w.BodyPreview, ConversationID: w.ConversationID, ParentFolderID: w.ParentFolderID, WebLink: w.WebLink}
	if w.From != nil && w.From.EmailAddress.Address != "" {
		a := w.From.address()
		m.From = &a
	}
	for _, r := range w.ToRecipients {
		m.To = append(m.To, r.address())
	}
	for _, r := range w.CcRecipients {
		m.Cc = append(m.Cc, r.address())
	}
	if withBody && w.Body != nil {
		m.Body = &Body{ContentType: strings.ToLower(w.Body.ContentType), Content: w.Body.Content}
	}
	return m
}

// messageSelect is the $select of the Message fields (without the body).
const messageSelect = "id,subject,from,toRecipients,ccRecipients,receivedDateTime,sentDateTime,isRead,hasAttachments," +
	"importance,bodyPreview,conversationId,parentFolderId,webLink"

// client is the per-call Graph client of the connector.
type client struct {
	*msgraph.Client
}

func newClient(ctx *pdk.Context) *client {
	return &client{msgraph.New(ctx, userAgent)}
}

var wellKnown = []string{"inbox", "drafts", "sentitems", "deleteditems", "archive", "junkemail"}

// folderRef checks a folder input (default inbox) and returns its path segment.
func folderRef(field, folder string) (string, error) {
	if folder == "" {
		return "inbox", nil
	}
	if slices.Contains(wellKnown, strings.ToLower(folder)) {
		return strings.ToLower(folder), nil
	}
	if err := checkID(field, folder); err != nil {
		return "", pdk.Errorf(abi.CodeInvalidInput, "%s %q is neither a well-known folder (%s) nor a folder id", field, folder, strings.Join(wellKnown, ", "))
	}
	return url.PathEscape(folder), nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9+/=_-]+$`)

// checkID refuses an empty or malformed Graph id.
func checkID(field, id string) error {
	if id == "" {
		return pdk.Errorf(abi.CodeInvalidInput, "%s is required (a message id from list_messages)", field)
	}
	if len(id) > 1024 || !idPattern.MatchString(id) {
		return pdk.Errorf(abi.CodeInvalidInput, "%s %q is not a Graph id (letters, digits, + / = _ -)", field, id)
	}
	return nil
}

func (c *client) messageURL(id string) string {
	return c.UserURL("/messages/" + url.PathEscape(id))
}

// --- list_messages ---

// ListMessagesInput is the input of list_messages.
type ListMessagesInput struct {
	Folder string   `json:"folder,omitempty" jsonschema:"inbox (default), drafts, sentitems, deleteditems, archive, junkemail or a folder id" maxLength:"1024"`
	Top    int      `json:"top,omitempty" jsonschema:"Messages per page" minimum:"1" maximum:"1000" default:"25"`
	Filter string   `json:"filter,omitempty" jsonschema:"OData $filter, passed to Graph: isRead eq false, receivedDateTime ge 2026-01-01T00:00:00Z, from/emailAddress/address eq 'a@b.com', hasAttachments eq true, joined by and" maxLength:"2048"`
	Select []string `json:"select,omitempty" jsonschema:"Graph property names to return (subject, from, receivedDateTime, ...); default: all the fields of a message but the body" maxItems:"40"`
	Cursor string   `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page; the other inputs are then ignored" maxLength:"8192"`
}

// ListMessagesOutput is the output of list_messages.
type ListMessagesOutput struct {
	Messages   []Message `json:"messages"`
	NextCursor string    `json:"next_cursor,omitempty" jsonschema:"Pass as cursor for the next page; absent on the last page"`
}

var propPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,63}$`)

func listMessages(ctx *pdk.Context, in ListMessagesInput) (ListMessagesOutput, error) {
	c := newClient(ctx)
	u := in.Cursor
	if u != "" {
		if err := c.CheckLink("the cursor", u); err != nil {
			return ListMessagesOutput{}, err
		}
	} else {
		folder, err := folderRef("folder", in.Folder)
		if err != nil {
			return ListMessagesOutput{}, err
		}
		top := in.Top
		if top == 0 {
			top = 25
		}
		if top < 1 || top > 1000 {
			return ListMessagesOutput{}, pdk.Errorf(abi.CodeInvalidInput, "top %d is out of range: give 1 to 1000", top)
		}
		sel := messageSelect
		if len(in.Select) > 0 {
			for _, p := range in.Select {
				if !propPattern.MatchString(p) {
					return ListMessagesOutput{}, pdk.Errorf(abi.CodeInvalidInput, "select: %q is not a Graph property name (such as subject or receivedDateTime)", p)
				}
			}
			sel = strings.Join(in.Select, ",")
		}
		q := url.Values{"$top": {strconv.Itoa(top)}, "$select": {sel}}
		f := strings.TrimSpace(in.Filter)
		if f != "" {
			q.Set("$filter", f)
		}
		// Graph refuses $orderby with a $filter unless the ordered property comes first in the
		// filter ("InefficientFilter"); without the order, Graph still answers newest first.
		if f == "" || strings.HasPrefix(strings.ToLower(f), "receiveddatetime") {
			q.Set("$orderby", "receivedDateTime desc")
		}
		u = c.UserURL("/mailFolders/"+folder+"/messages") + "?" + q.Encode()
	}
	var page msgraph.Page[wireMessage]
	if _, err := c.HTTP.GetJSON(u, &page); err != nil {
		return ListMessagesOutput{}, err
	}
	out := ListMessagesOutput{Messages: []Message{}, NextCursor: page.NextLink}
	for _, w := range page.Value {
		out.Messages = append(out.Messages, w.message(false))
	}
	return out, nil
}

// --- get_message ---

// MessageRef names a message.
type MessageRef struct {
	ID string `json:"id" jsonschema:"Message id, from list_messages" maxLength:"1024"`
}

func getMessage(ctx *pdk.Context, in MessageRef) (Message, error) {
	if err := checkID("id", in.ID); err != nil {
		return Message{}, err
	}
	c := newClient(ctx)
	var w wireMessage
	if _, err := c.HTTP.GetJSON(c.messageURL(in.ID)+"?"+url.Values{"$select": {messageSelect + ",body"}}.Encode(), &w); err != nil {
		return Message{}, err
	}
	return w.message(true), nil
}

// --- send_mail ---

// SendMailInput is the input of send_mail.
type SendMailInput struct {
	To          []string `json:"to" jsonschema:"Recipient addresses" minItems:"1" maxItems:"500"`
	Cc          []string `json:"cc,omitempty" maxItems:"500"`
	Bcc         []string `json:"bcc,omitempty" maxItems:"500"`
	Subject     string   `json:"subject,omitempty" maxLength:"998"`
	Body        string   `json:"body,omitempty" maxLength:"1048576"`
	ContentType string   `json:"content_type,omitempty" jsonschema:"text (default) or html" enum:"text,html"`
	SaveToSent  *bool    `json:"save_to_sent,omitempty" jsonschema:"Keep a copy in Sent Items" default:"true"`
}

// SentOutput is the output of send_mail.
type SentOutput struct {
	Sent bool `json:"sent"`
}

var addressPattern = regexp.MustCompile(`^[^@\s<>,;"]+@[^@\s<>,;"]+\.[^@\s<>,;"]+$`)

func recipients(field string, addrs []string) ([]map[string]any, error) {
	out := []map[string]any{}
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if !addressPattern.MatchString(a) {
			return nil, pdk.Errorf(abi.CodeInvalidInput, "%s: %q is not a mail address (write it as name@example.com)", field, a)
		}
		out = append(out, map[string]any{"emailAddress": map[string]string{"address": a}})
	}
	return out, nil
}

func sendMail(ctx *pdk.Context, in SendMailInput) (SentOutput, error) {
	if len(in.To) == 0 {
		return SentOutput{}, pdk.Errorf(abi.CodeInvalidInput, "to is required: give at least one recipient address")
	}
	ct := strings.ToLower(in.ContentType)
	if ct == "" {
		ct = "text"
	}
	if ct != "text" && ct != "html" {
		return SentOutput{}, pdk.Errorf(abi.CodeInvalidInput, "content_type %q: use text or html", in.ContentType)
	}
	msg := map[string]any{"subject": in.Subject, "body": map[string]string{"contentType": ct, "content": in.Body}}
	for _, r := range []struct {
		field, key string
		addrs      []string
	}{{"to", "toRecipients", in.To}, {"cc", "ccRecipients", in.Cc}, {"bcc", "bccRecipients", in.Bcc}} {
		rs, err := recipients(r.field, r.addrs)
		if err != nil {
			return SentOutput{}, err
		}
		if len(rs) > 0 {
			msg[r.key] = rs
		}
	}
	save := in.SaveToSent == nil || *in.SaveToSent
	c := newClient(ctx)
	if _, err := c.HTTP.PostJSON(c.UserURL("/sendMail"), map[string]any{"message": msg, "saveToSentItems": save}, nil); err != nil {
		return SentOutput{}, err
	}
	return SentOutput{Sent: true}, nil
}

// --- reply ---

// ReplyInput is the input of reply.
type ReplyInput struct {
	ID      string `json:"id" jsonschema:"Message id to reply to" maxLength:"1024"`
	Comment string `json:"comment,omitempty" jsonschema:"The reply's text, above the quoted original" maxLength:"1048576"`
}

// RepliedOutput is the output of reply.
type RepliedOutput struct {
	Replied bool `json:"replied"`
}

func reply(ctx *pdk.Context, in ReplyInput) (RepliedOutput, error) {
	if err := checkID("id", in.ID); err != nil {
		return RepliedOutput{}, err
	}
	c := newClient(ctx)
	if _, err := c.HTTP.PostJSON(c.messageURL(in.ID)+"/reply", map[string]string{"comment": in.Comment}, nil); err != nil {
		return RepliedOutput{}, err
	}
	return RepliedOutput{Replied: true}, nil
}

// --- mark_read ---

// MarkReadInput is the input of mark_read.
type MarkReadInput struct {
	ID     string `json:"id" jsonschema:"Message id" maxLength:"1024"`
	IsRead *bool  `json:"is_read,omitempty" jsonschema:"true marks read, false unread" default:"true"`
}

func markRead(ctx *pdk.Context, in MarkReadInput) (Message, error) {
	if err := checkID("id", in.ID); err != nil {
		return Message{}, err
	}
	read := in.IsRead == nil || *in.IsRead
	c := newClient(ctx)
	var w wireMessage
	if _, err := c.HTTP.DoJSON("PATCH", c.messageURL(in.ID), map[string]bool{"isRead": read}, &w); err != nil {
		return Message{}, err
	}
	return w.message(false), nil
}

// --- move_message ---

// MoveInput is the input of move_message.
type MoveInput struct {
	ID     string `json:"id" jsonschema:"Message id" maxLength:"1024"`
	Folder string `json:"folder" jsonschema:"Destination: inbox, drafts, sentitems, deleteditems, archive, junkemail or a folder id" maxLength:"1024"`
}

func moveMessage(ctx *pdk.Context, in MoveInput) (Message, error) {
	if err := checkID("id", in.ID); err != nil {
		return Message{}, err
	}
	if in.Folder == "" {
		return Message{}, pdk.Errorf(abi.CodeInvalidInput, "folder is required: a well-known folder (%s) or a folder id", strings.Join(wellKnown, ", "))
	}
	dest, err := folderRef("folder", in.Folder)
	if err != nil {
		return Message{}, err
	}
	if d, err := url.PathUnescape(dest); err == nil {
		dest = d
	}
	c := newClient(ctx)
	var w wireMessage
	if _, err := c.HTTP.PostJSON(c.messageURL(in.ID)+"/move", map[string]string{"destinationId": dest}, &w); err != nil {
		return Message{}, err
	}
	return w.message(false), nil
}
