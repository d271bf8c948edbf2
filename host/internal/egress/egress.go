package egress

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plugboard/plugboard/abi"
)

// Defaults of [Config].
const (
	DefaultMaxResponseBytes = 10 << 20
	DefaultMaxRequestBytes  = 10 << 20
	DefaultMaxRedirects     = 10
	DefaultUserAgent        = "Plugboard/1"
)

// Idle upstream connections kept open for reuse: per origin, enough for every instance of
// several connections' pools calling one SaaS API at once, and in all. An idle connection
// costs a socket and two 4 KiB buffers, and is closed after 90 s unused.
const (
	maxIdleConnsPerHost = 128
	maxIdleConns        = 1024
)

// Config is the immutable configuration of a [Client]. Zero values mean the documented defaults.
type Config struct {
	// AllowNetworks lists ranges plugins may reach although they are loopback, private,
	// link-local or otherwise not public (the server's --egress-allow flag). Default none: every
	// such address is refused with "private_address". An IPv4-mapped prefix (::ffff:10.0.0.0/104)
	// is taken as its IPv4 form.
	AllowNetworks []netip.Prefix
	// Resolver looks up host names; nil means net.DefaultResolver.
	Resolver Resolver
	// ConnectTo sends the connections for one "host:port" to another "host:port" (the server's
	// --egress-connect-to flag, as curl's --connect-to): the request keeps its URL, Host header
	// and TLS server name, so the target must present a certificate for the original name
	// (see TLSConfig). The new target goes through the same address checks as any other.
	// Keys match case-insensitively; nil means none.
	ConnectTo map[string]string
	// MaxResponseBytes caps a response body; 0 means DefaultMaxResponseBytes (10 MiB).
	MaxResponseBytes int64
	// MaxRequestBytes caps a request body; 0 means DefaultMaxRequestBytes (10 MiB).
	MaxRequestBytes int64
	// MaxRedirects is how many redirects one request may follow; 0 means DefaultMaxRedirects
	// (10); negative follows none (the first redirect answers "too_many_redirects").
	MaxRedirects int
	// TLSConfig is cloned for every TLS connection; nil means the system roots. The server name
	// is always the URL's host name.
	TLSConfig *tls.Config
	// UserAgent is sent when the guest sets no User-Agent; "" means DefaultUserAgent.
	UserAgent string
	// Retry governs sending a request again after a 429, 502, 503, 504 or a network error.
	Retry RetryPolicy
	// Breaker governs the circuit breakers, one per (connection, origin).
	Breaker BreakerPolicy
	// Tracer makes one client span per hop, a child of the span in Do's context; nil means
	// none. Either way the hop's trace context, when there is one, goes upstream as a W3C
	// traceparent (and tracestate), replacing any the guest set.
	Tracer trace.Tracer
}

// Grant is what one plugboard_http call may do. The host builds it per call from the manifest,
// the connection and the server's settings.
type Grant struct {
	// ManifestOrigins are the normalised origin patterns of the manifest's hosts, with {param}
	// entries already expanded (abi.ExpandHosts). A URL must match one of them.
	ManifestOrigins []string
	// ConnectionOrigins are the origins approved on the connection. nil means the call has no
	// connection: only ManifestOrigins apply and no credential is ever injected. Non-nil, a URL
	// must match one of them too (an empty list allows nothing).
	ConnectionOrigins []string
	// Credential is injected on requests to the connection's origins unless the guest sets
	// "auth": false; nil injects nothing.
	Credential *Credential
	// Connection is the connection's id: it keys the token bucket and the circuit breakers
	// every call of the connection shares. "" (no connection) shares breakers by origin only.
	Connection string
	// Connector names the connector, for metrics.
	Connector string
	// RateLimit is the connection's token bucket; nil means no limit.
	RateLimit *RateLimit
	// Idempotent says the action is annotated idempotent: requests of any method may be
	// retried, not only those of idempotent methods.
	Idempotent bool
}

