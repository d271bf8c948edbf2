package server

import (
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOAuthAuthorizationCodeFlow runs the whole authorization-code flow with PKCE against a
// real OAuth server: consent URL, browser redirect, code exchange at the callback, an action
// whose upstream checks the bearer token, a refresh ahead of expiry, the rotated refresh token
// used the time after, and a refresh after a 401.
func TestOAuthAuthorizationCodeFlow(t *testing.T) {
	e := newOAuthEnv(t, nil)
	doc := e.createOAuth("oa", nil)
	if doc["status"] != "pending_consent" {
		t.Fatalf("status = %v, want pending_consent", doc["status"])
	}
	consentURL, _ := doc["consent_url"].(string)
	u, err := url.Parse(consentURL)
	if err != nil || !strings.HasPrefix(consentURL, e.oa.Issuer+"/authorize?") {
		t.Fatalf("consent_url %q is not the authorization endpoint", consentURL)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 32 ||
		q.Get("redirect_uri") != e.opts.PublicURL+"/v1/oauth/callback" || q.Get("client_id") != oauthClientID ||
		q.Get("scope") != "spy.read" || q.Get("response_type") != "code" {
		t.Errorf("consent URL parameters: %v", q)
	}
	auth := doc["auth"].(map[string]any)
	if auth["grant"] != "authorization_code" || auth["client_id"] != oauthClientID || auth["token_url"] != e.oa.Issuer+"/token" || auth["pkce"] != true {
		t.Errorf("auth = %v", auth)
	}
	// GET shows the pending consent URL too (the CLI waits on it).
	if got := e.must(200, e.do("GET", "/v1/connections/oa", nil)).json(t); got["consent_url"] != consentURL || got["status"] != "pending_consent" {
		t.Errorf("GET while pending: %v", got)
	}
	// No call before consent: 409, the connection exists but waits for a person.
	if r := e.invoke("spy", "fetch", map[string]any{"connection": "oa", "input": map[string]any{"url": e.api.URL}}); r.Status != 409 || r.code(t) != "pending_consent" || !strings.Contains(string(r.Body), "consent URL") {
		t.Errorf("invoke before consent: %d %s", r.Status, r.Body)
	}

	callback, page := e.consent(consentURL)
	if page.Status != 200 || !strings.Contains(string(page.Body), "ready") || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("callback answered %d %s", page.Status, page.Body)
	}
	if page.Header.Get("Referrer-Policy") != "no-referrer" || page.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("callback headers: %v", page.Header)
	}
	got := e.must(200, e.do("GET", "/v1/connections/oa", nil)).json(t)
	if got["status"] != "ready" || got["consent_url"] != nil || got["auth"].(map[string]any)["token_expires_at"] == nil {
		t.Errorf("after consent: %v", got)
	}
	st := e.oa.Stats()
	if st.AuthorizationCode != 1 || st.Refused != 0 || len(st.RefreshIssued) != 1 {
		t.Fatalf("authorization server stats after consent: %+v", st)
	}

	// The state is single use, and a state the server never issued is refused.
	for name, u := range map[string]string{
		"replayed callback":   callback,
		"unknown state":       e.opts.PublicURL + "/v1/oauth/callback?code=abc&state=" + strings.Repeat("x", 43),
		"callback, no state":  e.opts.PublicURL + "/v1/oauth/callback?code=abc",
		"consent URL's state": e.opts.PublicURL + "/v1/oauth/callback?code=abc&state=" + q.Get("state") + "x",
	} {
		if r := e.browse(u); r.Status != 400 || !strings.Contains(string(r.Body), "not valid") {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if st := e.oa.Stats(); st.AuthorizationCode != 1 {
		t.Errorf("a refused callback reached the token endpoint: %+v", st)
	}

	// The action's upstream accepts the bearer token.
	if s := e.fetchMe("oa"); s != 200 {
		t.Fatalf("fetch with the first token: %d", s)
	}
	first := e.api.seen()[0]

	// The token expires: the next call refreshes it first (no 401), with the refresh token of
	// the code exchange.
	e.clock.Advance(time.Hour)
	e.oa.Expire()
	if s := e.fetchMe("oa"); s != 200 {
		t.Fatalf("fetch after expiry: %d", s)
	}
	st = e.oa.Stats()
	if st.RefreshToken != 1 || st.RefreshPresented[0] != st.RefreshIssued[0] {
		t.Fatalf("refresh after expiry: %+v", st)
	}
	seen := e.api.seen()
	if len(seen) != 2 || seen[1] == first {
		t.Errorf("upstream saw %d requests (%.20q); want one, with a new token", len(seen), seen)
	}
	// The time after, the rotated refresh token is the one used (the first is spent: the
	// server refuses a refresh token used twice).
	e.clock.Advance(time.Hour)
	e.oa.Expire()
	if s := e.fetchMe("oa"); s != 200 {
		t.Fatalf("fetch after the second expiry: %d", s)
	}
	st = e.oa.Stats()
	if st.RefreshToken != 2 || st.Refused != 0 || st.RefreshPresented[1] != st.RefreshIssued[1] {
		t.Fatalf("second refresh did not use the rotated refresh token: %+v", st)
	}

	// Expiry the clock does not know about: the upstream answers 401, the host refreshes once
	// and sends the request again.
	e.oa.Expire()
	before := len(e.api.seen())
	if s := e.fetchMe("oa"); s != 200 {
		t.Fatalf("fetch after a 401: %d", s)
	}
	if st := e.oa.Stats(); st.RefreshToken != 3 || len(e.api.seen()) != before+2 {
		t.Errorf("401 path: %d refreshes, %d upstream requests", st.RefreshToken, len(e.api.seen())-before)
	}
	if got := e.must(200, e.do("GET", "/v1/connections/oa", nil)).json(t)["auth"].(map[string]any); got["refreshes"] != 3.0 {
		t.Errorf("auth after 3 refreshes: %v", got)
	}
	e.checkNoSecrets()
}

// TestOAuthConcurrentRefresh: 50 calls that start together on an expired token make exactly
// one refresh request, whether the expiry is known ahead or learnt from 401s.
func TestOAuthConcurrentRefresh(t *testing.T) {
	e := newOAuthEnv(t, nil)
	e.readyOAuth("oa")
	for _, tc := range []struct {
		name     string
		advance  time.Duration
		wantOKAt int // every call succeeds
	}{
		{name: "token expired by the clock", advance: time.Hour},
		{name: "token refused by the upstream (401)", advance: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.oa.Stats().RefreshToken
			e.clock.Advance(tc.advance)
			e.oa.Expire()
			var wg sync.WaitGroup
			statuses := make([]int, 50)
			start := make(chan struct{})
			for i := range statuses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					r := e.invoke("spy", "fetch", map[string]any{"connection": "oa", "input": map[string]any{"url": e.api.URL + "/me"}})
					if r.Status == 200 {
						st, _ := r.json(t)["output"].(map[string]any)["status"].(float64)
						statuses[i] = int(st)
					} else {
						statuses[i] = -r.Status
					}
				}()
			}
			close(start)
			wg.Wait()
			for i, s := range statuses {
				if s != 200 {
					t.Errorf("call %d: %d", i, s)
				}
			}
			if n := e.oa.Stats().RefreshToken - before; n != 1 {
				t.Errorf("50 concurrent calls made %d refresh requests, want 1", n)
			}
		})
	}
}

