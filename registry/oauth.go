package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry/storage"
)

// OAuth2 grants a connection may use.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantClientCredentials = "client_credentials"
)

// DefaultConsentTTL is how long a consent URL stays usable when [OAuthOptions.ConsentTTL] is 0.
const DefaultConsentTTL = 30 * time.Minute

// Errors of OAuth2 connections. None of their messages ever holds a secret.
var (
	// ErrNeedsReauth: the token endpoint refused the connection's refresh token (or client
	// credentials); the connection is needs_reauth until consent is given again.
	ErrNeedsReauth = errors.New("connection needs consent again")
	// ErrPendingConsent: the connection waits for its first consent. It comes wrapped with
	// ErrInvalid.
	ErrPendingConsent = errors.New("connection waits for consent")
	// ErrConsentState: a consent callback's state is unknown, was already used, lapsed, or was
	// superseded by a newer consent URL.
	ErrConsentState = errors.New("unknown, used or lapsed consent state")
	// ErrConsentDenied: the authorization server answered the callback with an error (the user
	// declined, say).
	ErrConsentDenied = errors.New("consent not given")
	// ErrTokenEndpoint: the token endpoint failed or refused a request; the message says how.
	ErrTokenEndpoint = errors.New("OAuth2 token endpoint")
)

// OAuth2Settings are the non-secret settings of an oauth2 auth object; its client secret is
// Credentials.ClientSecret.
type OAuth2Settings struct {
	// Grant is GrantAuthorizationCode (the default when empty) or GrantClientCredentials.
	Grant string
	// ClientID is the OAuth2 client id (required).
	ClientID string
	// Scopes to request; nil means the scopes of the connector's manifest.
	Scopes []string
	// AuthorizationURL and TokenURL override the manifest's auth.oauth2 endpoints.
	AuthorizationURL, TokenURL string
	// RedirectURL is the server's absolute callback URL (GET /v1/oauth/callback on the public
	// URL); the authorization_code grant needs it.
	RedirectURL string
}

// OAuth2Info is the non-secret view of an oauth2 connection.
type OAuth2Info struct {
	// Grant is GrantAuthorizationCode or GrantClientCredentials.
	Grant string
	// ClientID is the OAuth2 client id.
	ClientID string
	// Scopes are the scopes requested.
	Scopes []string
	// AuthorizationURL and TokenURL are the endpoints in use (the manifest's or overrides),
	// fixed when the connection was created or its credentials rotated.
	AuthorizationURL string
	TokenURL         string
	// PKCE says the consent uses PKCE (S256); the manifest's auth.oauth2.pkce, true by default.
	PKCE bool
	// ObtainedAt is when the current access token was obtained; ExpiresAt when it expires.
	// Both zero before the first token; ExpiresAt zero when the token endpoint gave no
	// expires_in.
	ObtainedAt, ExpiresAt time.Time
	// Refreshes counts the refreshes since the last consent.
	Refreshes int
	// LastError describes the last failed token request, if the last one failed.
	LastError string
}

// oauthMeta is what the store keeps of an oauth2 connection besides its secrets. The endpoints
// are resolved once, at creation or rotation: a later connector version with other endpoints
// does not redirect the connection's refresh token elsewhere.
type oauthMeta struct {
	Grant            string    `json:"grant"`
	ClientID         string    `json:"client_id"`
	Scopes           []string  `json:"scopes,omitempty"`
	AuthorizationURL string    `json:"authorization_url,omitempty"`
	TokenURL         string    `json:"token_url"`
	PKCE             bool      `json:"pkce"`
	RedirectURL      string    `json:"redirect_url,omitempty"`
	TokenType        string    `json:"token_type,omitempty"`
	ObtainedAt       time.Time `json:"obtained_at,omitzero"`
	ExpiresAt        time.Time `json:"expires_at,omitzero"`
	Refreshes        int       `json:"refreshes,omitempty"`
	StateHash        string    `json:"state_hash,omitempty"`
	StateExpiresAt   time.Time `json:"state_expires_at,omitzero"`
	LastError        string    `json:"last_error,omitempty"`
}

