package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/server/mcpserver"
	"github.com/plugboard/plugboard/server/trigger"
)

// Options configure a [Server]. Only DataDir is required; every zero value means the documented
// default.
type Options struct {
	// DataDir holds the bbolt file, the compilation cache, the master key and the admin token.
	DataDir string
	// AdminToken is the bearer token of the admin; "" reads DataDir/admin.token or generates one
	// at first start (stored 0600).
	AdminToken string
	// PublicURL is the externally reachable base URL (OAuth redirects, hook URLs); "" means the
	// listen address.
	PublicURL string
	// ConnectorsDir: every .wasm file there is uploaded and activated at start.
	ConnectorsDir string
	// MasterKeyFile is the credential encryption key file; "" means DataDir/master.key.
	MasterKeyFile string
	// EgressAllow lists private networks plugins may reach; default none.
	EgressAllow []netip.Prefix
	// MaxUploadBytes caps a plugin upload; 0 means 64 MiB.
	MaxUploadBytes int64
	// MaxBodyBytes caps JSON request bodies; 0 means 4 MiB.
	MaxBodyBytes int64
	// Host tunes the plugin runtime (limits, pools, egress resolver); CacheDir, State and
	// Logger are filled in by the server when empty.
	Host host.Config
	// Retention bounds what loaded connector versions keep in memory (idle instances, versions
	// neither active nor canary); zero values mean the registry's defaults.
	Retention registry.Retention
	// Triggers tune the trigger engine: scheduler, queues and push retries.
	Triggers TriggerOptions
	// Logger receives structured logs; nil means slog.Default(). Records logged with a
	// request's context gain its correlation_id and, when traced, trace_id and span_id.
	Logger *slog.Logger

	// AuditRetention is how long audit entries are kept; 0 means 90 days, a negative value
	// means no age limit.
	AuditRetention time.Duration
	// AuditMaxEntries caps the audit log (the oldest entries go first); 0 means 1,000,000, a
	// negative value means no count limit.
	AuditMaxEntries int
	// KeyRateLimit is the request rate each key (the admin token included) may sustain on /v1
	// and /mcp, in requests per second; 0 means no limit. Over it the answer is 429
	// rate_limited with Retry-After.
	KeyRateLimit float64
	// KeyRateBurst is how many requests a key may send at once above KeyRateLimit; 0 means
	// KeyRateLimit rounded up (at least 1).
	KeyRateBurst int
	// SeparateAdmin serves the management API only on [Server.AdminHandler]: [Server.Handler]
	// and [Server.PublicHandler] then serve only actions, event pull and ack, MCP, hooks,
	// health, metrics and the OAuth callback, and answer 404 not_found for the rest. false
	// serves everything on both.
	SeparateAdmin bool
	// TracerProvider makes the spans of requests, guest calls and outbound requests
	// (telemetry.go); nil means the global provider (otel.GetTracerProvider(), a no-op unless
	// the process installed one). See [TracerProviderFromEnv].
	TracerProvider trace.TracerProvider
	// InvocationRetention is how long invocation logs (GET /v1/invocations/{id}) are kept;
	// 0 means 24 h, negative keeps none.
	InvocationRetention time.Duration
	// MaxInvocations caps the invocation logs kept, the oldest going first; 0 means 100 000.
	MaxInvocations int
	// SkipStoreCheck skips bbolt's consistency check of the data file at start
	// (storage.Options.SkipCheck), for very large stores; false runs it and New refuses a damaged
	// file.
	SkipStoreCheck bool
	// Store selects the backend: bbolt in DataDir (the zero value) or NATS JetStream (API.md
	// "Cluster"); then DataDir holds only the compilation cache and the admin token.
	Store StoreOptions
	// Storage, when not nil, is an open store to use instead of opening one from Store and
	// DataDir (embedding, and tests that run several servers over one store). The caller
	// owns it: Close does not close it.
	Storage storage.Store
	// NodeName names this node in a cluster (GET /v1/cluster); "" means the host name and the
	// listen port.
	NodeName string
}

