package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/plugboard/plugboard/server"
)

// runServe implements `plugboard serve`: every flag can also be set as PLUGBOARD_<NAME>
// (upper case, dashes as underscores); a flag on the command line wins.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	data := fs.String("data", "./var", "data directory (bbolt store, compilation cache, keys)")
	publicURL := fs.String("public-url", "", "externally reachable base URL for OAuth redirects and webhook URLs (default: the listen address)")
	connectorsDir := fs.String("connectors-dir", "", "upload and activate every .wasm in this directory at start")
	watch := fs.Bool("watch", false, "with --connectors-dir: upload and activate each .wasm there again whenever it changes (dev builds; capability changes approved)")
	egressAllow := fs.String("egress-allow", "", "comma-separated CIDRs of private networks plugins may reach (default none)")
	masterKey := fs.String("master-key-file", "", "credential encryption key file (default <data>/master.key, generated if absent)")
	maxUpload := fs.Int64("max-upload-mib", 64, "largest plugin upload accepted, in MiB")
	printToken := fs.Bool("print-token", false, "print the admin token at start even when it was not generated now")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: plugboard serve [flags]\n\nRun the Plugboard server. Every flag may also be set as PLUGBOARD_<FLAG> (e.g. PLUGBOARD_LISTEN).\nThe admin token comes from PLUGBOARD_ADMIN_TOKEN, or is generated at first start and stored in <data>/admin.token.\n\nExample:\n  plugboard serve --data ./var --connectors-dir bin/plugins\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
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

	var allow []netip.Prefix
	for _, c := range strings.Split(*egressAllow, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return fmt.Errorf("--egress-allow: %q is not a CIDR like 10.0.0.0/8: %w", c, err)
		}
		allow = append(allow, p.Masked())
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another Plugboard running? choose another address with --listen)", *listen, err)
	}
	baseURL := "http://" + ln.Addr().String()
	if *publicURL == "" {
		*publicURL = baseURL
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	srv, err := server.New(ctx, &server.Options{
		DataDir:        *data,
		AdminToken:     os.Getenv("PLUGBOARD_ADMIN_TOKEN"),
		PublicURL:      *publicURL,
		ConnectorsDir:  *connectorsDir,
		MasterKeyFile:  *masterKey,
		EgressAllow:    allow,
		MaxUploadBytes: *maxUpload << 20,
		Logger:         logger,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close(context.Background())

	token, generated := srv.AdminToken()
	fmt.Fprintf(stdout, "Plugboard is serving on %s (ready in %s)\n", baseURL, time.Since(start).Round(time.Millisecond))
	switch {
	case generated:
		fmt.Fprintf(stdout, "Admin token (generated now, stored in %s/admin.token): %s\n", *data, token)
	case *printToken:
		fmt.Fprintf(stdout, "Admin token: %s\n", token)
	}
	fmt.Fprintf(stdout, "Try: export PLUGBOARD_URL=%s PLUGBOARD_TOKEN=<admin token>; plugboard connector list\n", baseURL)

	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if *watch {
		go watchConnectors(ctx, baseURL, token, *connectorsDir, stdout)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down; waiting for calls in flight")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
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
