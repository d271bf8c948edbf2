// Package graphfake is a fake of the Microsoft Graph v1.0 endpoints the outlook and sharepoint
// connectors use, written from Microsoft's public documentation, for their unit tests and the
// server's end-to-end tests.
//
// It behaves as Graph does where a client can tell: JSON collections in "value" with
// "@odata.context", "@odata.nextLink" and "@odata.deltaLink"; Graph's error body
// ({"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}});
// 401 with WWW-Authenticate for a missing or wrong bearer token; 429 and 503 with Retry-After
// when throttled ([Fake.Throttle]); "me" and "users/{id-or-upn}" as the user segment. Files are
// downloaded from, and upload sessions written to, a second server ([Fake.DownloadURL]) that
// stands for Graph's pre-authenticated hosts: it takes no bearer token and records any
// Authorization header it is sent ([Fake.CredentialLeaks]).
//
// The mail endpoints are in mail.go, change-notification subscriptions in subscriptions.go, the
// drive endpoints in drive.go.
package graphfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Token is the access token the fake accepts when no other check is configured.
const Token = "graph-test-access-token"

// UserID and UserPrincipalName name the fake's one user, who is also "me".
const (
	UserID            = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
	UserPrincipalName = "adele.vance@contoso.example"
)

// Options configures a Fake.
type Options struct {
	// ValidToken reports whether a bearer token is accepted; nil accepts [Token] only. Tests
	// with a real OAuth server pass its introspection (oauthtest.Server.Valid).
	ValidToken func(token string) bool
}

// Request is one request the fake (or its download host) received.
type Request struct {
	Method, Path, RawQuery string
	// Authorization is the request's Authorization header.
	Authorization string
	// Status is what the fake answered.
	Status int
}

// Fake is a running Graph fake.
type Fake struct {
	// URL is the Graph root (the connection's base_url); the API is under URL+"/v1.0".
	URL string
	// DownloadURL is the origin of the pre-authenticated download and upload host.
	DownloadURL string

	t        testing.TB
	opts     Options
	srv, dl  *httptest.Server
	routes   []route
	dlRoutes []route

	mu       sync.Mutex
	requests []Request
	leaks    []Request
	throttle []throttleRule
	seq      int64
	mail     *mailStore
	subs     *subStore
	drives   *driveStore
}

// route is one endpoint: method and a regular expression over the path after /v1.0 and the
// user segment (or the whole path on the download host).
type route struct {
	method string
	re     *regexp.Regexp
	h      func(w http.ResponseWriter, r *http.Request, m []string)
}

// throttleRule answers the next n matching requests with status and Retry-After.
type throttleRule struct {
	n, status, retryAfter int
	match                 string
}

// New starts a fake and stops it when t ends.
func New(t testing.TB, opts ...Options) *Fake {
	t.Helper()
	f := &Fake{t: t}
	if len(opts) > 0 {
		f.opts = opts[0]
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveGraph))
	f.dl = httptest.NewServer(http.HandlerFunc(f.serveDownload))
	t.Cleanup(f.dl.Close)
	t.Cleanup(f.srv.Close)
	f.URL, f.DownloadURL = f.srv.URL, f.dl.URL
	f.initMail()
	f.initSubscriptions()
	f.initDrives()
	return f
}

// handle registers a Graph route. pattern is matched against the path after "/v1.0" with the
// user segment ("/me" or "/users/{id}") replaced by "/me" (so "/me/messages/([^/]+)" serves
// both); other paths ("/subscriptions", "/sites") are matched as they are.
func (f *Fake) handle(method, pattern string, h func(w http.ResponseWriter, r *http.Request, m []string)) {
	f.routes = append(f.routes, route{method, regexp.MustCompile("^" + pattern + "$"), h})
}

// handleDownload registers a route of the download host (no bearer token).
func (f *Fake) handleDownload(method, pattern string, h func(w http.ResponseWriter, r *http.Request, m []string)) {
	f.dlRoutes = append(f.dlRoutes, route{method, regexp.MustCompile("^" + pattern + "$"), h})
}

var userSegment = regexp.MustCompile(`^/users/([^/]+)`)