// StoreOptions select and configure the store backend (the serve flags --store,
// --store-prefix, --store-replicas, --nats-creds and --nats-tls-ca).
type StoreOptions struct {
	// URL is "" for bbolt, or nats://HOST:PORT[,nats://...].
	URL string
	// Prefix starts every bucket and stream name; "" means "plugboard".
	Prefix string
	// Replicas is the JetStream replica count; 0 means 1.
	Replicas int
	// NATSCreds is a NATS credentials file; NATSTLSCA the CA of the NATS servers.
	NATSCreds, NATSTLSCA string
}

// Server is a running Plugboard: store, host, registry and HTTP handler.
type Server struct {
	opts       Options
	log        *slog.Logger
	st         storage.Store
	host       *host.Host
	reg        *registry.Registry
	adminToken string
	generated  bool
	metrics    *metrics
	ready      atomic.Bool
	handler    http.Handler  // everything
	routers    []*mux.Router // the outer and the /v1 router, for the test that holds them to the OpenAPI document
	public     http.Handler  // what the public listener serves
	limits     *keyLimits
	stopPrune  chan struct{}
	mcp        *mcpserver.Handler // MCP endpoints (mcpservers.go)
	trig       *trigger.Engine    // trigger engine (triggers.go)
	tracer     trace.Tracer       // telemetry.go
	invlog     *invocationLog     // invocations.go; nil when the log is off
	backend    string             // "bbolt" or "nats"
}

// New opens the data directory, loads the active versions (from the compilation cache when
// warm), uploads the connectors directory, and returns a server ready to serve.
func New(ctx context.Context, opts *Options) (*Server, error) {
	if opts == nil || opts.DataDir == "" {
		return nil, errors.New("server: Options.DataDir is required")
	}
	o := *opts
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 64 << 20
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.AuditRetention == 0:
		o.AuditRetention = defaultAuditRetention
	case o.AuditRetention < 0:
		o.AuditRetention = 0
	}
	switch {
	case o.AuditMaxEntries == 0:
		o.AuditMaxEntries = defaultAuditMaxEntries
	case o.AuditMaxEntries < 0:
		o.AuditMaxEntries = 0
	}
	o.Logger = slog.New(withContextAttrs(o.Logger.Handler()))
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.NodeName == "" {
		o.NodeName = defaultNodeName()
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	s := &Server{opts: o, log: o.Logger, metrics: newMetrics(), limits: newKeyLimits(o.KeyRateLimit, o.KeyRateBurst),
		tracer: o.TracerProvider.Tracer(tracerName)}
	var err error
	if s.adminToken, s.generated, err = loadAdminToken(o.DataDir, o.AdminToken); err != nil {
		return nil, err
	}
	if o.Storage != nil {
		s.st = o.Storage
	} else if s.st, err = registry.OpenStore(ctx, registry.StoreConfig{URL: o.Store.URL, DataDir: o.DataDir, MasterKeyFile: o.MasterKeyFile,
		SkipCheck: o.SkipStoreCheck, Prefix: o.Store.Prefix, Replicas: o.Store.Replicas, NATSCreds: o.Store.NATSCreds,
		NATSTLSCA: o.Store.NATSTLSCA, NodeName: o.NodeName, Logger: o.Logger}); err != nil {
		return nil, err
	}
	s.backend = registry.StoreConfig{URL: o.Store.URL}.Backend()
	if err := s.checkClusterToken(ctx); err != nil {
		s.closeStore()
		return nil, err
	}
	hc := o.Host
	if hc.CacheDir == "" {
		hc.CacheDir = filepath.Join(o.DataDir, "cache")
	}
	if hc.State == nil {
		hc.State = registry.State{St: s.st}
	}
	if hc.Logger == nil {
		hc.Logger = o.Logger
	}
	if hc.TracerProvider == nil {
		hc.TracerProvider = o.TracerProvider
	}
	if len(o.EgressAllow) > 0 {
		hc.Egress.AllowNetworks = append(hc.Egress.AllowNetworks, o.EgressAllow...)
	}
	if s.host, err = host.New(hc); err != nil {
		s.closeStore()
		return nil, err
	}
	s.reg = registry.New(s.st, s.host, &registry.Options{Logger: o.Logger, Retention: o.Retention})
	if err := s.reg.LoadActive(ctx); err != nil {
		s.log.Error("some active connector versions did not load; they answer connector_not_found until re-activated", "err", err)
	}
	if o.ConnectorsDir != "" {
		if err := s.uploadDir(ctx, o.ConnectorsDir); err != nil {
			s.Close(ctx)
			return nil, err
		}
	}
	s.trig = newTriggerEngine(s)
	if err := s.trig.Start(ctx); err != nil {
		s.Close(ctx)
		return nil, fmt.Errorf("starting the trigger engine: %w", err)
	}
	s.invlog = newInvocationLog(s.st, o.Logger, s.metrics, o.InvocationRetention, o.MaxInvocations)
	if err := s.reg.Join(ctx, registry.NodeInfo{Name: o.NodeName, Address: o.PublicURL, Version: buildVersion(),
		Sources: s.sourcesLed}); err != nil {
		s.Close(ctx)
		return nil, err
	}
	s.handler = s.routes()
	s.public = s.handler
	if o.SeparateAdmin {
		s.public = s.publicOnly(s.handler)
	}
	s.stopPrune = make(chan struct{})
	go s.pruneAudit(s.stopPrune)
	s.ready.Store(true)
	return s, nil
}