// TestOAuthRevokedRefreshToken: a refused refresh marks the connection needs_reauth (409 on
// invoke); reauthorize and a new consent bring it back.
func TestOAuthRevokedRefreshToken(t *testing.T) {
	e := newOAuthEnv(t, nil)
	e.readyOAuth("oa")
	e.oa.Revoke()
	e.clock.Advance(time.Hour)
	e.oa.Expire()
	r := e.invoke("spy", "fetch", map[string]any{"connection": "oa", "input": map[string]any{"url": e.api.URL + "/me"}})
	if r.Status != 409 || r.code(t) != "needs_reauth" {
		t.Fatalf("invoke with a revoked refresh token: %d %s", r.Status, r.Body)
	}
	doc := e.must(200, e.do("GET", "/v1/connections/oa", nil)).json(t)
	if doc["status"] != "needs_reauth" || !strings.Contains(doc["auth"].(map[string]any)["last_error"].(string), "invalid_grant") {
		t.Errorf("connection after the refused refresh: %v", doc)
	}
	// It stays so: no more refresh attempts until consent is given again.
	refreshes := e.oa.Stats().RefreshToken
	if r := e.invoke("spy", "fetch", map[string]any{"connection": "oa", "input": map[string]any{"url": e.api.URL + "/me"}}); r.Status != 409 {
		t.Errorf("second invoke: %d", r.Status)
	}
	if e.oa.Stats().RefreshToken != refreshes {
		t.Errorf("a needs_reauth connection still asked for tokens")
	}

	re := e.must(200, e.do("POST", "/v1/connections/oa/reauthorize", nil)).json(t)
	if re["status"] != "needs_reauth" || !strings.HasPrefix(re["consent_url"].(string), e.oa.Issuer+"/authorize?") {
		t.Fatalf("reauthorize = %v", re)
	}
	// A second reauthorize supersedes the first consent URL.
	re2 := e.must(200, e.do("POST", "/v1/connections/oa/reauthorize", map[string]any{"scopes": []string{"spy.read", "spy.write"}})).json(t)
	if _, page := e.consent(re["consent_url"].(string)); page.Status != 400 {
		t.Errorf("a superseded consent URL: %d %s", page.Status, page.Body)
	}
	if u, _ := url.Parse(re2["consent_url"].(string)); u.Query().Get("scope") != "spy.read spy.write" {
		t.Errorf("reauthorize with scopes: %s", re2["consent_url"])
	}
	if _, page := e.consent(re2["consent_url"].(string)); page.Status != 200 {
		t.Fatalf("consent again: %d %s", page.Status, page.Body)
	}
	if s := e.fetchMe("oa"); s != 200 {
		t.Errorf("fetch after consent again: %d", s)
	}
	if doc := e.must(200, e.do("GET", "/v1/connections/oa", nil)).json(t); doc["status"] != "ready" || doc["auth"].(map[string]any)["last_error"] != nil {
		t.Errorf("after consent again: %v", doc)
	}
}

