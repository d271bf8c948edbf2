package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/plugboard/plugboard/host"
	client "github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/server"
)

// runServe implements `plugboard serve`: every flag can also be set as PLUGBOARD_<NAME>
// (upper case, dashes as underscores); a flag on the command line wins.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed below, in the style of the other commands
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	data := fs.String("data", "./var", "data directory (bbolt store, compilation cache, keys); with --store nats://... only the compilation cache and keys")
	storeURL := fs.String("store", "", "where the state is kept: empty for bbolt in --data, or nats://HOST:PORT[,nats://HOST:PORT...] for NATS JetStream shared by several nodes (API.md \"Cluster\")")
	storePrefix := fs.String("store-prefix", "plugboard", "with --store nats://: prefix of every bucket and stream, so several namespaces can share one NATS")
	storeReplicas := fs.Int("store-replicas", 1, "with --store nats://: JetStream replicas of every bucket and stream (3 on a three-server NATS cluster)")
	nodeName := fs.String("node-name", "", "this node's name in GET /v1/cluster (default: the host name and the listen port)")
	natsCreds := fs.String("nats-creds", "", "with --store nats://: NATS credentials file (JWT and NKey seed)")
	natsTLSCA := fs.String("nats-tls-ca", "", "with --store nats://: PEM file of the CA that signs the NATS servers' certificates")
	publicURL := fs.String("public-url", "", "externally reachable base URL for OAuth redirects and webhook URLs (default: the listen address)")
	connectorsDir := fs.String("connectors-dir", "", "upload and activate every .wasm in this directory at start")
	watch := fs.Bool("watch", false, "with --connectors-dir: upload and activate each .wasm there again whenever it changes (dev builds; capability changes approved)")
	egressAllow := fs.String("egress-allow", "", "comma-separated CIDRs of private networks plugins may reach (default none), e.g. 127.0.0.0/8 for a fake API on this machine")
	dev := fs.Bool("dev", false, "local development: plugins may also reach loopback and private networks ("+strings.Join(devEgressAllow, ", ")+"), so a connector can call a fake or a service on this machine or LAN; link-local (cloud metadata) stays refused, and nothing else changes. Never on a server others use")
	egressConnectTo := fs.String("egress-connect-to", "", "comma-separated HOST:PORT=HOST2:PORT2: plugins' connections to HOST:PORT go to HOST2:PORT2 instead, keeping the URL, Host header and TLS name (as curl --connect-to; for staging servers and offline tests; HOST2 is checked like any address)")
	egressCA := fs.String("egress-ca", "", "PEM file of extra CA certificates plugins' HTTPS upstreams may present (added to the system roots)")
	masterKey := fs.String("master-key-file", "", "credential encryption key file (default <data>/master.key, generated if absent)")
	maxUpload := fs.Int64("max-upload-mib", 64, "largest plugin upload accepted, in MiB")
	maxBody := fs.Int64("max-body-mib", 4, "largest JSON request body the API accepts (an action's input, such as a file to upload), in MiB")
	maxOutput := fs.Int("max-output-bytes", host.DefaultMaxOutputBytes, "largest document a plugin may hand the server (an action's output, a poll or webhook result, an event batch, an error message); a manifest's limits.output_bytes may only lower it")
	printToken := fs.Bool("print-token", false, "print the admin token at start even when it was not generated now")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this PEM certificate file (needs --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key file of --tls-cert")
	adminListen := fs.String("admin-listen", "", "serve the management API only on this address (host:port, or unix:/path/to.sock); --listen then serves only actions, event pull/ack, MCP, hooks, health, metrics and the OAuth callback")
	pprofListen := fs.String("pprof-listen", "", "serve Go's profiler (net/http/pprof, /debug/pprof/) on this address, e.g. 127.0.0.1:6060; unauthenticated, so keep it on loopback (default off)")
	keyRate := fs.Float64("key-rate-limit", 0, "requests per second each API key (and the admin token) may send to /v1 and /mcp; 0 means no limit")
	keyBurst := fs.Int("key-rate-burst", 0, "requests a key may send at once above --key-rate-limit (default: the limit rounded up)")
	auditRetention := fs.Duration("audit-retention", 90*24*time.Hour, "how long audit log entries are kept (pruned in the background); a negative value keeps them forever")
	skipCheck := fs.Bool("skip-store-check", false, "skip the consistency check of <data>/plugboard.db at start (it reads every page; for very large stores). A damaged store is then found only when a request reads the damaged page")
	auditMax := fs.Int("audit-max-entries", 1_000_000, "most audit log entries kept (the oldest go first); a negative value means no cap")
	fs.Usage = func() {}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		printServeHelp(stdout, fs) // serve_help.go
		return err
	} else if err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("serve takes no arguments, got %q", fs.Args())
	}
	if *maxOutput <= 0 {
		return fmt.Errorf("--max-output-bytes must be a positive number of bytes, got %d", *maxOutput)
	}
	if *storeURL == "" {
		for name, set := range map[string]bool{"--store-replicas": *storeReplicas != 1, "--nats-creds": *natsCreds != "", "--nats-tls-ca": *natsTLSCA != ""} {
			if set {
				return fmt.Errorf("%s needs --store nats://HOST:PORT: without --store the state is in bbolt in --data", name)
			}
		}
	}
	if *storeReplicas < 1 || *storeReplicas > 5 {
		return fmt.Errorf("--store-replicas must be between 1 and 5 (JetStream's limit), got %d", *storeReplicas)
	}
	if *watch && *connectorsDir == "" {
		return errors.New("--watch needs --connectors-dir DIR: the directory to watch")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, hopts)
	if *logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, hopts)
	} else if *logFormat != "text" {
		return fmt.Errorf("--log-format must be text or json, got %q", *logFormat)
	}
	logger := slog.New(handler)

	// Traces: off unless the standard OTEL_* variables ask for OTLP (server.TracerProviderFromEnv);
	// the server uses the global provider. Shutdown flushes the spans still buffered.
	if tp, shutdown, err := server.TracerProviderFromEnv(ctx); err != nil {
		return err
	} else if tp != nil {
		otel.SetTracerProvider(tp)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := shutdown(sctx); err != nil {
				logger.Warn("flushing traces failed", "err", err)
			}
		}()
		logger.Info("tracing on: exporting spans with OTLP/HTTP")
	}

	allow, err := egressAllowList(*egressAllow, *dev)
	if err != nil {
		return err
	}

	hostCfg := host.Config{MaxOutputBytes: *maxOutput}
	connectTo, egressTLS, err := egressConfig(*egressConnectTo, *egressCA)
	if err != nil {
		return err
	}
	hostCfg.Egress.ConnectTo, hostCfg.Egress.TLSConfig = connectTo, egressTLS

	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both PEM files")
	}
	ln, err := server.Listen(*listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another Plugboard running? choose another address with --listen)", *listen, err)
	}
	if *pprofListen != "" {
		pl, err := net.Listen("tcp", *pprofListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--pprof-listen %s: %w", *pprofListen, err)
		}
		defer pl.Close()
		go servePprof(pl)
		fmt.Fprintf(stdout, "Profiler (pprof) on http://%s/debug/pprof/\n", pl.Addr())
	}
	var adminLn net.Listener
	if *adminListen != "" {
		if adminLn, err = server.Listen(*adminListen); err != nil {
			ln.Close()
			return fmt.Errorf("--admin-listen %s: %w", *adminListen, err)
		}
		defer adminLn.Close()
	}
	scheme := "http://"
	if *tlsCert != "" {
		scheme = "https://"
	}
	baseURL := scheme + ln.Addr().String()
	if *publicURL == "" {
		*publicURL = baseURL
	}

	if *nodeName == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		*nodeName = host + ":" + port
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	var adminURL string
	srv, err := server.New(ctx, &server.Options{
		DataDir:         *data,
		AdminToken:      os.Getenv("PLUGBOARD_ADMIN_TOKEN"),
		PublicURL:       *publicURL,
		ConnectorsDir:   *connectorsDir,
		MasterKeyFile:   *masterKey,
		EgressAllow:     allow,
		MaxUploadBytes:  *maxUpload << 20,
		MaxBodyBytes:    *maxBody << 20,
		Logger:          logger,
		AuditRetention:  *auditRetention,
		AuditMaxEntries: *auditMax,
		KeyRateLimit:    *keyRate,
		KeyRateBurst:    *keyBurst,
		SeparateAdmin:   adminLn != nil,
		Host:            hostCfg,
		SkipStoreCheck:  *skipCheck,
		Store: server.StoreOptions{URL: *storeURL, Prefix: *storePrefix, Replicas: *storeReplicas,
			NATSCreds: *natsCreds, NATSTLSCA: *natsTLSCA},
		NodeName: *nodeName,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close(context.Background())
	if *adminListen == "" {
		adminURL = baseURL
	} else if a, ok := strings.CutPrefix(*adminListen, "unix:"); ok {
		adminURL = "unix:" + a
	} else {
		adminURL = scheme + adminLn.Addr().String()
	}

	token, generated := srv.AdminToken()
	fmt.Fprintf(stdout, "Plugboard is serving on %s (ready in %s)\n", baseURL, time.Since(start).Round(time.Millisecond))
	if adminLn != nil {
		fmt.Fprintf(stdout, "Management API on %s (not on %s)\n", adminURL, baseURL)
	}
	if *dev {
		fmt.Fprintf(stdout, "Dev mode (--dev): connectors may reach loopback and private networks (%s); do not use it on a server others use\n",
			strings.Join(devEgressAllow, ", "))
	}
	switch {
	case generated:
		fmt.Fprintf(stdout, "Admin token (generated now, stored in %s/admin.token): %s\n", *data, token)
	case *printToken:
		fmt.Fprintf(stdout, "Admin token: %s\n", token)
	}
	fmt.Fprintf(stdout, "Try: export PLUGBOARD_URL=%s PLUGBOARD_TOKEN=<admin token>; plugboard connector list\n", adminURL)

	if *watch {
		// The watcher uploads in process, so it works whichever listener serves management.
		api := client.New("http://plugboard.internal", token, client.WithHTTPClient(&http.Client{Transport: inProcess{srv.AdminHandler()}}), client.WithUserAgent("plugboard-serve-watch/"+buildVersion()))
		w := &watcher{api: api, dir: *connectorsDir, interval: defaultWatchInterval, approve: true, out: stdout, now: time.Now}
		go w.run(ctx)
	}
	go func() {
		<-ctx.Done()
		logger.Info("shutting down; waiting for calls in flight")
	}()
	return srv.Serve(ctx, server.ServeConfig{Public: ln, Admin: adminLn, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey,
		ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)})
}