func (m *oauthMeta) info() *OAuth2Info {
	return &OAuth2Info{Grant: m.Grant, ClientID: m.ClientID, Scopes: m.Scopes, AuthorizationURL: m.AuthorizationURL,
		TokenURL: m.TokenURL, PKCE: m.PKCE, ObtainedAt: m.ObtainedAt, ExpiresAt: m.ExpiresAt, Refreshes: m.Refreshes, LastError: m.LastError}
}

// pendingConsent reports whether a consent URL handed out earlier is still usable at now.
func (m *oauthMeta) pendingConsent(now time.Time) bool {
	return m != nil && m.StateHash != "" && now.Before(m.StateExpiresAt)
}

// needsRefresh reports whether the access token must be refreshed before use at now: when less
// than a third of its lifetime or 60 s remains, whichever is smaller (API.md "OAuth2
// specifics"). A token without a known expiry is refreshed only after a 401.
func (m *oauthMeta) needsRefresh(now time.Time) bool {
	if m.ExpiresAt.IsZero() {
		return false
	}
	ahead := min(m.ExpiresAt.Sub(m.ObtainedAt)/3, 60*time.Second)
	return m.ExpiresAt.Sub(now) < ahead
}

// OAuthOptions tune OAuth2 connections ([Registry.ConfigureOAuth]). Zero values mean the
// documented defaults.
type OAuthOptions struct {
	// HTTPClient sends token requests; nil means the host's HostHTTPClient: the address checks
	// of plugboard_http (a token endpoint on a private network needs --egress-allow), no
	// redirects followed, a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock of token expiry and consent lapse; nil means the registry's clock.
	Now func() time.Time
	// ConsentTTL is how long a consent URL stays usable; 0 means DefaultConsentTTL.
	ConsentTTL time.Duration
}

// oauthRuntime is the registry's OAuth2 state: options and one refresh lock per connection,
// so concurrent calls of a connection share one token request (single flight).
type oauthRuntime struct {
	mu    sync.Mutex
	opts  OAuthOptions
	locks map[string]chan struct{}
}

// ConfigureOAuth sets the options of OAuth2 connections; call it before serving.
func (r *Registry) ConfigureOAuth(o OAuthOptions) {
	r.oauth.mu.Lock()
	r.oauth.opts = o
	r.oauth.mu.Unlock()
}

func (r *Registry) oauthOpts() OAuthOptions {
	r.oauth.mu.Lock()
	defer r.oauth.mu.Unlock()
	return r.oauth.opts
}

func (r *Registry) oauthNow() time.Time {
	if now := r.oauthOpts().Now; now != nil {
		return now()
	}
	return r.now()
}

// oauthContext carries the HTTP client token requests use.
func (r *Registry) oauthContext(ctx context.Context) context.Context {
	c := r.oauthOpts().HTTPClient
	if c == nil {
		c = r.h.HostHTTPClient()
	}
	return context.WithValue(ctx, oauth2.HTTPClient, c)
}

