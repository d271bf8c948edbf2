package server

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
)

// authBody is the "auth" object of API.md "Connections". Secrets are write-only.
type authBody struct {
	Type             string            `json:"type"`
	APIKey           string            `json:"api_key,omitempty"`
	Username         string            `json:"username,omitempty"`
	Password         string            `json:"password,omitempty"`
	Grant            string            `json:"grant,omitempty"`
	ClientID         string            `json:"client_id,omitempty"`
	ClientSecret     string            `json:"client_secret,omitempty"`
	Scopes           []string          `json:"scopes,omitempty"`
	AuthorizationURL string            `json:"authorization_url,omitempty"`
	TokenURL         string            `json:"token_url,omitempty"`
	Secrets          map[string]string `json:"secrets,omitempty"`
}

// toAuth turns the auth object and the extra secrets into the registry's form; redirectURL is
// the OAuth2 callback of this server.
func (a *authBody) toAuth(extra map[string]string, redirectURL string) registry.Auth {
	secrets := map[string]string{}
	for k, v := range a.Secrets {
		secrets[k] = v
	}
	for k, v := range extra {
		secrets[k] = v
	}
	if len(secrets) == 0 {
		secrets = nil
	}
	auth := registry.Auth{Type: a.Type, Credentials: registry.Credentials{
		APIKey: a.APIKey, Username: a.Username, Password: a.Password, ClientSecret: a.ClientSecret, Secrets: secrets,
	}}
	if a.Type == "oauth2" {
		auth.OAuth2 = &registry.OAuth2Settings{Grant: a.Grant, ClientID: a.ClientID, Scopes: a.Scopes,
			AuthorizationURL: a.AuthorizationURL, TokenURL: a.TokenURL, RedirectURL: redirectURL}
	}
	return auth
}

// authDoc is the "auth" object of a connection document: the type and, for oauth2, the
// non-secret settings and the token's times. Never a secret.
type authDoc struct {
	Type             string     `json:"type"`
	Grant            string     `json:"grant,omitempty"`
	ClientID         string     `json:"client_id,omitempty"`
	Scopes           []string   `json:"scopes,omitempty"`
	AuthorizationURL string     `json:"authorization_url,omitempty"`
	TokenURL         string     `json:"token_url,omitempty"`
	PKCE             *bool      `json:"pkce,omitempty"`
	TokenObtainedAt  *time.Time `json:"token_obtained_at,omitempty"`
	TokenExpiresAt   *time.Time `json:"token_expires_at,omitempty"`
	Refreshes        int        `json:"refreshes,omitempty"`
	LastError        string     `json:"last_error,omitempty"`
}

// rateLimitDoc is a connection's rate limit as configured.
type rateLimitDoc struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst,omitempty"`
}

// resilienceDoc is the live state of a connection's resilience policies.
type resilienceDoc struct {
	// RateLimit is the token bucket's fill; absent without a limit.
	RateLimit *bucketDoc `json:"rate_limit,omitempty"`
	// Limited counts requests the bucket refused; Retries requests sent again.
	Limited  uint64       `json:"rate_limited"`
	Retries  uint64       `json:"retries"`
	Breakers []breakerDoc `json:"breakers"`
}

type bucketDoc struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
	Tokens    float64 `json:"tokens"`
}

type breakerDoc struct {
	Origin   string     `json:"origin"`
	State    string     `json:"state"`
	Failures int        `json:"consecutive_failures"`
	Opened   uint64     `json:"opened"`
	Rejected uint64     `json:"rejected"`
	RetryAt  *time.Time `json:"retry_at,omitempty"`
}