// TestOAuthClientCredentials: a client_credentials connection is ready at once, gets a new
// token when this one expires, and is refused at creation with wrong credentials (nothing
// stored, no secret in the error).
func TestOAuthClientCredentials(t *testing.T) {
	e := newOAuthEnv(t, nil)
	body := func(id, secret string) map[string]any {
		return map[string]any{
			"id": id, "connectors": []string{"spy"}, "params": map[string]any{"base_url": e.api.URL},
			"auth": map[string]any{"type": "oauth2", "grant": "client_credentials", "client_id": oauthClientID,
				"client_secret": secret, "token_url": e.oa.Issuer + "/token", "scopes": []string{"spy.read"}},
		}
	}
	doc := e.must(201, e.do("POST", "/v1/connections", body("cc", oauthClientSecret))).json(t)
	if doc["status"] != "ready" || doc["consent_url"] != nil || doc["auth"].(map[string]any)["grant"] != "client_credentials" {
		t.Errorf("created: %v", doc)
	}
	if s := e.fetchMe("cc"); s != 200 {
		t.Fatalf("fetch: %d", s)
	}
	e.clock.Advance(time.Hour)
	e.oa.Expire()
	if s := e.fetchMe("cc"); s != 200 {
		t.Fatalf("fetch after expiry: %d", s)
	}
	if st := e.oa.Stats(); st.ClientCredentials != 2 || st.RefreshToken != 0 {
		t.Errorf("stats: %+v", st)
	}
	r := e.do("POST", "/v1/connections", body("cc-bad", "wrong-secret-value"))
	if r.Status != 502 || r.code(t) != "oauth_token_failed" || !strings.Contains(string(r.Body), "invalid_client") || strings.Contains(string(r.Body), "wrong-secret-value") {
		t.Errorf("wrong client secret: %d %s", r.Status, r.Body)
	}
	e.must(404, e.do("GET", "/v1/connections/cc-bad", nil))
	// Reauthorize fetches a new token at once; rotating to a wrong secret is refused and
	// leaves the connection as it was.
	if doc := e.must(200, e.do("POST", "/v1/connections/cc/reauthorize", nil)).json(t); doc["status"] != "ready" || doc["consent_url"] != nil {
		t.Errorf("reauthorize: %v", doc)
	}
	bad := body("cc", "wrong-secret-value")["auth"]
	if r := e.do("PUT", "/v1/connections/cc/credentials", bad); r.Status != 502 {
		t.Errorf("rotation to a wrong secret: %d %s", r.Status, r.Body)
	}
	if s := e.fetchMe("cc"); s != 200 {
		t.Errorf("fetch after the refused rotation: %d", s)
	}
	e.checkNoSecrets("wrong-secret-value")
}

// TestOAuthRotationKeepsTokens: rotating the client secret of an authorization_code connection
// keeps its tokens; another client id needs a new consent.
func TestOAuthRotationKeepsTokens(t *testing.T) {
	e := newOAuthEnv(t, nil)
	e.readyOAuth("oa")
	auth := map[string]any{"type": "oauth2", "client_id": oauthClientID, "client_secret": oauthClientSecret,
		"authorization_url": e.oa.Issuer + "/authorize", "token_url": e.oa.Issuer + "/token"}
	if doc := e.must(200, e.do("PUT", "/v1/connections/oa/credentials", auth)).json(t); doc["status"] != "ready" {
		t.Errorf("same client: %v", doc)
	}
	if s := e.fetchMe("oa"); s != 200 {
		t.Errorf("fetch after rotating the secret: %d", s)
	}
	auth["client_id"] = "another-client"
	doc := e.must(200, e.do("PUT", "/v1/connections/oa/credentials", auth)).json(t)
	if doc["status"] != "pending_consent" || doc["consent_url"] == nil {
		t.Errorf("another client: %v", doc)
	}
}
