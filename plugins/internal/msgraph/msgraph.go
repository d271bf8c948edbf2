// Package msgraph is what the Microsoft 365 connectors (outlook, sharepoint) share: the
// connection they both accept, the Microsoft identity platform's OAuth2 settings, and a small
// Microsoft Graph client (base URL, the user the calls act for, Graph's error body mapped to
// guest errors, OData paging).
//
// One connection serves both connectors, so both declare the same connection params
// ([ConnectionParams]) and the same auth endpoints; each lists the scopes it needs, and a
// connection made for both gets the union (the registry merges them).
package msgraph

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

// DefaultBaseURL is Graph's global endpoint, used when the connection does not set base_url.
const DefaultBaseURL = "https://graph.microsoft.com"

// ConnectionParams is the JSON Schema of the params of a Microsoft 365 connection. base_url
// points the connectors at a national cloud or a test fake; tenant names the identity
// platform's endpoints; user is the mailbox and drive owner the calls act for ("me" without
// it: the signed-in user of a delegated token; an app-only token from client credentials must
// name one); download_origin is one more origin downloads and upload sessions may use (Graph's
// own download and upload hosts are always allowed).
const ConnectionParams = `{"type":"object","properties":{` +
	`"base_url":{"type":"string","format":"uri","default":"https://graph.microsoft.com",` +
	`"description":"Microsoft Graph root: https://graph.microsoft.com, a national cloud's (https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn), or a test fake."},` +
	`"tenant":{"type":"string","default":"common","pattern":"^[A-Za-z0-9][A-Za-z0-9.-]{0,254}$",` +
	`"description":"Microsoft Entra tenant: its id (a GUID) or a verified domain (contoso.onmicrosoft.com); common, organizations or consumers for multi-tenant sign-in. Client credentials need a tenant id or domain."},` +
	`"user":{"type":"string","minLength":1,"maxLength":256,` +
	`"description":"The user whose mail and OneDrive the calls use: a user id or userPrincipalName. Default: the signed-in user (me). Required with client credentials, which have no signed-in user."},` +
	`"download_origin":{"type":"string","format":"uri",` +
	`"description":"One more origin that file downloads and upload sessions may reach (Graph's pre-authenticated URLs on *.sharepoint.com, *.files.1drv.com and *.up.1drv.com are always allowed). Credentials are never sent there."}` +
	`},"additionalProperties":false}`

// Identity platform endpoints; {tenant} is the connection's tenant param.
const (
	AuthorizationURL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"
	TokenURL         = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
)

// OAuth2 returns the auth settings of a Microsoft 365 connector asking for scopes (plus
// offline_access, so a refresh token is issued).
func OAuth2(scopes ...string) abi.Auth {
	pkce := true
	return abi.Auth{
		Types: []string{abi.AuthOAuth2},
		OAuth2: &abi.OAuth2Auth{AuthorizationURL: AuthorizationURL, TokenURL: TokenURL,
			Scopes: append([]string{"offline_access"}, scopes...), PKCE: &pkce},
	}
}

// Client is a per-call Graph client.
type Client struct {
	// HTTP sends requests with Graph's error mapping ([Error]).
	HTTP *pdk.HTTPClient
	// Base is the v1.0 root, "https://graph.microsoft.com/v1.0".
	Base string
	// User is the path of the user the calls act for: "me" or "users/{id}".
	User string
}

// New returns the Graph client of a call, from the connection's base_url and user params.
func New(ctx *pdk.Context, userAgent string) *Client {
	base := strings.TrimSuffix(ctx.Param("base_url"), "/")
	if base == "" {
		base = DefaultBaseURL
	}
	user := "me"
	if u := ctx.Param("user"); u != "" {
		user = "users/" + url.PathEscape(u)
	}
	h := ctx.HTTP().WithHeaders(map[string]string{"Accept": "application/json", "User-Agent": userAgent}).WithStatusErrors(Error)
	return &Client{HTTP: h, Base: base + "/v1.0", User: user}
}

// URL joins the v1.0 root and path ("/me/messages").
func (c *Client) URL(path string) string { return c.Base + path }

// UserURL joins the v1.0 root, the user and path ("/messages").
func (c *Client) UserURL(path string) string { return c.Base + "/" + c.User + path }

// Owns reports whether u is on the Graph origin of the connection, so that a stored or
// upstream-given link (an @odata.nextLink, a cursor) never sends the credential elsewhere.
func (c *Client) Owns(u string) bool {
	a, err1 := abi.OriginOfURL(u)
	b, err2 := abi.OriginOfURL(c.Base)
	return err1 == nil && err2 == nil && a == b
}

// CheckLink returns an invalid_input error unless link is on the connection's Graph origin;
// what names what the link is ("the cursor").
func (c *Client) CheckLink(what, link string) error {
	if !c.Owns(link) {
		return pdk.Errorf(abi.CodeInvalidInput, "%s %q is not a Microsoft Graph URL of this connection (%s)", what, link, c.Base)
	}
	return nil
}

// Page is one page of a Graph collection.
type Page[T any] struct {
	Value     []T    `json:"value"`
	NextLink  string `json:"@odata.nextLink,omitempty"`
	DeltaLink string `json:"@odata.deltaLink,omitempty"`
}

// ErrorBody is Graph's error document.
type ErrorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Date            string `json:"date"`
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// Error maps a Graph error response to a guest error: the status as [pdk.StatusError] maps it
// (429 and 503 retryable with retry_after_s from Retry-After, 401 unauthorized, ...), with
// Graph's error code ("ErrorItemNotFound", "itemNotFound", "TooManyRequests") as
// details.graph_code and its request id as details.request_id, for Microsoft support.
func Error(resp *pdk.Response) error {
	e := pdk.StatusError(resp)
	if e == nil {
		return nil
	}
	var body ErrorBody
	if json.Unmarshal(resp.Body, &body) != nil || body.Error.Code == "" {
		return e
	}
	details := map[string]any{}
	_ = json.Unmarshal(e.Details, &details)
	details["graph_code"] = body.Error.Code
	if id := body.Error.InnerError.RequestID; id != "" {
		details["request_id"] = id
	}
	if body.Error.Message != "" {
		e.Message = body.Error.Message + " (" + body.Error.Code + ")"
	}
	return pdk.WithDetails(e, details)
}

// RetryAfterSeconds is how long Graph asked to wait, in whole seconds (at least 1), or 0 when
// the response does not say.
func RetryAfterSeconds(resp *pdk.Response) int64 {
	d, ok := pdk.RetryAfter(resp, time.Now())
	if !ok {
		return 0
	}
	return max(int64((d+time.Second-1)/time.Second), 1)
}
