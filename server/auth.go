package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/time/rate"

	"github.com/plugboard/plugboard/registry/storage"
)

// Roles (API.md "Keys, audit and invocation logs"; the README has the permission table).
const (
	roleAdmin       = "admin"
	roleAuthor      = "author"
	roleConnections = "connections"
	roleInvoker     = "invoker"
	roleReader      = "reader"
)

// adminKeyID is the id of the built-in admin key: the admin token of Options.AdminToken or
// DataDir/admin.token.
const adminKeyID = "key_admin"

// codeForbidden answers a call outside the caller's role or scopes.
const codeForbidden = "forbidden"

// codeRateLimited answers a key over its request rate.
const codeRateLimited = "rate_limited"

// permission names what a route does; every /v1 route is registered with one (server.go) and
// the role table below is the only place that says who may do it.
type permission string

// Permissions. Each route family has a read permission and one or more write permissions.
const (
	permConnectorsRead   permission = "connectors.read"   // list and read connectors, versions, actions
	permConnectorsManage permission = "connectors.manage" // upload, activate, delete versions
	permActionsInvoke    permission = "actions.invoke"    // POST /v1/connectors/{name}/actions/{action}

	permConnectionsRead   permission = "connections.read"   // list and read connections (never secrets)
	permConnectionsManage permission = "connections.manage" // create, patch, rotate, reauthorize, delete

	permMCPServersRead   permission = "mcp_servers.read"
	permMCPServersManage permission = "mcp_servers.manage"

	permKeysManage     permission = "keys.manage"       // every /v1/keys route
	permAuditRead      permission = "audit.read"        // GET /v1/audit
	permMasterKeyAdmin permission = "master_key.manage" // /v1/master-key

	// Subscriptions (issue 6). A non-admin sees and changes only its own subscriptions
	// (principal.owns, principal.mayRead), except reader, which reads them all.
	permSubscriptionsRead   permission = "subscriptions.read"   // GET /subscriptions, GET /subscriptions/{id}
	permSubscriptionsManage permission = "subscriptions.manage" // POST /subscriptions, PATCH and DELETE /subscriptions/{id}, POST /subscriptions/{id}/replay
	permEventsConsume       permission = "events.consume"       // GET /subscriptions/{id}/events, POST /subscriptions/{id}/events/ack

	// Invocation logs (issue 7 item 3): GET /invocations/{correlation_id}, further narrowed by
	// authorizeTarget on the logged connector and connection (404 when out of scope).
	permInvocationsRead permission = "invocations.read"

	// Store backup (issue 11 item 13): GET /v1/store/backup. In no role's table: admin only.
	permStoreBackup permission = "store.backup"

	// GET /v1/cluster (issue 12). In no role's table: admin only.
	permClusterRead permission = "cluster.read"
)

// rolePermissions is the permission table: what each role may do. Admin may do everything.
var rolePermissions = func() map[string]map[permission]bool {
	table := map[string][]permission{
		roleAuthor: {permConnectorsRead, permConnectorsManage, permMCPServersRead, permMCPServersManage,
			permConnectionsRead, permInvocationsRead},
		roleConnections: {permConnectorsRead, permConnectionsRead, permConnectionsManage},
		roleInvoker: {permConnectorsRead, permActionsInvoke, permSubscriptionsRead, permSubscriptionsManage,
			permEventsConsume, permInvocationsRead},
		roleReader: {permConnectorsRead, permConnectionsRead, permSubscriptionsRead, permInvocationsRead},
	}
	out := map[string]map[permission]bool{roleAdmin: {}}
	for _, p := range allPermissions {
		out[roleAdmin][p] = true
	}
	for role, perms := range table {
		out[role] = map[permission]bool{}
		for _, p := range perms {
			out[role][p] = true
		}
	}
	return out
}()

// allPermissions lists every permission; a route registered with another one panics at start.
var allPermissions = []permission{permConnectorsRead, permConnectorsManage, permActionsInvoke,
	permConnectionsRead, permConnectionsManage, permMCPServersRead, permMCPServersManage,
	permKeysManage, permAuditRead, permMasterKeyAdmin,
	permSubscriptionsRead, permSubscriptionsManage, permEventsConsume, permInvocationsRead, permStoreBackup,
	permClusterRead}

// roles lists the roles in the order the API documents them.
var roles = []string{roleAdmin, roleAuthor, roleConnections, roleInvoker, roleReader}