// Outbound describes one hop of a plugboard_http call for the invocation log: every request
// sent, and every hop refused before sending. It never holds a path, a query or a secret.
type Outbound struct {
	// Method is the hop's method (GET after a 303).
	Method string
	// Origin is the hop's normalised origin; "" when the URL had none.
	Origin string
	// Status is the upstream status; 0 when no response arrived.
	Status int
	// Duration runs from sending to the end of the body (or of the failure).
	Duration time.Duration
	// BytesIn counts response body bytes read; BytesOut request body bytes sent.
	BytesIn, BytesOut int64
	// Retries counts the times the hop was sent again: after an OAuth2 token refresh, or by
	// the retry policy.
	Retries int
	// Policy is set when the host answered in the upstream's place: PolicyRateLimited or
	// PolicyCircuitOpen.
	Policy string
	// Err is the error document's "code: message" when the hop failed or was refused.
	Err string
}

// Client is the engine behind plugboard_http. One Client serves every plugin of a host: it holds
// one connection pool (keep-alives, HTTP/2) whose every connection was dialed to a checked
// address. It is safe for concurrent use.
type Client struct {
	policy           policy
	resolver         Resolver
	maxResponseBytes int64
	maxRequestBytes  int64
	maxRedirects     int
	userAgent        string

	transport *http.Transport
	client    *http.Client
	pol       *policies
	tracer    trace.Tracer
	now       func() time.Time // the clock of breakers and token buckets
	// dial connects to one checked "ip:port"; tests wrap it to watch what is dialed.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	// connectTo is Config.ConnectTo with lower-case keys.
	connectTo map[string]string
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		policy:           newPolicy(cfg.AllowNetworks),
		resolver:         cfg.Resolver,
		maxResponseBytes: cfg.MaxResponseBytes,
		maxRequestBytes:  cfg.MaxRequestBytes,
		maxRedirects:     cfg.MaxRedirects,
		userAgent:        cfg.UserAgent,
		pol:              newPolicies(cfg.Retry, cfg.Breaker),
		now:              time.Now,
		tracer:           cfg.Tracer,
	}
	if c.tracer == nil {
		c.tracer = noop.NewTracerProvider().Tracer("")
	}
	if len(cfg.ConnectTo) > 0 {
		c.connectTo = make(map[string]string, len(cfg.ConnectTo))
		for from, to := range cfg.ConnectTo {
			c.connectTo[strings.ToLower(from)] = to
		}
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.maxResponseBytes <= 0 {
		c.maxResponseBytes = DefaultMaxResponseBytes
	}
	if c.maxRequestBytes <= 0 {
		c.maxRequestBytes = DefaultMaxRequestBytes
	}
	switch {
	case c.maxRedirects == 0:
		c.maxRedirects = DefaultMaxRedirects
	case c.maxRedirects < 0:
		c.maxRedirects = 0
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: c.controlAddress}
	c.dial = dialer.DialContext
	var tlsConfig *tls.Config
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	}
	c.transport = &http.Transport{
		Proxy:             nil, // never: a proxy would dial on our behalf, unchecked
		DialContext:       c.dialContext,
		TLSClientConfig:   tlsConfig,
		ForceAttemptHTTP2: true,
		// A pool of instances serves concurrent calls that mostly go to one SaaS origin; keep
		// as many idle connections to it as callers come at once (measured: with 8 kept per
		// host, a loaded action dialed most of its upstream requests).
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	c.client = &http.Client{
		Transport: c.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // Do follows redirects itself, re-checking each hop
		},
	}
	return c
}