// AdminToken returns the admin bearer token and whether it was generated by this start.
func (s *Server) AdminToken() (token string, generated bool) { return s.adminToken, s.generated }

// Handler returns the HTTP handler of the whole API, or, with Options.SeparateAdmin, the same
// as [Server.PublicHandler].
func (s *Server) Handler() http.Handler { return s.public }

// PublicHandler returns the handler for the public listener: everything, or with
// Options.SeparateAdmin only actions, event pull and ack, MCP, hooks, health, metrics and the
// OAuth callback.
func (s *Server) PublicHandler() http.Handler { return s.public }

// AdminHandler returns the handler for the management listener (--admin-listen): the whole
// API.
func (s *Server) AdminHandler() http.Handler { return s.handler }

// Registry returns the server's registry (for embedding and tests).
func (s *Server) Registry() *registry.Registry { return s.reg }

// Close drains loaded versions and closes the host and the store.
func (s *Server) Close(ctx context.Context) error {
	s.ready.Store(false)
	if s.stopPrune != nil {
		select {
		case <-s.stopPrune:
		default:
			close(s.stopPrune)
		}
	}
	s.closeMCP()
	if s.trig != nil {
		s.stopTriggers(ctx)
	}
	s.reg.Close(ctx)
	s.invlog.close() // after the calls drained: their records are written before the store closes
	herr := s.host.Close(ctx)
	return errors.Join(herr, s.closeStore())
}

// loadAdminToken returns the configured token, the stored one, or a new one stored 0600.
func loadAdminToken(dir, configured string) (string, bool, error) {
	if configured != "" {
		return configured, false, nil
	}
	path := filepath.Join(dir, "admin.token")
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, false, nil
		}
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, err
	}
	tok := "pba_" + hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("storing the admin token: %w", err)
	}
	return tok, true, nil
}

