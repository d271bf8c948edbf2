package server

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/registry"
)

// Problem codes of OAuth2 connections.
const (
	codeOAuthTokenFailed = "oauth_token_failed"
	codeConsentState     = "invalid_state"
)

// callbackPath is the OAuth2 redirect target; it is outside the bearer-token check (a browser
// reaches it), guarded by the single-use state.
const callbackPath = "/v1/oauth/callback"

// callbackURL is the absolute redirect URL of OAuth2 consents.
func (s *Server) callbackURL(r *http.Request) string { return s.publicBase(r) + callbackPath }

// publicBase is the base of URLs that browsers and upstream services call back (OAuth redirects,
// webhook hooks): --public-url, or the address the request came in on when none is set.
func (s *Server) publicBase(r *http.Request) string {
	if base := strings.TrimRight(s.opts.PublicURL, "/"); base != "" {
		return base
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// oauthProblem maps the registry's OAuth2 errors to problems; other errors pass unchanged.
func oauthProblem(err error) error {
	switch {
	case errors.Is(err, registry.ErrTokenEndpoint):
		return newProblem(http.StatusBadGateway, codeOAuthTokenFailed, err.Error())
	case errors.Is(err, registry.ErrNeedsReauth):
		return newProblem(http.StatusConflict, codeNeedsReauth, err.Error())
	}
	return err
}

// POST /v1/connections/{id}/reauthorize [{"scopes": [...]}]: a new consent URL for an oauth2
// authorization_code connection (after needs_reauth, or to change its scopes); earlier consent
// URLs stop working. A client_credentials connection gets a new token at once instead.
func (s *Server) reauthorize(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Scopes []string `json:"scopes,omitempty"`
	}
	b, err := readBody(r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) > 0 {
		if err := decodeStrictProblem(b, &body); err != nil {
			return err
		}
	}
	c, err := s.reg.Reauthorize(r.Context(), mux.Vars(r)["id"], s.callbackURL(r), body.Scopes)
	if err != nil {
		return oauthProblem(err)
	}
	writeJSON(w, http.StatusOK, s.toConnectionDoc(c))
	return nil
}

// callbackPage is the small page the OAuth2 callback answers: the browser shows it after
// consent.
var callbackPage = template.Must(template.New("callback").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}} - Plugboard</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.4em}code{background:#f2f2f2;padding:0 .2em}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Message}}</p>{{if .Connection}}<p>Connection: <code>{{.Connection}}</code></p>{{end}}</body></html>
`))

// GET /v1/oauth/callback?code=..&state=..: exchanges the code (with the PKCE verifier), stores
// the tokens and makes the connection ready. A wrong, used or lapsed state is refused (400), a
// consent the authorization server reports as refused is 400 too, a failed exchange 502; each
// answers the page saying why. No bearer token: the state is the guard.
func (s *Server) oauthCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	providerErr := q.Get("error")
	if d := q.Get("error_description"); providerErr != "" && d != "" {
		providerErr += " (" + d + ")"
	}
	c, err := s.reg.CompleteConsent(r.Context(), q.Get("state"), q.Get("code"), providerErr)
	page := struct{ Title, Message, Connection string }{Connection: c.ID}
	status := http.StatusOK
	switch {
	case err == nil:
		page.Title, page.Message = "Connected", "The connection is ready. You can close this window."
	case errors.Is(err, registry.ErrConsentState):
		status, page.Title, page.Message = http.StatusBadRequest, "Link not valid", strings.TrimPrefix(err.Error(), registry.ErrConsentState.Error()+": ")
	case errors.Is(err, registry.ErrConsentDenied):
		status, page.Title, page.Message = http.StatusBadRequest, "Access not granted", err.Error()
	case errors.Is(err, registry.ErrTokenEndpoint):
		status, page.Title, page.Message = http.StatusBadGateway, "Could not finish the connection", err.Error()
	default:
		status, page.Title, page.Message = http.StatusInternalServerError, "Could not finish the connection", "Internal error; the server log has the details under correlation id "+correlationID(r.Context())+"."
		s.log.Error("OAuth2 callback failed", "err", err, "correlation_id", correlationID(r.Context()))
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the URL holds the code and the state
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_ = callbackPage.Execute(w, page)
	s.metrics.add("plugboard_oauth_callbacks_total", labels("status", strconv.Itoa(status)), 1)
}