// CloseIdleConnections closes the pooled connections that are idle; call it when the host shuts
// down.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// Do performs one plugboard_http request for a plugin call (ABI.md section 5): it validates the
// request, checks its origin against the grant, dials only checked addresses, injects the
// credential, follows redirects re-checking every hop, and enforces the deadlines, the size caps
// and the budget. ctx carries the call deadline; req.TimeoutMS narrows it (a timeout past the
// call deadline just uses the deadline).
//
// The result is never nil. A refusal or failure sets Error, with Status 0 and no headers or
// body; its code is one of invalid_request, host_not_allowed, private_address, denied,
// too_many_redirects, too_large, too_many_requests, timeout, network. record, if not nil, is
// called once per hop, in order, before Do returns.
func (c *Client) Do(ctx context.Context, g *Grant, b *Budget, req *abi.HTTPRequest, record func(Outbound)) *abi.HTTPResponse {
	if record == nil {
		record = func(Outbound) {}
	}
	if g == nil {
		g = &Grant{}
	}
	var cred *credState
	if g.Credential != nil {
		cred = newCredState(g.Credential)
	}
	k := &call{c: c, g: g, b: b, cred: cred, parent: ctx}
	k.record = func(o Outbound) {
		k.endHop(o)
		record(o)
	}

	p, aerr := c.prepare(req)
	if aerr != nil {
		var o Outbound
		if req != nil {
			o.Origin, _ = abi.OriginOfURL(req.URL)
			if validMethod(req.Method) {
				o.Method = req.Method
			}
		}
		return k.refuse(o, aerr)
	}
	if ctx.Err() != nil {
		return k.refuse(Outbound{Method: p.method, Origin: p.origin}, k.deadlineError())
	}
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	k.ctx, k.timeout = ctx, p.timeout
	return k.run(p)
}

// call is the state of one Do.
type call struct {
	c       *Client
	g       *Grant
	b       *Budget
	cred    *credState
	record  func(Outbound)
	parent  context.Context // the plugin call's context
	ctx     context.Context // parent narrowed by the request timeout
	timeout time.Duration   // the request's timeout_ms, 0 if none
	hop     trace.Span      // the span of the hop in progress; nil between hops
}

// refuse records a hop that ends in e and answers e, scrubbed of secrets.
func (k *call) refuse(o Outbound, e *abi.Error) *abi.HTTPResponse {
	e.Message = k.cred.scrub(e.Message)
	o.Err = e.Code + ": " + e.Message
	k.record(o)
	return &abi.HTTPResponse{Error: e}
}

// allow is step 1's allow-list check of one hop's origin.
func (k *call) allow(origin string) *abi.Error {
	if !abi.AnyOriginMatches(k.g.ManifestOrigins, origin) {
		return abi.Errorf(abi.CodeHostNotAllowed, "origin %s is not allowed: the connector's manifest hosts must list it", origin)
	}
	if k.g.ConnectionOrigins != nil && !abi.AnyOriginMatches(k.g.ConnectionOrigins, origin) {
		return abi.Errorf(abi.CodeHostNotAllowed, "origin %s is not allowed: the connection's hosts must list it (an operator approves new hosts)", origin)
	}
	return nil
}

// run sends the request and follows its redirects.
func (k *call) run(p *prepared) *abi.HTTPResponse {
	method, u, origin, body, header := p.method, p.url, p.origin, p.body, p.header
	// Credentials go only to the original origin, and only while every hop so far stayed on
	// it: once a redirect leaves, nothing sensitive is sent again, not even on a way back.
	stayed := true
	refreshed := false
	for redirects := 0; ; {
		if origin != p.origin {
			stayed = false
		}
		o := Outbound{Method: method, Origin: origin}
		k.startHop(method, origin)
		if e := k.allow(origin); e != nil {
			o.BytesOut = 0
			return k.refuse(o, e)
		}
		injecting := p.auth && stayed && k.cred != nil && k.g.ConnectionOrigins != nil &&
			abi.AnyOriginMatches(k.g.ConnectionOrigins, origin)

		start := time.Now()
		var resp *http.Response
		for {
			var e *abi.Error
			// send applies the resilience policies (retry.go): breaker, rate limit, retries.
			if resp, e = k.send(&o, method, u, header, body, injecting, stayed); e != nil {
				o.Duration = time.Since(start)
				return k.refuse(o, e)
			}
			if resp.StatusCode == http.StatusUnauthorized && injecting && !refreshed && o.Policy == "" &&
				k.b.Remaining() != 0 && k.retryAfterRefresh() {
				refreshed = true
				o.Retries++
				o.BytesIn += discard(resp)
				continue
			}
			break
		}
		o.Status = resp.StatusCode

		loc := resp.Header.Get("Location")
		if !isRedirect(resp.StatusCode) || loc == "" {
			return k.finish(o, start, resp)
		}
		o.BytesIn += discard(resp)
		o.Duration = time.Since(start)
		k.record(o)

		next, err := u.Parse(loc)
		var nextOrigin string
		if err != nil {
			err = errorString("is not a valid URL")
		} else {
			nextOrigin, err = checkURL(next)
		}
		nextMethod, nextBody := redirectMethod(resp.StatusCode, method, body)
		redirects++
		if redirects > k.c.maxRedirects {
			return k.refuse(Outbound{Method: nextMethod, Origin: nextOrigin},
				abi.Errorf(abi.CodeTooManyRedirects, "stopped after %d redirects", k.c.maxRedirects))
		}
		if err != nil {
			return k.refuse(Outbound{Method: nextMethod},
				abi.Errorf(abi.CodeNetwork, "%s answered %d with an unusable Location: it %v", origin, resp.StatusCode, err))
		}
		next.Fragment, next.RawFragment = "", ""
		if nextBody == nil && body != nil {
			header = withoutContentHeaders(header)
		}
		method, body, u, origin = nextMethod, nextBody, next, nextOrigin
	}
}