// uploadDir uploads and activates every .wasm in dir, in name order. A plugin that fails its
// checks is logged and skipped; a directory that cannot be read is an error.
func (s *Server) uploadDir(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading --connectors-dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".wasm") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		start := time.Now()
		wasm, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil {
			// The same bytes already active (every restart, for bundled connectors): nothing to
			// check, store or swap, so skip the describe and compile an upload would repeat.
			v, active, found, lerr := s.reg.VersionWithDigest(ctx, storage.Digest(wasm))
			if lerr == nil && found && active {
				s.log.Info("connector unchanged", "file", n, "connector", v.Name, "version", v.Version, "took", time.Since(start).Round(time.Millisecond))
				continue
			}
			var res registry.UploadResult
			res, err = s.reg.Upload(ctx, wasm, true)
			if err == nil {
				s.log.Info("connector loaded", "file", n, "connector", res.Version.Name, "version", res.Version.Version,
					"created", res.Created, "took", time.Since(start).Round(time.Millisecond))
				continue
			}
		}
		s.log.Error("connector not loaded", "file", n, "err", err)
	}
	return nil
}

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problemf(http.StatusNotFound, codeNotFound, "no endpoint %s %s: the routes are listed in docs/API.md", r.Method, r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problemf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
	})
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)
	r.HandleFunc("/metrics", s.serveMetrics).Methods(http.MethodGet)
	r.HandleFunc(callbackPath, s.oauthCallback).Methods(http.MethodGet)    // no token: a browser comes here
	r.Handle("/hooks/{token}", s.wrap("/hooks/{token}", s.receiveHook))    // no token: the URL's token names the source
	r.HandleFunc("/v1/openapi.json", serveOpenAPI).Methods(http.MethodGet) // no token: the contract is public (openapi.go)
	r.HandleFunc("/v1/openapi.yaml", serveOpenAPI).Methods(http.MethodGet)

	// /v1 is its own router behind the token check, so even a request for an unknown /v1
	// path without a token learns nothing about which endpoints exist.
	v1 := mux.NewRouter()
	v1.NotFoundHandler = r.NotFoundHandler
	v1.MethodNotAllowedHandler = r.MethodNotAllowedHandler
	s.nameSpans(r, v1) // server spans are named after the route template (telemetry.go)
	s.routers = []*mux.Router{r, v1}
	r.PathPrefix("/v1/").Handler(s.authenticate(v1))
	// handle registers a /v1 route with the permission it needs (auth.go has the role table).
	handle := func(method, path string, perm permission, h handlerFunc) {
		mustPermission(method, path, perm)
		v1.Handle("/v1"+path, s.guarded(method, path, perm, h)).Methods(method)
	}
	handle(http.MethodPost, "/connectors", permConnectorsManage, s.uploadConnector)
	handle(http.MethodGet, "/connectors", permConnectorsRead, s.listConnectors)
	handle(http.MethodGet, "/connectors/{name}", permConnectorsRead, s.getConnector)
	handle(http.MethodGet, "/connectors/{name}/versions/{version}", permConnectorsRead, s.getVersion)
	handle(http.MethodDelete, "/connectors/{name}/versions/{version}", permConnectorsManage, s.deleteVersion)
	handle(http.MethodPut, "/connectors/{name}/active", permConnectorsManage, s.activate)
	handle(http.MethodGet, "/connectors/{name}/actions", permConnectorsRead, s.listActions)
	handle(http.MethodGet, "/connectors/{name}/openapi.json", permConnectorsRead, s.connectorOpenAPI) // openapi.go
	handle(http.MethodPost, "/connectors/{name}/actions/{action}", permActionsInvoke, s.invoke)
	handle(http.MethodGet, "/invocations/{correlation_id}", permInvocationsRead, s.getInvocation)

	handle(http.MethodPost, "/connections", permConnectionsManage, s.createConnection)
	handle(http.MethodGet, "/connections", permConnectionsRead, s.listConnections)
	handle(http.MethodGet, "/connections/{id}", permConnectionsRead, s.getConnection)
	handle(http.MethodPatch, "/connections/{id}", permConnectionsManage, s.patchConnection)
	handle(http.MethodPut, "/connections/{id}/credentials", permConnectionsManage, s.rotateCredentials)
	handle(http.MethodDelete, "/connections/{id}", permConnectionsManage, s.deleteConnection)
	handle(http.MethodPost, "/connections/{id}/reauthorize", permConnectionsManage, s.reauthorize)
	s.registerMCP(r, handle) // /v1/mcp-servers, /mcp and /mcp/{name} (mcpservers.go)
	handle(http.MethodPost, "/subscriptions", permSubscriptionsManage, s.createSubscription)
	handle(http.MethodGet, "/subscriptions", permSubscriptionsRead, s.listSubscriptions)
	handle(http.MethodGet, "/subscriptions/{id}", permSubscriptionsRead, s.getSubscription)
	handle(http.MethodPatch, "/subscriptions/{id}", permSubscriptionsManage, s.patchSubscription)
	handle(http.MethodDelete, "/subscriptions/{id}", permSubscriptionsManage, s.deleteSubscription)
	handle(http.MethodGet, "/subscriptions/{id}/events", permEventsConsume, s.pullEvents)
	handle(http.MethodPost, "/subscriptions/{id}/events/ack", permEventsConsume, s.ackEvents)
	handle(http.MethodPost, "/subscriptions/{id}/replay", permSubscriptionsManage, s.replayEvents)

	handle(http.MethodPost, "/keys", permKeysManage, s.createKey)
	handle(http.MethodGet, "/keys", permKeysManage, s.listKeys)
	handle(http.MethodGet, "/keys/{id}", permKeysManage, s.getKey)
	handle(http.MethodDelete, "/keys/{id}", permKeysManage, s.deleteKey)
	handle(http.MethodGet, "/audit", permAuditRead, s.getAudit)
	handle(http.MethodGet, "/master-key", permMasterKeyAdmin, s.getMasterKey)
	handle(http.MethodPost, "/master-key/rotate", permMasterKeyAdmin, s.rotateMasterKey)
	handle(http.MethodGet, "/store/backup", permStoreBackup, s.backupStore) // backup.go
	handle(http.MethodGet, "/cluster", permClusterRead, s.getCluster)       // cluster.go

	return s.withTrace(withCorrelation(s.withLogAndRecover(freshReads(r))))
}