// validPermission reports whether p is in allPermissions.
func validPermission(p permission) bool {
	for _, q := range allPermissions {
		if q == p {
			return true
		}
	}
	return false
}

// Key secrets are "pbk_" + the id's random part + "_" + 43 base64url characters (256 random
// bits). The id part lets authentication read the one key record; the stored hash is SHA-256,
// which is enough for a secret of 256 random bits (nothing to brute-force, unlike a password)
// and costs microseconds per request, where bcrypt would cost tens of milliseconds on every
// call and hand out CPU to anyone sending bad tokens.
const secretPrefix = "pbk_"

// hashSecret returns "sha256:" and the hex SHA-256 of secret.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// keyIDOfSecret returns the key id a "pbk_" secret names, or "".
func keyIDOfSecret(secret string) string {
	rest, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return ""
	}
	idPart, _, ok := strings.Cut(rest, "_")
	if !ok || idPart == "" || len(idPart) > 64 {
		return ""
	}
	return "key_" + idPart
}

// authFailure is why a token was refused (a 401): missing, wrong, revoked or expired.
type authFailure struct {
	actor  string // the presented key id when the token named one
	detail string
}

// authenticateToken returns the principal a bearer token stands for.
func (s *Server) authenticateToken(ctx context.Context, token string) (*principal, *authFailure) {
	if token == "" {
		return nil, &authFailure{detail: "missing bearer token: send Authorization: Bearer <token> (the admin token is printed at first start and stored in the data directory as admin.token; or create a key with POST /v1/keys)"}
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.adminToken)) == 1 {
		return adminPrincipal, nil
	}
	id := keyIDOfSecret(token)
	if id == "" {
		return nil, &authFailure{detail: "wrong bearer token"}
	}
	k, err := s.st.APIKey(ctx, id)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("reading an API key", "key", id, "err", err)
		}
		return nil, &authFailure{actor: id, detail: "key " + id + " does not exist or was revoked"}
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(token)), []byte(k.SecretHash)) != 1 {
		return nil, &authFailure{actor: id, detail: "wrong secret for key " + id}
	}
	if !k.ExpiresAt.IsZero() && !time.Now().Before(k.ExpiresAt) {
		return nil, &authFailure{actor: id, detail: "key " + id + " expired at " + k.ExpiresAt.Format(time.RFC3339)}
	}
	return &principal{KeyID: k.ID, Name: k.Name, Role: k.Role, Connectors: k.Connectors, Connections: k.Connections}, nil
}

// bearerToken returns the bearer token of r, or "".
func bearerToken(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(tok)
}

