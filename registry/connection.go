package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
)

// Connection statuses.
const (
	StatusReady          = "ready"
	StatusPendingConsent = "pending_consent"
	StatusNeedsReauth    = "needs_reauth"
)

// Credentials are a connection's secrets. They are sealed at rest and only ever read by the
// host to inject them or to compute an HMAC.
type Credentials struct {
	APIKey       string            `json:"api_key,omitempty"`
	Username     string            `json:"username,omitempty"`
	Password     string            `json:"password,omitempty"`
	AccessToken  string            `json:"access_token,omitempty"`
	RefreshToken string            `json:"refresh_token,omitempty"`
	ClientSecret string            `json:"client_secret,omitempty"`
	Secrets      map[string]string `json:"secrets,omitempty"`
	// PKCEVerifier and ConsentURL belong to a pending OAuth2 consent; they are sealed with the
	// rest and never reach a plugin.
	PKCEVerifier string `json:"pkce_verifier,omitempty"`
	ConsentURL   string `json:"consent_url,omitempty"`
}

// fields returns the credential fields by the names plugboard_credential uses.
func (c Credentials) fields() map[string]string {
	out := map[string]string{}
	for k, v := range c.Secrets {
		out[k] = v
	}
	for k, v := range map[string]string{"api_key": c.APIKey, "username": c.Username, "password": c.Password, "access_token": c.AccessToken} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// Auth is the auth object of a connection request: the type and its secrets. For oauth2,
// OAuth2 holds the non-secret settings and Credentials.ClientSecret the client secret; token
// fields given in Credentials are ignored (tokens come from the token endpoint only).
type Auth struct {
	Type        string
	Credentials Credentials
	OAuth2      *OAuth2Settings
}

// ConnectionSpec is what creating a connection needs.
type ConnectionSpec struct {
	ID         string
	Connectors []string
	Params     map[string]any
	Auth       Auth
	// RevealApproved is the operator's approval of plugboard_credential reveal for these
	// fields; each must be declared under capabilities.reveal by a connector of the connection.
	RevealApproved []string
	// RateLimit limits the connection's outbound requests; nil means none.
	RateLimit *RateLimit
}

// Connection is the non-secret view of a connection.
type Connection struct {
	ID         string
	Connectors []string
	Params     map[string]any
	AuthType   string
	Hosts      []string
	Status     string
	// SecretFields names the extra secret fields the connection holds (never their values).
	SecretFields []string
	// OAuth2 is the non-secret state of an oauth2 connection; nil for other auth types.
	OAuth2 *OAuth2Info
	// ConsentURL is where a person grants access while a consent is pending (after creation
	// or reauthorize); "" otherwise.
	ConsentURL string
	// RevealApproved lists the fields an operator approved for plugboard_credential reveal.
	RevealApproved []string
	// RateLimit is the connection's limit on outbound requests; nil means none.
	RateLimit *RateLimit
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Errors of connection operations, mapped to problem codes by the server.
var (
	ErrConnectionNotFound = errors.New("connection not found")
	ErrConnectionExists   = errors.New("connection already exists")
	// ErrConnectionInUse: MCP servers (and, later, subscriptions) still use the connection.
	ErrConnectionInUse   = errors.New("connection in use")
	ErrConnectorNotFound = errors.New("connector not found")
	ErrVersionNotFound   = errors.New("version not found")
	// ErrInvalid wraps every validation failure of a request; the message names the field.
	ErrInvalid = errors.New("invalid request")
)

var connIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// CreateConnection validates spec against the active manifests of its connectors and stores
// it with its credentials sealed. The connection's hosts are the expanded hosts of its
// connectors at creation.
func (r *Registry) CreateConnection(ctx context.Context, spec ConnectionSpec) (Connection, error) {
	if !connIDRE.MatchString(spec.ID) {
		return Connection{}, invalidf("id %q must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit", spec.ID)
	}
	params, hosts, err := r.checkConnection(ctx, spec.Connectors, spec.Params, spec.Auth)
	if err != nil {
		return Connection{}, err
	}
	if err := checkRateLimit(spec.RateLimit); err != nil {
		return Connection{}, err
	}
	if err := r.checkRevealApproved(spec.Connectors, spec.RevealApproved); err != nil {
		return Connection{}, err
	}
	if _, err := r.st.Connection(ctx, spec.ID); err == nil {
		// Checked before any token request, so a taken id costs the token endpoint nothing.
		return Connection{}, fmt.Errorf("%w: %s", ErrConnectionExists, spec.ID)
	}
	meta := connMeta{RevealApproved: spec.RevealApproved, RateLimit: spec.RateLimit}
	cred := spec.Auth.Credentials.withoutTokens()
	status := StatusReady
	var pending *consent
	if spec.Auth.Type == abi.AuthOAuth2 {
		m, err := r.resolveOAuth(spec.Connectors, params, spec.Auth.OAuth2)
		if err != nil {
			return Connection{}, err
		}
		if m.Grant == GrantClientCredentials {
			tok, err := r.requestToken(ctx, m, cred)
			if err != nil {
				return Connection{}, fmt.Errorf("%w: %s", ErrTokenEndpoint, describeTokenError(err, cred))
			}
			applyToken(m, &cred, tok, r.oauthNow())
		} else {
			c, err := r.newConsent(m, cred.ClientSecret)
			if err != nil {
				return Connection{}, err
			}
			c.apply(m, &cred)
			pending, status = &c, StatusPendingConsent
		}
		meta.OAuth = m
	}
	secret, err := cred.encode()
	if err != nil {
		return Connection{}, err
	}
	now := r.now()
	pj, _ := json.Marshal(params)
	sc := storage.Connection{ID: spec.ID, Connectors: spec.Connectors, Params: pj, AuthType: spec.Auth.Type,
		Hosts: hosts, Status: status, CreatedAt: now, UpdatedAt: now, Secret: secret, Meta: meta.encode()}
	if err := r.st.CreateConnection(ctx, sc); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return Connection{}, fmt.Errorf("%w: %s", ErrConnectionExists, spec.ID)
		}
		return Connection{}, err
	}
	if pending != nil {
		if err := r.remember(ctx, *pending, spec.ID); err != nil {
			return Connection{}, err
		}
	}
	return r.toConnection(sc), nil
}