// mustPermission panics, so the server does not start, when a route is registered without a
// permission of the table in auth.go.
func mustPermission(method, path string, perm permission) {
	if !validPermission(perm) {
		panic(fmt.Sprintf("server: route %s /v1%s has no valid permission (%q): add one from auth.go", method, path, perm))
	}
}

// The /v1 routes of the data plane, which the public listener serves: action calls, and the
// queue delivery of subscriptions (pull and ack), which apps use as they use actions.
var (
	actionRouteRE    = regexp.MustCompile(`^/v1/connectors/[^/]+/actions/[^/]+$`)
	eventsRouteRE    = regexp.MustCompile(`^/v1/subscriptions/[^/]+/events$`)
	eventsAckRouteRE = regexp.MustCompile(`^/v1/subscriptions/[^/]+/events/ack$`)
)

// isPublicRoute reports whether a request belongs on the public listener when the management
// API has its own (Options.SeparateAdmin): actions, event pull and ack, MCP, hooks, health,
// metrics, OAuth callback, and the API's OpenAPI document.
func isPublicRoute(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case p == "/healthz", p == "/readyz", p == "/metrics", p == callbackPath, p == "/mcp",
		p == "/v1/openapi.json", p == "/v1/openapi.yaml",
		strings.HasPrefix(p, "/mcp/"), strings.HasPrefix(p, "/hooks/"):
		return true
	case r.Method == http.MethodPost:
		return actionRouteRE.MatchString(p) || eventsAckRouteRE.MatchString(p)
	case r.Method == http.MethodGet:
		return eventsRouteRE.MatchString(p)
	}
	return false
}

// publicOnly serves the public routes with full and answers 404 for the management API, as
// for a path that does not exist.
func (s *Server) publicOnly(full http.Handler) http.Handler {
	notFound := withCorrelation(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problemf(http.StatusNotFound, codeNotFound, "no endpoint %s %s on this listener; the management API is served on the admin listener", r.Method, r.URL.Path))
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPublicRoute(r) {
			full.ServeHTTP(w, r)
			return
		}
		notFound.ServeHTTP(w, r)
	})
}