type connectionDoc struct {
	ID             string         `json:"id"`
	Connectors     []string       `json:"connectors"`
	Params         map[string]any `json:"params"`
	Auth           authDoc        `json:"auth"`
	Hosts          []string       `json:"hosts"`
	Status         string         `json:"status"`
	ConsentURL     string         `json:"consent_url,omitempty"`
	SecretFields   []string       `json:"secret_fields,omitempty"`
	RevealApproved []string       `json:"reveal_approved,omitempty"`
	RateLimit      *rateLimitDoc  `json:"rate_limit,omitempty"`
	Resilience     resilienceDoc  `json:"resilience"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

// toConnectionDoc renders a connection with the live state of its resilience policies.
func (s *Server) toConnectionDoc(c registry.Connection) connectionDoc {
	d := connectionDoc{ID: c.ID, Connectors: c.Connectors, Params: c.Params, Hosts: c.Hosts, Status: c.Status,
		ConsentURL: c.ConsentURL, SecretFields: c.SecretFields, RevealApproved: c.RevealApproved,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	d.Auth.Type = c.AuthType
	if o := c.OAuth2; o != nil {
		pkce := o.PKCE
		d.Auth.Grant, d.Auth.ClientID, d.Auth.Scopes, d.Auth.PKCE = o.Grant, o.ClientID, o.Scopes, &pkce
		d.Auth.AuthorizationURL, d.Auth.TokenURL = o.AuthorizationURL, o.TokenURL
		d.Auth.Refreshes, d.Auth.LastError = o.Refreshes, o.LastError
		if !o.ObtainedAt.IsZero() {
			t := o.ObtainedAt.UTC()
			d.Auth.TokenObtainedAt = &t
		}
		if !o.ExpiresAt.IsZero() {
			t := o.ExpiresAt.UTC()
			d.Auth.TokenExpiresAt = &t
		}
	}
	if l := c.RateLimit; l != nil {
		d.RateLimit = &rateLimitDoc{PerSecond: l.PerSecond, Burst: l.Burst}
	}
	st := s.host.PolicyStats(c.ID)
	d.Resilience = resilienceDoc{Limited: st.Limited, Retries: st.Retries, Breakers: []breakerDoc{}}
	if b := st.RateLimit; b != nil && c.RateLimit != nil {
		d.Resilience.RateLimit = &bucketDoc{PerSecond: b.PerSecond, Burst: b.Burst, Tokens: b.Tokens}
	}
	for _, b := range st.Breakers {
		bd := breakerDoc{Origin: b.Origin, State: b.State, Failures: b.Failures, Opened: b.Opened, Rejected: b.Rejected}
		if b.State != host.BreakerClosed {
			t := b.RetryAt.UTC()
			bd.RetryAt = &t
		}
		d.Resilience.Breakers = append(d.Resilience.Breakers, bd)
	}
	return d
}

// rateLimitBody is the "rate_limit" field of a request: {"per_second": 10, "burst": 20}.
type rateLimitBody struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst,omitempty"`
}

// POST /v1/connections
func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ID             string            `json:"id"`
		Connectors     []string          `json:"connectors"`
		Params         map[string]any    `json:"params,omitempty"`
		Auth           *authBody         `json:"auth"`
		Secrets        map[string]string `json:"secrets,omitempty"`
		RevealApproved []string          `json:"reveal_approved,omitempty"`
		RateLimit      *rateLimitBody    `json:"rate_limit,omitempty"`
	}
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &body); err != nil {
		return err
	}
	if err := s.authorizeConnection(r.Context(), body.ID, body.Connectors); err != nil {
		return err
	}
	if body.Auth == nil {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "auth: required, e.g. {\"type\": \"api_key\", \"api_key\": \"...\"} or {\"type\": \"none\"}")
	}
	spec := registry.ConnectionSpec{ID: body.ID, Connectors: body.Connectors, Params: body.Params,
		Auth: body.Auth.toAuth(body.Secrets, s.callbackURL(r)), RevealApproved: body.RevealApproved}
	if l := body.RateLimit; l != nil {
		spec.RateLimit = &registry.RateLimit{PerSecond: l.PerSecond, Burst: l.Burst}
	}
	c, err := s.reg.CreateConnection(r.Context(), spec)
	if err != nil {
		return oauthProblem(err)
	}
	writeJSON(w, http.StatusCreated, s.toConnectionDoc(c))
	return nil
}

// GET /v1/connections
func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.reg.ListConnections(r.Context())
	if err != nil {
		return err
	}
	p := principalFrom(r.Context())
	docs := make([]connectionDoc, 0, len(cs))
	for _, c := range cs {
		if p.allowsConnection(c.ID) && (p.Connectors == nil || slices.ContainsFunc(c.Connectors, p.allowsConnector)) {
			docs = append(docs, s.toConnectionDoc(c))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": docs})
	return nil
}

// GET /v1/connections/{id}
func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) error {
	c, err := s.reg.GetConnection(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.toConnectionDoc(c))
	return nil
}

// PATCH /v1/connections/{id} {"params", "connectors", "hosts", "reveal_approved", "rate_limit"}
//
// "reveal_approved" replaces the fields an operator approves for plugboard_credential reveal
// ([] approves none); "rate_limit" replaces the rate limit, null removes it.
func (s *Server) patchConnection(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Params         map[string]any  `json:"params,omitempty"`
		Connectors     []string        `json:"connectors,omitempty"`
		Hosts          []string        `json:"hosts,omitempty"`
		RevealApproved []string        `json:"reveal_approved,omitempty"`
		RateLimit      json.RawMessage `json:"rate_limit,omitempty"`
	}
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &body); err != nil {
		return err
	}
	if err := s.authorizeConnection(r.Context(), mux.Vars(r)["id"], body.Connectors); err != nil {
		return err
	}
	patch := registry.ConnectionPatch{Params: body.Params, Connectors: body.Connectors, Hosts: body.Hosts, RevealApproved: body.RevealApproved}
	if len(body.RateLimit) > 0 {
		patch.RateLimit = &registry.RateLimit{}
		if string(body.RateLimit) != "null" {
			var l rateLimitBody
			if err := decodeStrictProblem(body.RateLimit, &l); err != nil {
				return err
			}
			if l.PerSecond == 0 {
				return newProblem(http.StatusBadRequest, codeInvalidRequest, "rate_limit.per_second: must be above 0 (send \"rate_limit\": null to remove the limit)")
			}
			patch.RateLimit = &registry.RateLimit{PerSecond: l.PerSecond, Burst: l.Burst}
		}
	}
	c, err := s.reg.PatchConnection(r.Context(), mux.Vars(r)["id"], patch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.toConnectionDoc(c))
	return nil
}