// withoutTokens returns c without the fields only the server fills in: tokens and pending
// consent.
func (c Credentials) withoutTokens() Credentials {
	c.AccessToken, c.RefreshToken, c.PKCEVerifier, c.ConsentURL = "", "", "", ""
	return c
}

// checkConnection validates connectors, auth type and params, and returns the params with
// defaults applied and the expanded hosts. A connector this node does not serve yet is looked
// up in the store: in a cluster, another node may have activated it a moment ago and this
// node's watch may not have delivered it (API.md "Cluster": a write acknowledged on one node is
// seen by the next request on any node).
func (r *Registry) checkConnection(ctx context.Context, connectors []string, params map[string]any, auth Auth) (map[string]any, []string, error) {
	if len(connectors) == 0 {
		return nil, nil, invalidf("connectors: name at least one connector that may use this connection")
	}
	if !authTypeKnown(auth.Type) {
		return nil, nil, invalidf("auth.type: %q is not one of none, api_key, basic, oauth2", auth.Type)
	}
	c := auth.Credentials
	switch {
	case auth.Type == abi.AuthAPIKey && c.APIKey == "":
		return nil, nil, invalidf("auth.api_key: required for an api_key connection")
	case auth.Type == abi.AuthBasic && (c.Username == "" || c.Password == ""):
		return nil, nil, invalidf("auth.username, auth.password: both required for a basic connection")
	}
	if params == nil {
		params = map[string]any{}
	}
	merged := map[string]any{}
	for k, v := range params {
		merged[k] = v
	}
	var hosts []string
	for i, name := range connectors {
		if slices.Contains(connectors[:i], name) {
			return nil, nil, invalidf("connectors: %q is listed twice", name)
		}
		rt, err := r.servedRoute(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		lv := rt.active
		man := lv.Manifest()
		if !man.HasAuthType(auth.Type) {
			return nil, nil, invalidf("auth.type: connector %s accepts %v, not %q", name, man.Auth.Types, auth.Type)
		}
		applyDefaults(man.ConnectionParams, merged)
		if lv.params != nil {
			pj, _ := json.Marshal(merged)
			if errs := lv.params.Validate(pj); errs != nil {
				return nil, nil, &SchemaError{Field: "params", Connector: name, Errors: errs}
			}
		}
		h, err := abi.ExpandHosts(man.Hosts, merged)
		if err != nil {
			return nil, nil, invalidf("params: %v (connector %s uses it as a host)", err, name)
		}
		for _, o := range h {
			if !slices.Contains(hosts, o) {
				hosts = append(hosts, o)
			}
		}
	}
	return merged, hosts, nil
}

// SchemaError is a request value that failed its JSON Schema.
type SchemaError struct {
	Field     string
	Connector string
	Errors    []check.SchemaError
}

// Error implements the error interface.
func (e *SchemaError) Error() string {
	msg := e.Field + " do not match the connection_params schema of " + e.Connector
	if len(e.Errors) > 0 {
		msg += ": " + e.Field + e.Errors[0].Path + ": " + e.Errors[0].Message
	}
	return msg
}

// applyDefaults fills absent top-level params from the schema's property defaults.
func applyDefaults(schema json.RawMessage, params map[string]any) {
	var s struct {
		Properties map[string]struct {
			Default any `json:"default"`
		} `json:"properties"`
	}
	if json.Unmarshal(schema, &s) != nil {
		return
	}
	for k, p := range s.Properties {
		if _, ok := params[k]; !ok && p.Default != nil {
			params[k] = p.Default
		}
	}
}

// toConnection is the non-secret view of a stored connection.
func (r *Registry) toConnection(sc storage.Connection) Connection {
	c := Connection{ID: sc.ID, Connectors: sc.Connectors, AuthType: sc.AuthType, Hosts: sc.Hosts,
		Status: sc.Status, CreatedAt: sc.CreatedAt, UpdatedAt: sc.UpdatedAt, Params: map[string]any{}}
	_ = json.Unmarshal(sc.Params, &c.Params)
	meta := readMeta(sc)
	c.RevealApproved, c.RateLimit = meta.RevealApproved, meta.RateLimit
	var cred Credentials
	if json.Unmarshal(sc.Secret, &cred) == nil {
		for k := range cred.Secrets {
			c.SecretFields = append(c.SecretFields, k)
		}
		slices.Sort(c.SecretFields)
	}
	if m := meta.OAuth; m != nil && sc.AuthType == abi.AuthOAuth2 {
		c.OAuth2 = m.info()
		if m.pendingConsent(r.oauthNow()) {
			c.ConsentURL = cred.ConsentURL
		}
	}
	if c.Hosts == nil {
		c.Hosts = []string{}
	}
	return c
}

// GetConnection returns a connection without its secrets.
func (r *Registry) GetConnection(ctx context.Context, id string) (Connection, error) {
	sc, err := r.st.Connection(ctx, id)
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	return r.toConnection(sc), nil
}

// ListConnections returns every connection without secrets, sorted by id.
func (r *Registry) ListConnections(ctx context.Context) ([]Connection, error) {
	all, err := r.st.Connections(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Connection, len(all))
	for i, sc := range all {
		out[i] = r.toConnection(sc)
	}
	return out, nil
}

// ConnectionPatch changes a connection's non-secret fields; nil fields stay as they are.
type ConnectionPatch struct {
	Params     map[string]any
	Connectors []string
	Hosts      []string
	// RevealApproved replaces the reveal approvals (empty: none).
	RevealApproved []string
	// RateLimit replaces the rate limit; a zero PerSecond removes it.
	RateLimit *RateLimit
}

// PatchConnection applies p after validating the result against the connectors' manifests.
// Hosts given explicitly are an operator's approval and replace the connection's hosts; they
// must be origins.
func (r *Registry) PatchConnection(ctx context.Context, id string, p ConnectionPatch) (Connection, error) {
	var out storage.Connection
	_, err := r.st.UpdateConnection(ctx, id, func(sc *storage.Connection) error {
		cur := r.toConnection(*sc)
		connectors := cur.Connectors
		if p.Connectors != nil {
			connectors = p.Connectors
		}
		params := cur.Params
		if p.Params != nil {
			params = p.Params
		}
		var cred Credentials
		_ = json.Unmarshal(sc.Secret, &cred)
		merged, hosts, err := r.checkConnection(ctx, connectors, params, Auth{Type: sc.AuthType, Credentials: cred})
		if err != nil {
			return err
		}
		if p.Hosts != nil {
			hosts = make([]string, 0, len(p.Hosts))
			for i, h := range p.Hosts {
				o, err := abi.NormalizeOrigin(h, true)
				if err != nil {
					return invalidf("hosts[%d]: %v", i, err)
				}
				hosts = append(hosts, o)
			}
		} else if p.Params == nil && p.Connectors == nil {
			hosts = sc.Hosts
		}
		meta := readMeta(*sc)
		if p.RevealApproved != nil {
			if err := r.checkRevealApproved(connectors, p.RevealApproved); err != nil {
				return err
			}
			meta.RevealApproved = p.RevealApproved
		}
		if p.RateLimit != nil {
			meta.RateLimit = p.RateLimit
			if p.RateLimit.PerSecond == 0 && p.RateLimit.Burst == 0 {
				meta.RateLimit = nil
			} else if err := checkRateLimit(p.RateLimit); err != nil {
				return err
			}
		}
		pj, _ := json.Marshal(merged)
		sc.Connectors, sc.Params, sc.Hosts, sc.Meta, sc.UpdatedAt = connectors, pj, hosts, meta.encode(), r.now()
		out = *sc
		return nil
	})
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	return r.toConnection(out), nil
}

// RotateCredentials replaces a connection's auth atomically: calls already running keep the
// binding they started with; calls after it use the new secret.
//
// For oauth2: a client_credentials auth gets a token with the new credentials first (a refusal
// leaves the connection as it was); an authorization_code auth with the same client id and
// token endpoint keeps the connection's tokens (a client secret rotation), any other one starts
// a new consent (pending_consent, with a ConsentURL).
func (r *Registry) RotateCredentials(ctx context.Context, id string, auth Auth) (Connection, error) {
	prev, err := r.st.Connection(ctx, id)
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	cred := auth.Credentials.withoutTokens()
	var m *oauthMeta
	var pending *consent
	keepTokens := false
	if auth.Type == abi.AuthOAuth2 {
		if m, err = r.resolveOAuth(prev.Connectors, connParams(prev), auth.OAuth2); err != nil {
			return Connection{}, err
		}
		old := readMeta(prev).OAuth
		switch {
		case m.Grant == GrantClientCredentials:
			tok, err := r.requestToken(ctx, m, cred)
			if err != nil {
				return Connection{}, fmt.Errorf("%w: %s", ErrTokenEndpoint, describeTokenError(err, cred))
			}
			applyToken(m, &cred, tok, r.oauthNow())
		case prev.AuthType == abi.AuthOAuth2 && old != nil && old.Grant == GrantAuthorizationCode &&
			old.ClientID == m.ClientID && old.TokenURL == m.TokenURL:
			keepTokens = true
		default:
			c, err := r.newConsent(m, cred.ClientSecret)
			if err != nil {
				return Connection{}, err
			}
			c.apply(m, &cred)
			pending = &c
		}
	}
	var out storage.Connection
	_, err = r.st.UpdateConnection(ctx, id, func(sc *storage.Connection) error {
		cur := r.toConnection(*sc)
		if _, _, err := r.checkConnection(ctx, cur.Connectors, cur.Params, auth); err != nil {
			return err
		}
		meta := readMeta(*sc)
		next := cred
		status := StatusReady
		switch {
		case m == nil:
			meta.OAuth = nil
		case keepTokens:
			old, err := readCredentials(*sc)
			if err != nil {
				return err
			}
			if meta.OAuth == nil {
				return errRaced
			}
			next.AccessToken, next.RefreshToken = old.AccessToken, old.RefreshToken
			next.PKCEVerifier, next.ConsentURL = old.PKCEVerifier, old.ConsentURL
			m.TokenType, m.ObtainedAt, m.ExpiresAt = meta.OAuth.TokenType, meta.OAuth.ObtainedAt, meta.OAuth.ExpiresAt
			m.StateHash, m.StateExpiresAt, m.Refreshes = meta.OAuth.StateHash, meta.OAuth.StateExpiresAt, meta.OAuth.Refreshes
			if next.RefreshToken == "" && next.AccessToken == "" {
				status = sc.Status
			}
			meta.OAuth = m
		case pending != nil:
			meta.OAuth, status = m, StatusPendingConsent
		default:
			meta.OAuth = m
		}
		secret, err := next.encode()
		if err != nil {
			return err
		}
		sc.AuthType, sc.Secret, sc.Meta, sc.Status, sc.UpdatedAt = auth.Type, secret, meta.encode(), status, r.now()
		out = *sc
		return nil
	})
	if errors.Is(err, errRaced) {
		return Connection{}, fmt.Errorf("%w: the connection's credentials changed meanwhile; try again", ErrInvalid)
	}
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	if pending != nil {
		if err := r.remember(ctx, *pending, id); err != nil {
			return Connection{}, err
		}
	}
	return r.toConnection(out), nil
}

// DeleteConnection removes a connection, its kv state and its timers.
func (r *Registry) DeleteConnection(ctx context.Context, id string) error {
	users, err := r.MCPServersUsing(ctx, id)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: connection %s is used by MCP servers %s; delete them or move them to another connection first", ErrConnectionInUse, id, strings.Join(users, ", "))
	}
	subs, err := r.st.Subscriptions(ctx, "")
	if err != nil {
		return err
	}
	var subIDs []string
	for _, s := range subs {
		if s.Connection == id {
			subIDs = append(subIDs, s.ID)
		}
	}
	if len(subIDs) > 0 {
		return fmt.Errorf("%w: connection %s is used by subscriptions %s; delete them first (DELETE /v1/subscriptions/{id})", ErrConnectionInUse, id, strings.Join(subIDs, ", "))
	}
	if err := r.st.DeleteConnection(ctx, id); err != nil {
		return mapConnErr(err, id)
	}
	r.forgetConnection(id)
	return nil
}