// lockConnection takes the refresh lock of a connection, giving up when ctx ends: first this
// process's lock, then the cluster-wide lease "oauth:<id>", so one refresh runs at a time
// whatever the number of nodes (API.md "Cluster"). The lease is renewed while it is held and
// expires on its own when its node dies.
func (r *Registry) lockConnection(ctx context.Context, id string) (unlock func(), err error) {
	r.oauth.mu.Lock()
	if r.oauth.locks == nil {
		r.oauth.locks = map[string]chan struct{}{}
	}
	l := r.oauth.locks[id]
	if l == nil {
		l = make(chan struct{}, 1)
		r.oauth.locks[id] = l
	}
	r.oauth.mu.Unlock()
	select {
	case l <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release, err := r.lease(ctx, "oauth:"+id)
	if err != nil {
		<-l
		return nil, err
	}
	return func() { release(); <-l }, nil
}

// leaseTTL is how long a lease the registry holds outlives its node; it is renewed every
// third of it while held.
const leaseTTL = 15 * time.Second

// lease waits for the cluster-wide lease name and holds it (renewed) until release is called.
func (r *Registry) lease(ctx context.Context, name string) (release func(), err error) {
	holder := r.NodeName()
	if holder == "" {
		holder = "local"
	}
	for {
		ok, err := r.st.TryLease(ctx, name, holder, leaseTTL)
		if err != nil {
			return nil, fmt.Errorf("taking the lease %s: %w", name, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(leaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, err := r.st.TryLease(context.Background(), name, holder, leaseTTL); err != nil {
					r.log.Warn("renewing a lease", "lease", name, "err", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		if err := r.st.ReleaseLease(context.Background(), name, holder); err != nil {
			r.log.Warn("releasing a lease; it expires on its own", "lease", name, "err", err)
		}
	}, nil
}

// forgetConnection drops the refresh lock of a deleted connection.
func (r *Registry) forgetConnection(id string) {
	r.oauth.mu.Lock()
	delete(r.oauth.locks, id)
	r.oauth.mu.Unlock()
}

// resolveOAuth checks an oauth2 auth object against the connectors' manifests and returns the
// settings to store: the manifest's auth.oauth2 (of the first listed connector that has one),
// overridden by the auth object's endpoints and scopes.
//
// A connection shared by several connectors asks for the union of their scopes (in the order
// the connectors and their manifests list them) and uses the endpoints of the first one that
// declares oauth2. The endpoints' {param} placeholders (Microsoft's
// https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token) are filled in from params, the
// connection's params with their defaults, each value path-escaped.
func (r *Registry) resolveOAuth(connectors []string, params map[string]any, s *OAuth2Settings) (*oauthMeta, error) {
	if s == nil || s.ClientID == "" {
		return nil, invalidf("auth.client_id: required for an oauth2 connection")
	}
	m := &oauthMeta{Grant: s.Grant, ClientID: s.ClientID, PKCE: true}
	if m.Grant == "" {
		m.Grant = GrantAuthorizationCode
	}
	if m.Grant != GrantAuthorizationCode && m.Grant != GrantClientCredentials {
		return nil, invalidf("auth.grant: %q is not %s or %s", s.Grant, GrantAuthorizationCode, GrantClientCredentials)
	}
	found := false
	for _, name := range connectors {
		v := r.activeVersion(name)
		if v == nil {
			continue
		}
		o := v.Manifest().Auth.OAuth2
		if o == nil {
			continue
		}
		for _, sc := range o.Scopes {
			if !slices.Contains(m.Scopes, sc) {
				m.Scopes = append(m.Scopes, sc)
			}
		}
		if found {
			continue
		}
		found = true
		var err error
		if s.AuthorizationURL == "" && m.Grant == GrantAuthorizationCode {
			if m.AuthorizationURL, err = expandEndpoint(name, "authorization_url", o.AuthorizationURL, params); err != nil {
				return nil, err
			}
		}
		if s.TokenURL == "" {
			if m.TokenURL, err = expandEndpoint(name, "token_url", o.TokenURL, params); err != nil {
				return nil, err
			}
		}
		if o.PKCE != nil {
			m.PKCE = *o.PKCE
		}
	}
	if s.AuthorizationURL != "" {
		m.AuthorizationURL = s.AuthorizationURL
	}
	if s.TokenURL != "" {
		m.TokenURL = s.TokenURL
	}
	if s.Scopes != nil {
		m.Scopes = s.Scopes
	}
	for i, sc := range m.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n\"\\") {
			return nil, invalidf("auth.scopes[%d]: %q is not a scope token", i, sc)
		}
	}
	if err := checkEndpoint("auth.token_url", m.TokenURL, true); err != nil {
		return nil, err
	}
	if m.Grant == GrantAuthorizationCode {
		if err := checkEndpoint("auth.authorization_url", m.AuthorizationURL, true); err != nil {
			return nil, err
		}
		if err := checkEndpoint("redirect URL (--public-url)", s.RedirectURL, true); err != nil {
			return nil, err
		}
		m.RedirectURL = s.RedirectURL
	} else {
		m.AuthorizationURL, m.PKCE = "", false
	}
	return m, nil
}

// endpointParam is a {param} placeholder of a manifest's OAuth2 endpoint.
var endpointParam = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEndpoint fills the {param} placeholders of connector's OAuth2 endpoint field with the
// connection's params, path-escaped. A placeholder whose param is absent (no value and no
// default) is an invalid request naming the param, unless the auth object overrides the
// endpoint (the caller replaces it then, so its placeholders do not matter).
func expandEndpoint(connector, field, raw string, params map[string]any) (string, error) {
	var missing string
	out := endpointParam.ReplaceAllStringFunc(raw, func(ph string) string {
		name := ph[1 : len(ph)-1]
		switch v := params[name].(type) {
		case string:
			if v != "" {
				return url.PathEscape(v)
			}
		case float64, bool:
			return url.PathEscape(fmt.Sprint(v))
		}
		if missing == "" {
			missing = name
		}
		return ph
	})
	if missing != "" {
		return out, invalidf("params.%s: required: connector %s's OAuth2 %s (%s) is built from it", missing, connector, field, raw)
	}
	return out, nil
}

// checkEndpoint checks an OAuth2 endpoint is an absolute http(s) URL without user info or
// fragment.
func checkEndpoint(field, raw string, required bool) error {
	if raw == "" {
		if required {
			return invalidf("%s: required (neither the connector's manifest nor the connection names one)", field)
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return invalidf("%s: %q is not an absolute http(s) URL without user info or fragment", field, raw)
	}
	return nil
}

func (m *oauthMeta) config(clientSecret string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: m.ClientID, ClientSecret: clientSecret, RedirectURL: m.RedirectURL, Scopes: m.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: m.AuthorizationURL, TokenURL: m.TokenURL, AuthStyle: oauth2.AuthStyleAutoDetect},
	}
}

// consent is a consent URL about to be handed out.
type consent struct {
	state, stateHash, verifier, url string
	expiresAt                       time.Time
}

// newConsent makes a state (32 random bytes) and, with PKCE, a verifier, and the consent URL
// carrying the state and the S256 challenge.
func (r *Registry) newConsent(m *oauthMeta, clientSecret string) (consent, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return consent{}, err
	}
	c := consent{state: base64.RawURLEncoding.EncodeToString(b[:])}
	c.stateHash = hashState(c.state)
	c.expiresAt = r.oauthNow().Add(r.consentTTL())
	var opts []oauth2.AuthCodeOption
	if m.PKCE {
		c.verifier = oauth2.GenerateVerifier()
		opts = append(opts, oauth2.S256ChallengeOption(c.verifier))
	}
	c.url = m.config(clientSecret).AuthCodeURL(c.state, opts...)
	return c, nil
}

// apply records the consent on the connection's meta and credentials.
func (c consent) apply(m *oauthMeta, cred *Credentials) {
	m.StateHash, m.StateExpiresAt = c.stateHash, c.expiresAt
	cred.PKCEVerifier, cred.ConsentURL = c.verifier, c.url
}

// remember records the state so the callback finds the connection.
func (r *Registry) remember(ctx context.Context, c consent, id string) error {
	return r.st.PutOAuthState(ctx, c.stateHash, storage.OAuthState{Connection: id, ExpiresAt: c.expiresAt})
}

func (r *Registry) consentTTL() time.Duration {
	if ttl := r.oauthOpts().ConsentTTL; ttl > 0 {
		return ttl
	}
	return DefaultConsentTTL
}

// hashState is the key a state is stored and compared under.
func hashState(state string) string {
	sum := sha256.Sum256([]byte("plugboard/oauth-state/" + state))
	return hex.EncodeToString(sum[:])
}

// errNoRefreshToken: the connection holds no refresh token, so only a new consent helps.
var errNoRefreshToken = errors.New("the connection holds no refresh token")

// requestToken asks the token endpoint for a new token: the client_credentials grant, or the
// refresh_token grant. The request is not cancelled with ctx (only bounded by the HTTP
// client's timeout): a refresh token the endpoint rotates must not be lost because the caller
// went away.
func (r *Registry) requestToken(ctx context.Context, m *oauthMeta, cred Credentials) (*oauth2.Token, error) {
	ctx = r.oauthContext(context.WithoutCancel(ctx))
	if m.Grant == GrantClientCredentials {
		cc := &clientcredentials.Config{ClientID: m.ClientID, ClientSecret: cred.ClientSecret, TokenURL: m.TokenURL,
			Scopes: m.Scopes, AuthStyle: oauth2.AuthStyleAutoDetect}
		return cc.Token(ctx)
	}
	if cred.RefreshToken == "" {
		return nil, errNoRefreshToken
	}
	return m.config(cred.ClientSecret).TokenSource(ctx, &oauth2.Token{RefreshToken: cred.RefreshToken}).Token()
}

// applyToken stores a token response on the connection: the access token and, when the
// response carries one, the new refresh token (RFC 6749 section 6: it replaces the old one).
func applyToken(m *oauthMeta, cred *Credentials, tok *oauth2.Token, now time.Time) {
	cred.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		cred.RefreshToken = tok.RefreshToken
	}
	m.TokenType = tok.Type()
	m.ObtainedAt = now
	switch {
	case tok.ExpiresIn > 0:
		m.ExpiresAt = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		m.ExpiresAt = tok.Expiry
	default:
		m.ExpiresAt = time.Time{}
	}
	m.LastError = ""
}

// refused reports whether the token endpoint refused the grant (as opposed to failing): only
// a new consent or new credentials can help.
func refused(err error) bool {
	if errors.Is(err, errNoRefreshToken) {
		return true
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		switch re.Response.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			return true
		}
	}
	return false
}