// handlerFunc is an API handler: it writes its success response itself and returns an error
// for everything else, which [Server.wrap] maps to a problem document.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap serves a route without access control (hooks, reached by upstream services with the
// token in their URL): it maps h's error to a problem and counts the call. /v1 routes go
// through handle, which uses guarded.
func (s *Server) wrap(route string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		if err := h(sw, r); err != nil {
			s.fail(sw, r, err)
		}
		s.metrics.add("plugboard_http_requests_total", labels("route", r.Method+" "+route, "status", fmt.Sprint(sw.status)), 1)
	})
}

// guarded runs h for a /v1 route after the caller's role and path scopes pass perm (guard),
// maps its error to a problem, records the audit entry of a mutating or denied call, and counts
// it.
func (s *Server) guarded(method, route string, perm permission, h handlerFunc) http.Handler {
	action := method + " /v1" + route
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, tgt := withAuditTarget(r.Context())
		r = r.WithContext(ctx)
		p := principalFrom(ctx)
		sw := &statusWriter{ResponseWriter: w}
		err := s.guard(r, perm)
		if err == nil {
			err = h(sw, r)
		}
		record := func(status int) {
			if audited(perm, method, status) {
				s.audit(ctx, auditEvent{actor: p.KeyID, role: p.Role, action: action, target: tgt.get(), status: status})
			}
		}
		if err != nil {
			record(toProblem(err).Status) // before the answer, so a denial is logged when the caller learns of it
			s.fail(sw, r, err)
		} else {
			record(sw.status)
		}
		s.metrics.add("plugboard_http_requests_total", labels("route", r.Method+" "+route, "status", fmt.Sprint(sw.status)), 1)
	})
}

// fail writes the problem for err, logging unexpected errors with the correlation id.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := toProblem(err)
	if p.Status >= 500 && (p.Code == codeInternal || p.Code == codeStoreCorrupt || p.Code == codeInsufficientStorage) {
		s.log.Error("request failed", "err", err, "correlation_id", correlationID(r.Context()), "path", r.URL.Path)
	}
	writeProblem(w, r, p)
}

// closeStore closes the store unless the caller passed it in (Options.Storage).
func (s *Server) closeStore() error {
	if s.opts.Storage != nil {
		return nil
	}
	return s.st.Close()
}

// defaultNodeName is the host name, or "plugboard" when it cannot be read.
func defaultNodeName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "plugboard"
}

// sourcesLed is how many trigger sources this node polls now (the node heartbeat).
func (s *Server) sourcesLed() int {
	if s.trig == nil {
		return 0
	}
	return s.trig.Sources()
}

// metaAdminToken is the store's record of the admin token's SHA-256, which every node of a
// cluster compares with its own at start.
const metaAdminToken = "admin_token_sha256"

// checkClusterToken makes sure every node sharing the store has the same admin token: the
// first node records the token's hash, the next ones compare theirs. A node with another token
// would answer 401 to requests every other node accepts.
func (s *Server) checkClusterToken(ctx context.Context) error {
	if s.backend != "nats" {
		return nil // one process: its token is the only one
	}
	sum := sha256.Sum256([]byte(s.adminToken))
	want := hex.EncodeToString(sum[:])
	got, err := s.st.Meta(ctx, metaAdminToken)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return s.st.SetMeta(ctx, metaAdminToken, []byte(want))
	case err != nil:
		return fmt.Errorf("reading the cluster's admin token: %w", err)
	case subtle.ConstantTimeCompare(got, []byte(want)) != 1:
		if s.generated {
			return fmt.Errorf("this node generated a new admin token, but the store belongs to a cluster with another one: start every node with the same PLUGBOARD_ADMIN_TOKEN (or copy admin.token from a node's data directory)")
		}
		return fmt.Errorf("this node's admin token differs from the one the other nodes of this store use: start every node with the same PLUGBOARD_ADMIN_TOKEN")
	}
	return nil
}