func mapConnErr(err error, id string) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrConnectionNotFound, id)
	}
	return err
}

// Binding opens a connection's credentials for one call. The binding is a snapshot: a rotation
// during the call does not change it.
//
// For an oauth2 connection it refreshes the access token first when less than a third of its
// lifetime or 60 s remains (one refresh per connection however many calls wait for it), and
// sets Binding.Refresh for the refresh after a 401. A refused refresh returns the connection
// with Status needs_reauth (the caller answers 409); a connection still waiting for its first
// consent is an error wrapping ErrInvalid and ErrPendingConsent. When the token endpoint fails
// (rather than refuses), the call goes ahead with the current token.
func (r *Registry) Binding(ctx context.Context, id string) (*host.Binding, Connection, error) {
	sc, err := r.st.Connection(ctx, id)
	if err != nil {
		return nil, Connection{}, mapConnErr(err, id)
	}
	cred, err := readCredentials(sc)
	if err != nil {
		return nil, Connection{}, err
	}
	c := r.toConnection(sc)
	b := &host.Binding{ID: c.ID, Params: c.Params, AuthType: c.AuthType, Origins: c.Hosts, RevealApproved: c.RevealApproved}
	if l := c.RateLimit; l != nil {
		b.RateLimit = &host.RateLimit{PerSecond: l.PerSecond, Burst: l.Burst}
	}
	if c.AuthType == abi.AuthOAuth2 {
		switch c.Status {
		case StatusPendingConsent:
			return nil, c, fmt.Errorf("%w: %w: connection %s: open its consent URL in a browser (POST /v1/connections/%s/reauthorize gives a new one)", ErrInvalid, ErrPendingConsent, id, id)
		case StatusNeedsReauth:
			return b, c, nil
		}
		if m := readMeta(sc).OAuth; m != nil && (m.needsRefresh(r.oauthNow()) || cred.AccessToken == "") {
			tok, err := r.oauthToken(ctx, id, cred.AccessToken, false)
			switch {
			case errors.Is(err, ErrNeedsReauth):
				c.Status = StatusNeedsReauth
				return b, c, nil
			case err == nil:
				cred.AccessToken = tok
			case ctx.Err() != nil:
				return nil, c, err
			}
		}
		var mu sync.Mutex
		held := cred.AccessToken
		b.Refresh = func(ctx context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			tok, err := r.oauthToken(ctx, id, held, true)
			if err == nil {
				held = tok
			}
			return tok, err
		}
	}
	b.Secrets = cred.fields()
	return b, c, nil
}

// connParams decodes a stored connection's params (with the defaults filled in at creation).
func connParams(sc storage.Connection) map[string]any {
	params := map[string]any{}
	_ = json.Unmarshal(sc.Params, &params)
	return params
}