// describeTokenError says what went wrong with a token request in words safe to log and show:
// the status and RFC 6749 error code and description, never a body, and scrubbed of every
// secret of the connection as a last resort.
func describeTokenError(err error, cred Credentials) string {
	var msg string
	var re *oauth2.RetrieveError
	switch {
	case errors.Is(err, errNoRefreshToken):
		msg = err.Error()
	case errors.As(err, &re) && re.Response != nil:
		msg = fmt.Sprintf("the token endpoint answered %d", re.Response.StatusCode)
		if re.ErrorCode != "" {
			msg += " " + re.ErrorCode
		}
		if d := re.ErrorDescription; d != "" {
			if len(d) > 200 {
				d = d[:200] + "..."
			}
			msg += ": " + d
		}
	default:
		msg = "the token request failed: " + err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = "the token request failed: " + ue.Err.Error()
		}
	}
	for _, s := range []string{cred.ClientSecret, cred.RefreshToken, cred.AccessToken, cred.PKCEVerifier, cred.APIKey, cred.Password} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

// errRaced: the connection's credentials changed while a token request was out (a rotation);
// the token obtained with the old ones is dropped.
var errRaced = errors.New("credentials changed during the token request")

// oauthToken returns the access token a call should use, refreshing it first when it is about
// to expire or, with force, when held (the token the call used) was answered 401 and no newer
// one is stored. One refresh runs at a time per connection; callers that waited for it get its
// token without a request of their own. A refreshed token (and a rotated refresh token) is
// persisted before it is returned. A refused refresh sets needs_reauth and returns
// ErrNeedsReauth.
func (r *Registry) oauthToken(ctx context.Context, id, held string, force bool) (string, error) {
	unlock, err := r.lockConnection(ctx, id)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another node may have refreshed while this one waited for the lease: read its write.
	sc, err := r.st.Connection(storage.WithFresh(ctx), id)
	if err != nil {
		return "", mapConnErr(err, id)
	}
	meta, cred := readMeta(sc), Credentials{}
	if cred, err = readCredentials(sc); err != nil {
		return "", err
	}
	m := meta.OAuth
	if sc.AuthType != abi.AuthOAuth2 || m == nil {
		return "", fmt.Errorf("connection %s is not an oauth2 connection", id)
	}
	switch sc.Status {
	case StatusNeedsReauth:
		return "", fmt.Errorf("%w: %s", ErrNeedsReauth, id)
	case StatusPendingConsent:
		return "", fmt.Errorf("%w: %w: %s", ErrInvalid, ErrPendingConsent, id)
	}
	now := r.oauthNow()
	if !m.needsRefresh(now) && cred.AccessToken != "" && (!force || cred.AccessToken != held) {
		return cred.AccessToken, nil // fresh, or refreshed by another call since held was read
	}
	tok, err := r.requestToken(ctx, m, cred)
	if err != nil {
		msg := describeTokenError(err, cred)
		if !refused(err) {
			r.log.Warn("OAuth2 token refresh failed; will try again on the next call", "connection", id, "error", msg)
			return "", fmt.Errorf("%w: %s", ErrTokenEndpoint, msg)
		}
		_, uerr := r.st.UpdateConnection(context.WithoutCancel(ctx), id, func(sc *storage.Connection) error {
			cur, err := readCredentials(*sc)
			if err != nil || cur.RefreshToken != cred.RefreshToken || cur.ClientSecret != cred.ClientSecret {
				return errRaced
			}
			mm := readMeta(*sc)
			if mm.OAuth != nil {
				mm.OAuth.LastError = msg
			}
			sc.Meta, sc.Status = mm.encode(), StatusNeedsReauth
			return nil
		})
		if uerr != nil && !errors.Is(uerr, errRaced) {
			return "", uerr
		}
		r.log.Warn("OAuth2 token refresh refused; the connection needs consent again", "connection", id, "error", msg)
		return "", fmt.Errorf("%w: connection %s: %s", ErrNeedsReauth, id, msg)
	}
	var out string
	_, err = r.st.UpdateConnection(context.WithoutCancel(ctx), id, func(sc *storage.Connection) error {
		cur, err := readCredentials(*sc)
		mm := readMeta(*sc)
		if err != nil || mm.OAuth == nil || cur.RefreshToken != cred.RefreshToken || cur.ClientSecret != cred.ClientSecret || mm.OAuth.ClientID != m.ClientID {
			return errRaced
		}
		applyToken(mm.OAuth, &cur, tok, now)
		mm.OAuth.Refreshes++
		secret, err := cur.encode()
		if err != nil {
			return err
		}
		sc.Secret, sc.Meta, out = secret, mm.encode(), cur.AccessToken
		return nil
	})
	if errors.Is(err, errRaced) {
		// Rotated meanwhile: the stored credentials win.
		sc, err := r.st.Connection(storage.WithFresh(ctx), id)
		if err != nil {
			return "", mapConnErr(err, id)
		}
		cur, err := readCredentials(sc)
		return cur.AccessToken, err
	}
	if err != nil {
		r.log.Error("OAuth2 token refreshed but not stored; the refresh token the endpoint issued may be lost", "connection", id, "err", err)
		return "", err
	}
	return out, nil
}

