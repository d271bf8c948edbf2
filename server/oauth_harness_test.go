package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/server/oauthtest"
)

// oauthServer is the real OAuth2 authorization server of the tests ([oauthtest.Server]).
type oauthServer = oauthtest.Server

const (
	oauthClientID     = "plugboard-test-client"
	oauthClientSecret = "cs-0123456789-client-secret"
)

// startOAuthServer starts it for the test client.
func startOAuthServer(t testing.TB) *oauthServer {
	return oauthtest.Start(t, oauthClientID, oauthClientSecret)
}

// bearerAPI is an upstream API that accepts only access tokens the authorization server issued
// and has not expired, and records every token it was sent.
type bearerAPI struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []string
	ok     int
}

func newBearerAPI(t testing.TB, oa *oauthServer) *bearerAPI {
	api := &bearerAPI{}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		valid := tok != "" && oa.Valid(tok)
		api.mu.Lock()
		api.tokens = append(api.tokens, tok)
		if valid {
			api.ok++
		}
		api.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !valid {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_token"}`))
			return
		}
		w.Write([]byte(`{"user":"johndoe"}`))
	}))
	t.Cleanup(api.Close)
	return api
}

func (a *bearerAPI) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.tokens...)
}

// fakeClock is the clock of token expiry, moved by the tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer captures every log line of a server, at debug level.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// oauthEnv is a server whose public URL is its own address (so consent redirects come back to
// it), with its OAuth clock under the test's control and its logs captured, plus a real OAuth
// server and an API that checks bearer tokens with it.
type oauthEnv struct {
	*testServer
	oa    *oauthServer
	api   *bearerAPI
	clock *fakeClock
	logs  *logBuffer
}

func newOAuthEnv(t *testing.T, edit func(*Options)) *oauthEnv {
	t.Helper()
	oa := startOAuthServer(t)
	env := &oauthEnv{oa: oa, api: newBearerAPI(t, oa), clock: &fakeClock{t: time.Now()}, logs: &logBuffer{}}
	env.testServer = startPublicServer(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if edit != nil {
			edit(o)
		}
	})
	env.srv.Registry().ConfigureOAuth(registry.OAuthOptions{Now: env.clock.Now})
	env.must(201, env.upload("spy"))
	return env
}

// startPublicServer is startServer with Options.PublicURL set to the server's own address, so
// consent redirects come back to it.
func startPublicServer(t testing.TB, edit func(*Options)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		DataDir:     t.TempDir(),
		AdminToken:  testToken,
		PublicURL:   "http://" + ln.Addr().String(),
		EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Host:        host.Config{CacheDir: sharedCache},
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := New(context.Background(), &opts)
	if err != nil {
		ln.Close()
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	ts := &testServer{t: t, srv: srv, http: hs, dir: opts.DataDir, opts: opts}
	t.Cleanup(ts.stop)
	return ts
}

// createOAuth creates an authorization_code connection of the spy to the bearer API and
// returns the connection document (pending_consent, with its consent URL).
func (e *oauthEnv) createOAuth(id string, extra map[string]any) map[string]any {
	e.t.Helper()
	body := map[string]any{
		"id": id, "connectors": []string{"spy"}, "params": map[string]any{"base_url": e.api.URL},
		"auth": map[string]any{"type": "oauth2", "client_id": oauthClientID, "client_secret": oauthClientSecret,
			"authorization_url": e.oa.Issuer + "/authorize", "token_url": e.oa.Issuer + "/token"},
	}
	for k, v := range extra {
		body[k] = v
	}
	return e.must(201, e.do("POST", "/v1/connections", body)).json(e.t)
}

// consent plays the browser: it opens the consent URL, follows the authorization server's
// redirect to the callback, and returns the callback URL and its answer.
func (e *oauthEnv) consent(consentURL string) (callback string, r response) {
	e.t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(consentURL)
	if err != nil {
		e.t.Fatalf("opening the consent URL: %v", err)
	}
	resp.Body.Close()
	callback = resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(callback, e.opts.PublicURL+"/v1/oauth/callback?") {
		e.t.Fatalf("the authorization server answered %d, Location %q; want a redirect to the callback", resp.StatusCode, callback)
	}
	return callback, e.browse(callback)
}

// browse GETs a URL as a browser does: no bearer token.
func (e *oauthEnv) browse(u string) response {
	e.t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		e.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// readyOAuth creates an authorization_code connection and completes its consent.
func (e *oauthEnv) readyOAuth(id string) {
	e.t.Helper()
	doc := e.createOAuth(id, nil)
	if _, r := e.consent(doc["consent_url"].(string)); r.Status != 200 {
		e.t.Fatalf("consent: %d %s", r.Status, r.Body)
	}
}

// fetchMe runs the spy's fetch of the bearer API with connection id and returns the status the
// guest saw (or fails on an API error).
func (e *oauthEnv) fetchMe(id string) int {
	e.t.Helper()
	r := e.invoke("spy", "fetch", map[string]any{"connection": id, "input": map[string]any{"url": e.api.URL + "/me"}})
	if r.Status != 200 {
		e.t.Fatalf("invoke: %d %s", r.Status, r.Body)
	}
	out := r.json(e.t)["output"].(map[string]any)
	st, _ := out["status"].(float64)
	return int(st)
}

// checkNoSecrets asserts that no secret of the OAuth environment (the client secret, every
// refresh token the authorization server issued, every access token the API saw, and extra)
// appears in the bbolt file, the captured logs, or the connections' API documents.
func (e *oauthEnv) checkNoSecrets(extra ...string) {
	e.t.Helper()
	secrets := append([]string{oauthClientSecret}, extra...)
	secrets = append(secrets, e.oa.Stats().RefreshIssued...)
	for _, tok := range e.api.seen() {
		if tok != "" {
			secrets = append(secrets, tok)
		}
	}
	assertNoSecrets(e.t, e.testServer, e.logs, secrets)
}

// assertNoSecrets asserts that none of secrets appears in the server's data file, in logs (if
// not nil), or in the documents of GET /v1/connections and of each connection.
func assertNoSecrets(t testing.TB, ts *testServer, logs *logBuffer, secrets []string) {
	t.Helper()
	db, err := os.ReadFile(filepath.Join(ts.dir, "plugboard.db"))
	if err != nil {
		t.Fatal(err)
	}
	places := map[string][]byte{"the bbolt file": db}
	if logs != nil {
		if logs.String() == "" {
			t.Error("no log line was captured")
		}
		places["the logs"] = []byte(logs.String())
	}
	list := ts.must(200, ts.do("GET", "/v1/connections", nil))
	places["GET /v1/connections"] = list.Body
	for _, c := range list.json(t)["connections"].([]any) {
		id := c.(map[string]any)["id"].(string)
		places["GET /v1/connections/"+id] = ts.must(200, ts.do("GET", "/v1/connections/"+id, nil)).Body
	}
	places["GET /metrics"] = ts.must(200, ts.do("GET", "/metrics", nil)).Body
	for where, b := range places {
		for _, s := range secrets {
			if s != "" && bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the secret %.12q...", where, s)
			}
		}
	}
}