// withoutContentHeaders returns h without the headers that describe a body, for a redirect that
// dropped the body.
func withoutContentHeaders(h http.Header) http.Header {
	out := h.Clone()
	for _, name := range []string{"Content-Type", "Content-Encoding", "Content-Language", "Content-Location"} {
		delete(out, name)
	}
	return out
}

// retryAfterRefresh asks the credential for a fresh OAuth2 token after a 401 and reports
// whether the request should be sent again with it (a refresh function, a token, and budget).
func (k *call) retryAfterRefresh() bool {
	if k.cred.Type != abi.AuthOAuth2 || k.cred.Refresh == nil {
		return false
	}
	token, err := k.cred.Refresh(k.ctx)
	if err != nil || token == "" {
		return false
	}
	k.cred.token = token
	k.cred.remember(token)
	return true
}

// newRequest builds the wire request of one hop from the guest's validated headers. stayed
// false (the origin changed on a redirect) drops the guest's sensitive headers; injecting adds
// the credential.
func (k *call) newRequest(method string, u *url.URL, guest http.Header, body []byte, injecting, stayed bool) (*http.Request, *abi.Error) {
	h := make(http.Header, len(guest)+2)
	for name, v := range guest {
		if !stayed && k.sensitive(name) {
			continue
		}
		h[name] = v
	}
	if h.Get("User-Agent") == "" {
		h["User-Agent"] = []string{k.c.userAgent}
	}
	if injecting {
		var e *abi.Error
		if u, e = k.cred.inject(h, u); e != nil {
			return nil, e
		}
	}
	k.injectTrace(h)
	hreq, err := http.NewRequestWithContext(k.ctx, method, u.String(), bodyReader(body))
	if err != nil {
		return nil, abi.Errorf(abi.CodeInvalidRequest, "the request cannot be built")
	}
	hreq.Header = h
	return hreq, nil
}

// sensitive reports whether a guest header must not follow a redirect to another origin: the
// headers Go's own client strips, and the header the credential occupies.
func (k *call) sensitive(name string) bool {
	switch name {
	case "Authorization", "Www-Authenticate", "Cookie", "Cookie2":
		return true
	}
	return k.cred != nil && name == k.cred.headerName()
}

// isRedirect reports whether Do follows a response of this status (when it has a Location).
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirectMethod is the method and body of the request that follows a redirect, as the Fetch
// standard and Go's client have it: 301 and 302 turn POST into GET, 303 turns everything but
// HEAD into GET, both without the body; 307 and 308 keep method and body.
func redirectMethod(status int, method string, body []byte) (string, []byte) {
	switch {
	case status == http.StatusSeeOther && method != http.MethodHead,
		(status == http.StatusMovedPermanently || status == http.StatusFound) && method == http.MethodPost:
		return http.MethodGet, nil
	}
	return method, body
}