// CompleteConsent finishes an authorization_code consent at the OAuth2 callback: it takes the
// state (single use: a second callback with it is refused), checks it is the one the
// connection expects, exchanges the code (with the PKCE verifier) and stores the tokens, making
// the connection ready. providerError, when the authorization server answered with an error
// instead of a code, uses the state up and returns ErrConsentDenied.
func (r *Registry) CompleteConsent(ctx context.Context, state, code, providerError string) (Connection, error) {
	refusedState := func(why string) error {
		return fmt.Errorf("%w: %s; ask for a new consent URL with POST /v1/connections/{id}/reauthorize", ErrConsentState, why)
	}
	if state == "" {
		return Connection{}, refusedState("the callback has no state")
	}
	h := hashState(state)
	st, err := r.st.TakeOAuthState(ctx, h)
	if errors.Is(err, storage.ErrNotFound) {
		return Connection{}, refusedState("this consent link is unknown, was already used, or lapsed")
	}
	if err != nil {
		return Connection{}, err
	}
	id := st.Connection
	unlock, err := r.lockConnection(ctx, id)
	if err != nil {
		return Connection{}, err
	}
	defer unlock()
	sc, err := r.st.Connection(ctx, id)
	if err != nil {
		return Connection{}, refusedState("the connection it was for no longer exists")
	}
	meta := readMeta(sc)
	cred, err := readCredentials(sc)
	if err != nil {
		return Connection{}, err
	}
	m := meta.OAuth
	if sc.AuthType != abi.AuthOAuth2 || m == nil || m.Grant != GrantAuthorizationCode ||
		subtle.ConstantTimeCompare([]byte(m.StateHash), []byte(h)) != 1 {
		return Connection{}, refusedState("a newer consent URL replaced this one")
	}
	fail := func(msg string) error {
		_, err := r.st.UpdateConnection(context.WithoutCancel(ctx), id, func(sc *storage.Connection) error {
			mm := readMeta(*sc)
			if mm.OAuth == nil || mm.OAuth.StateHash != h {
				return errRaced
			}
			mm.OAuth.StateHash, mm.OAuth.StateExpiresAt, mm.OAuth.LastError = "", time.Time{}, msg
			sc.Meta = mm.encode()
			c, err := readCredentials(*sc)
			if err != nil {
				return err
			}
			c.PKCEVerifier, c.ConsentURL = "", ""
			sc.Secret, err = c.encode()
			return err
		})
		if err != nil && !errors.Is(err, errRaced) {
			return err
		}
		return nil
	}
	if providerError != "" || code == "" {
		msg := "the authorization server answered " + providerError
		if providerError == "" {
			msg = "the callback has no code"
		}
		if err := fail(msg); err != nil {
			return Connection{}, err
		}
		return r.toConnection(sc), fmt.Errorf("%w: %s", ErrConsentDenied, msg)
	}
	var opts []oauth2.AuthCodeOption
	if m.PKCE {
		opts = append(opts, oauth2.VerifierOption(cred.PKCEVerifier))
	}
	tok, err := m.config(cred.ClientSecret).Exchange(r.oauthContext(context.WithoutCancel(ctx)), code, opts...)
	if err != nil {
		msg := describeTokenError(err, cred)
		if ferr := fail(msg); ferr != nil {
			return Connection{}, ferr
		}
		r.log.Warn("OAuth2 code exchange failed", "connection", id, "error", msg)
		return r.toConnection(sc), fmt.Errorf("%w: exchanging the code: %s", ErrTokenEndpoint, msg)
	}
	now := r.oauthNow()
	out, err := r.st.UpdateConnection(context.WithoutCancel(ctx), id, func(sc *storage.Connection) error {
		mm := readMeta(*sc)
		c, err := readCredentials(*sc)
		if err != nil || mm.OAuth == nil || mm.OAuth.StateHash != h {
			return errRaced
		}
		applyToken(mm.OAuth, &c, tok, now)
		mm.OAuth.StateHash, mm.OAuth.StateExpiresAt, mm.OAuth.Refreshes = "", time.Time{}, 0
		c.PKCEVerifier, c.ConsentURL = "", ""
		if sc.Secret, err = c.encode(); err != nil {
			return err
		}
		sc.Meta, sc.Status = mm.encode(), StatusReady
		return nil
	})
	if errors.Is(err, errRaced) {
		return Connection{}, refusedState("the connection's credentials changed during the consent")
	}
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	r.log.Info("OAuth2 consent completed", "connection", id)
	return r.toConnection(out), nil
}