// devEgressAllow are the ranges --dev lets plugins reach: loopback and the private networks
// (RFC 1918 and IPv6 unique local), where a developer's fakes and local services live. Link-local
// (169.254.0.0/16, fe80::/10: cloud metadata) is not among them.
var devEgressAllow = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}

// egressAllowList parses --egress-allow (comma-separated CIDRs) and adds [devEgressAllow] for
// --dev.
func egressAllowList(list string, dev bool) ([]netip.Prefix, error) {
	var allow []netip.Prefix
	for _, c := range strings.Split(list, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("--egress-allow: %q is not a CIDR like 10.0.0.0/8: %w", c, err)
		}
		allow = append(allow, p.Masked())
	}
	if dev {
		for _, c := range devEgressAllow {
			allow = append(allow, netip.MustParsePrefix(c))
		}
	}
	return allow, nil
}

// inProcess is an http.RoundTripper that serves requests with a handler in this process.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// applyEnv sets each flag from PLUGBOARD_<NAME> when that variable is present.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "PLUGBOARD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// servePprof serves net/http/pprof on l until l is closed. The handlers are registered on a mux
// of their own, never on the API's listeners.
func servePprof(l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv.Serve(l)
}

// egressConfig parses --egress-connect-to and --egress-ca into the host's egress settings.
func egressConfig(connectTo, caFile string) (map[string]string, *tls.Config, error) {
	var m map[string]string
	for _, pair := range strings.Split(connectTo, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, "=")
		_, fromPort, ferr := net.SplitHostPort(from)
		_, toPort, terr := net.SplitHostPort(to)
		if !ok || ferr != nil || terr != nil || fromPort == "" || toPort == "" {
			return nil, nil, fmt.Errorf("--egress-connect-to: %q is not HOST:PORT=HOST2:PORT2, like api.github.com:443=127.0.0.1:8443", pair)
		}
		if m == nil {
			m = map[string]string{}
		}
		m[from] = to
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--egress-ca: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--egress-ca: %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", caFile)
		}
		return m, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
	}
	return m, nil, nil
}