// authenticate checks the bearer token of every /v1 request and the key's request rate, and
// puts the caller in the request context. Failures are audited.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, fail := s.authenticateToken(r.Context(), bearerToken(r))
		if fail != nil {
			s.audit(r.Context(), auditEvent{actor: fail.actor, action: r.Method + " " + r.URL.Path, status: http.StatusUnauthorized})
			w.Header().Set("WWW-Authenticate", `Bearer realm="plugboard"`)
			writeProblem(w, r, newProblem(http.StatusUnauthorized, codeUnauthenticated, fail.detail))
			return
		}
		if wait, ok := s.limits.allow(p.KeyID); !ok {
			writeRateLimited(w, r, p.KeyID, wait)
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// limitKeys applies the per-key rate limit to a route outside /v1 (MCP) for requests made
// with an API key or the admin token; other tokens (an MCP server's own) are not limited here.
// The token is authenticated first, so a stranger cannot spend a key's budget by sending its
// id with a made-up secret.
func (s *Server) limitKeys(next http.Handler) http.Handler {
	if s.limits == nil || s.limits.perSecond <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := bearerToken(r); tok != "" {
			if p, fail := s.authenticateToken(r.Context(), tok); fail == nil {
				if wait, ok := s.limits.allow(p.KeyID); !ok {
					writeRateLimited(w, r, p.KeyID, wait)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// writeRateLimited answers 429 rate_limited with Retry-After (whole seconds, at least 1).
func writeRateLimited(w http.ResponseWriter, r *http.Request, keyID string, wait time.Duration) {
	pr := problemf(http.StatusTooManyRequests, codeRateLimited, "key %s is over its request rate; retry after %s", keyID, wait.Round(time.Millisecond))
	pr.retryAfter = max(1, int(math.Ceil(wait.Seconds())))
	writeProblem(w, r, pr)
}

// keyLimits is the per-key request rate limit (Options.KeyRateLimit); the zero value allows
// everything.
type keyLimits struct {
	perSecond rate.Limit
	burst     int
	mu        sync.Mutex
	byKey     map[string]*rate.Limiter
}

func newKeyLimits(perSecond float64, burst int) *keyLimits {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &keyLimits{perSecond: rate.Limit(perSecond), burst: burst, byKey: map[string]*rate.Limiter{}}
}

// allow takes one request from key's budget; when there is none it reports how long until
// there is.
func (l *keyLimits) allow(key string) (time.Duration, bool) {
	if l == nil || l.perSecond <= 0 {
		return 0, true
	}
	l.mu.Lock()
	lim := l.byKey[key]
	if lim == nil {
		lim = rate.NewLimiter(l.perSecond, l.burst)
		l.byKey[key] = lim
	}
	l.mu.Unlock()
	now := time.Now()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// guard checks the caller's role for perm and its scopes for the connector, connection or
// MCP server the path names, before the handler runs; it returns the 403 problem or nil.
func (s *Server) guard(r *http.Request, perm permission) error {
	p := principalFrom(r.Context())
	if !p.can(perm) {
		return problemf(http.StatusForbidden, codeForbidden, "role %s of key %s does not allow %s (%s)", p.Role, p.KeyID, perm, r.Method+" "+r.URL.Path)
	}
	vars := mux.Vars(r)
	path := r.URL.Path
	switch {
	case path == "/v1/connectors" && r.Method == http.MethodPost && p.Connectors != nil:
		// The uploaded connector's name is known only once the plugin passed its checks, after
		// which it is stored: a key narrowed to connectors does not upload.
		return problemf(http.StatusForbidden, codeForbidden, "key %s is narrowed to connectors %v; uploading needs a key not narrowed to connectors", p.KeyID, p.Connectors)
	case strings.HasPrefix(path, "/v1/connectors/") && vars["name"] != "":
		return s.authorizeTarget(r.Context(), vars["name"], "")
	case strings.HasPrefix(path, "/v1/connections/") && vars["id"] != "":
		if err := s.authorizeTarget(r.Context(), "", vars["id"]); err != nil || p.Connectors == nil {
			return err
		}
		// A key narrowed to connectors reaches the connections bound to one of them.
		c, err := s.reg.GetConnection(r.Context(), vars["id"])
		if err != nil {
			return nil // the handler answers the 404
		}
		for _, name := range c.Connectors {
			if p.allowsConnector(name) {
				return nil
			}
		}
		return problemf(http.StatusForbidden, codeForbidden, "key %s is not scoped to a connector of connection %s", p.KeyID, vars["id"])
	case strings.HasPrefix(path, "/v1/mcp-servers/") && vars["name"] != "":
		setAuditTarget(r.Context(), "mcp_server:"+vars["name"])
		if p.Connectors == nil && p.Connections == nil {
			return nil
		}
		m, err := s.reg.MCPServer(r.Context(), vars["name"])
		if err != nil {
			return nil // the handler answers the 404
		}
		if err := s.authorizeTarget(r.Context(), m.Connector, m.Connection); err != nil {
			return err
		}
		setAuditTarget(r.Context(), "mcp_server:"+vars["name"]+" "+target(m.Connector, m.Connection))
	case strings.HasPrefix(path, "/v1/keys/") && vars["id"] != "":
		setAuditTarget(r.Context(), "key:"+vars["id"])
	case strings.HasPrefix(path, "/v1/subscriptions/") && vars["id"] != "":
		setAuditTarget(r.Context(), "subscription:"+vars["id"])
	case strings.HasPrefix(path, "/v1/invocations/") && vars["correlation_id"] != "":
		setAuditTarget(r.Context(), "invocation:"+vars["correlation_id"])
	}
	return nil
}

// mcpAuthorize reports whether a bearer token other than the MCP server's own opens rec (nil:
// the /mcp namespace endpoint, for admin keys only): admin keys open every server; keys whose
// role may invoke actions open the servers whose connector and connection are in their scopes.
func (s *Server) mcpAuthorize(r *http.Request, token string, rec *storage.MCPServer) bool {
	p, fail := s.authenticateToken(r.Context(), token)
	if fail != nil {
		return false
	}
	if p.isAdmin() {
		return true
	}
	return rec != nil && p.can(permActionsInvoke) && p.allowsConnector(rec.Connector) && p.allowsConnection(rec.Connection)
}

// forget drops a revoked key's limiter.
func (l *keyLimits) forget(key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.byKey, key)
	l.mu.Unlock()
}