func (f *Fake) serveGraph(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	defer func() {
		f.mu.Lock()
		f.requests = append(f.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Authorization: r.Header.Get("Authorization"), Status: rec.status})
		f.mu.Unlock()
	}()
	w = rec
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	valid := ok && tok != ""
	if valid {
		if f.opts.ValidToken != nil {
			valid = f.opts.ValidToken(tok)
		} else {
			valid = tok == Token
		}
	}
	if !valid {
		// Graph's answer to a missing, expired or foreign token.
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
		code, msg := "InvalidAuthenticationToken", "Access token is empty."
		if ok {
			msg = "Lifetime validation failed, the token is expired."
		}
		WriteError(w, http.StatusUnauthorized, code, msg)
		return
	}
	path, found := strings.CutPrefix(r.URL.Path, "/v1.0")
	if !found {
		WriteError(w, http.StatusBadRequest, "BadRequest", "Invalid version: "+strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0])
		return
	}
	if m := userSegment.FindStringSubmatch(path); m != nil {
		if u := m[1]; u != UserID && !strings.EqualFold(u, UserPrincipalName) {
			WriteError(w, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+u+"' is invalid.")
			return
		}
		path = "/me" + path[len(m[0]):]
	}
	if f.throttled(w, path) {
		return
	}
	f.dispatch(w, r, f.routes, path)
}

func (f *Fake) serveDownload(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	defer func() {
		req := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Authorization: r.Header.Get("Authorization"), Status: rec.status}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		if req.Authorization != "" {
			f.leaks = append(f.leaks, req)
		}
		f.mu.Unlock()
	}()
	if r.Header.Get("Authorization") != "" {
		// SharePoint refuses a bearer token on a pre-authenticated URL; a client must not send one.
		WriteError(rec, http.StatusUnauthorized, "unauthenticated", "pre-authenticated URLs take no Authorization header")
		return
	}
	f.dispatch(rec, r, f.dlRoutes, r.URL.Path)
}

func (f *Fake) dispatch(w http.ResponseWriter, r *http.Request, routes []route, path string) {
	pathMatched := false
	for _, rt := range routes {
		m := rt.re.FindStringSubmatch(path)
		if m == nil {
			continue
		}
		pathMatched = true
		if rt.method == r.Method {
			rt.h(w, r, m)
			return
		}
	}
	if pathMatched {
		WriteError(w, http.StatusMethodNotAllowed, "Request_BadRequest", "The HTTP method '"+r.Method+"' is not allowed on this resource.")
		return
	}
	WriteError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+lastSegment(path)+"'.")
}

func lastSegment(p string) string {
	p = strings.TrimSuffix(p, "/")
	return p[strings.LastIndex(p, "/")+1:]
}

// Throttle makes the next n requests whose path (after /v1.0 and the user segment) contains
// match answer status (429 or 503) with Retry-After: retryAfter seconds, as Graph does when a
// client exceeds its limits or a service is busy.
func (f *Fake) Throttle(match string, n, status, retryAfter int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle = append(f.throttle, throttleRule{n: n, status: status, retryAfter: retryAfter, match: match})
}

func (f *Fake) throttled(w http.ResponseWriter, path string) bool {
	f.mu.Lock()
	var rule *throttleRule
	for i := range f.throttle {
		if f.throttle[i].n > 0 && strings.Contains(path, f.throttle[i].match) {
			rule = &f.throttle[i]
			rule.n--
			break
		}
	}
	f.mu.Unlock()
	if rule == nil {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(rule.retryAfter))
	if rule.status == http.StatusServiceUnavailable {
		WriteError(w, rule.status, "ServiceUnavailable", "The service is temporarily unavailable. Please retry after the time in the Retry-After header.")
	} else {
		WriteError(w, rule.status, "TooManyRequests", "Too many requests. Please retry after the time in the Retry-After header.")
	}
	return true
}

// Requests returns every request received so far, the download host's included.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

// CountRequests counts the requests with method whose path contains part.
func (f *Fake) CountRequests(method, part string) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Method == method && strings.Contains(r.Path, part) {
			n++
		}
	}
	return n
}

// CredentialLeaks returns the requests that reached the download host with an Authorization
// header: a connector that sends the connection's credential to a pre-authenticated URL.
func (f *Fake) CredentialLeaks() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.leaks...)
}

// nextID returns a new opaque id with prefix.
func (f *Fake) nextID(prefix string) string {
	f.mu.Lock()
	f.seq++
	n := f.seq
	f.mu.Unlock()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%04d%s", prefix, n, hex.EncodeToString(b))
}

// WriteJSON writes v as Graph's JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.Header().Set("request-id", newRequestID())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes Graph's error body.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	rid := newRequestID()
	body := map[string]any{"error": map[string]any{"code": code, "message": message,
		"innerError": map[string]any{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": rid, "client-request-id": rid}}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", rid)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// readJSON decodes a request body into v, answering Graph's 400 when it is not JSON.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		WriteError(w, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
		return false
	}
	return true
}

// baseURL is the absolute URL of path on the Graph fake, as Graph builds its links.
func (f *Fake) baseURL(path string) string { return f.URL + "/v1.0" + path }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