// PUT /v1/connections/{id}/credentials: the body is a new auth object (optionally with
// "secrets"), or {"auth": {...}, "secrets": {...}}.
func (s *Server) rotateCredentials(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	var wrapped struct {
		Auth    *authBody         `json:"auth"`
		Secrets map[string]string `json:"secrets,omitempty"`
	}
	var auth authBody
	var extra map[string]string
	if json.Unmarshal(b, &wrapped) == nil && wrapped.Auth != nil {
		if err := decodeStrictProblem(b, &wrapped); err != nil {
			return err
		}
		auth, extra = *wrapped.Auth, wrapped.Secrets
	} else if err := decodeStrictProblem(b, &auth); err != nil {
		return err
	}
	c, err := s.reg.RotateCredentials(r.Context(), mux.Vars(r)["id"], auth.toAuth(extra, s.callbackURL(r)))
	if err != nil {
		return oauthProblem(err)
	}
	writeJSON(w, http.StatusOK, s.toConnectionDoc(c))
	return nil
}

// DELETE /v1/connections/{id}
func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if err := s.reg.DeleteConnection(r.Context(), id); err != nil {
		return err
	}
	s.host.ForgetConnection(id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// authorizeConnection checks the caller's scopes for connection id and each connector it is
// to be bound to (a key narrowed to connectors binds connections only to those).
func (s *Server) authorizeConnection(ctx context.Context, id string, connectors []string) error {
	if err := s.authorizeTarget(ctx, "", id); err != nil {
		return err
	}
	for _, c := range connectors {
		if err := s.authorizeTarget(ctx, c, id); err != nil {
			return err
		}
	}
	setAuditTarget(ctx, target("", id))
	return nil
}

// policyMetricNames maps the host's resilience events to metric names and help texts.
var policyMetricNames = map[string][2]string{
	host.EventRetry:           {"plugboard_egress_retries_total", "Outbound requests sent again by the retry policy, by connector, origin and reason (429, 502, 503, 504, network)."},
	host.EventRateLimited:     {"plugboard_egress_rate_limited_total", "Outbound requests refused by their connection's rate limit (answered 429 by the host), by connector."},
	host.EventBreakerRejected: {"plugboard_egress_breaker_rejected_total", "Outbound requests refused by an open circuit breaker (answered 503 by the host), by connector and origin."},
	host.EventBreakerOpened:   {"plugboard_egress_breaker_opened_total", "Circuit breakers opened (or opened again after a failed probe), by connector and origin."},
}

// resilienceGauges brings the resilience counters of the host into the metrics registry and
// returns the breaker and rate-limit gauges, for GET /metrics. No connection id appears.
func (s *Server) resilienceGauges() []gauge {
	m := s.host.PolicyMetrics()
	s.metrics.mu.Lock()
	for _, nh := range policyMetricNames {
		s.metrics.help[nh[0]] = nh[1]
	}
	s.metrics.help["plugboard_oauth_callbacks_total"] = "OAuth2 consent callbacks by HTTP status."
	s.metrics.help["plugboard_egress_breakers"] = "Circuit breakers by state (closed, open, half_open), over every (connection, origin)."
	s.metrics.help["plugboard_egress_rate_limited_connections"] = "Connections with a rate limit on their outbound requests."
	for k, v := range m.Counters {
		nh, ok := policyMetricNames[k.Event]
		if !ok {
			continue
		}
		var l string
		switch k.Event {
		case host.EventRetry:
			l = labels("connector", k.Connector, "origin", k.Origin, "reason", k.Reason)
		case host.EventRateLimited:
			l = labels("connector", k.Connector)
		default:
			l = labels("connector", k.Connector, "origin", k.Origin)
		}
		c := s.metrics.counters[nh[0]]
		if c == nil {
			c = map[string]float64{}
			s.metrics.counters[nh[0]] = c
		}
		c[l] = float64(v) // the host's counters are cumulative
	}
	s.metrics.mu.Unlock()
	var out []gauge
	for _, state := range []string{host.BreakerClosed, host.BreakerOpen, host.BreakerHalfOpen} {
		out = append(out, gauge{"plugboard_egress_breakers", labels("state", state), float64(m.Breakers[state])})
	}
	return append(out, gauge{"plugboard_egress_rate_limited_connections", "", float64(m.RateLimitedConnections)})
}