// Reauthorize starts a new consent for an oauth2 authorization_code connection (after
// needs_reauth, or to change scopes: scopes non-nil replaces them) and returns the connection
// with its new ConsentURL; earlier consent URLs stop working. The connection keeps its status
// and tokens until the consent completes. A client_credentials connection gets a new token at
// once instead. redirectURL is the server's callback URL.
func (r *Registry) Reauthorize(ctx context.Context, id, redirectURL string, scopes []string) (Connection, error) {
	sc, err := r.st.Connection(ctx, id)
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	meta := readMeta(sc)
	cred, err := readCredentials(sc)
	if err != nil {
		return Connection{}, err
	}
	if sc.AuthType != abi.AuthOAuth2 || meta.OAuth == nil {
		return Connection{}, invalidf("connection %s uses auth %q; only oauth2 connections are reauthorized (rotate other credentials with PUT /v1/connections/%s/credentials)", id, sc.AuthType, id)
	}
	m := *meta.OAuth
	if scopes != nil {
		m.Scopes = scopes
	}
	if m.Grant == GrantClientCredentials {
		unlock, err := r.lockConnection(ctx, id)
		if err != nil {
			return Connection{}, err
		}
		defer unlock()
		tok, err := r.requestToken(ctx, &m, cred)
		if err != nil {
			return Connection{}, fmt.Errorf("%w: %s", ErrTokenEndpoint, describeTokenError(err, cred))
		}
		now := r.oauthNow()
		out, err := r.st.UpdateConnection(context.WithoutCancel(ctx), id, func(sc *storage.Connection) error {
			mm := readMeta(*sc)
			c, err := readCredentials(*sc)
			if err != nil || mm.OAuth == nil || c.ClientSecret != cred.ClientSecret || mm.OAuth.ClientID != m.ClientID {
				return errRaced
			}
			mm.OAuth.Scopes = m.Scopes
			applyToken(mm.OAuth, &c, tok, now)
			if sc.Secret, err = c.encode(); err != nil {
				return err
			}
			sc.Meta, sc.Status = mm.encode(), StatusReady
			return nil
		})
		if errors.Is(err, errRaced) {
			return Connection{}, fmt.Errorf("%w: the connection's credentials changed meanwhile; try again", ErrInvalid)
		}
		if err != nil {
			return Connection{}, mapConnErr(err, id)
		}
		return r.toConnection(out), nil
	}
	if err := checkEndpoint("redirect URL (--public-url)", redirectURL, true); err != nil {
		return Connection{}, err
	}
	m.RedirectURL = redirectURL
	for i, s := range m.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return Connection{}, invalidf("scopes[%d]: %q is not a scope token", i, s)
		}
	}
	c, err := r.newConsent(&m, cred.ClientSecret)
	if err != nil {
		return Connection{}, err
	}
	out, err := r.st.UpdateConnection(ctx, id, func(sc *storage.Connection) error {
		mm := readMeta(*sc)
		cur, err := readCredentials(*sc)
		if err != nil || mm.OAuth == nil || sc.AuthType != abi.AuthOAuth2 {
			return errRaced
		}
		mm.OAuth.Scopes, mm.OAuth.RedirectURL = m.Scopes, m.RedirectURL
		c.apply(mm.OAuth, &cur)
		if sc.Secret, err = cur.encode(); err != nil {
			return err
		}
		sc.Meta = mm.encode()
		return nil
	})
	if errors.Is(err, errRaced) {
		return Connection{}, fmt.Errorf("%w: the connection's credentials changed meanwhile; try again", ErrInvalid)
	}
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	if err := r.remember(ctx, c, id); err != nil {
		return Connection{}, err
	}
	conn := r.toConnection(out)
	conn.ConsentURL = c.url
	return conn, nil
}
