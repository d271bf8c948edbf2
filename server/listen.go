package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Listen opens a listener for addr: "unix:/path/to.sock" (a leftover socket file is replaced;
// the socket is made mode 0600, so only this user reaches it) or host:port.
func Listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	if path == "" {
		return nil, errors.New("unix: needs a socket path, e.g. unix:/run/plugboard/admin.sock")
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// ServeConfig says where [Server.Serve] serves.
type ServeConfig struct {
	// Public serves [Server.PublicHandler]; required.
	Public net.Listener
	// Admin, when set, serves [Server.AdminHandler] (start the server with
	// Options.SeparateAdmin so the public listener stops serving the management API).
	Admin net.Listener
	// TLSCertFile and TLSKeyFile, when set, serve HTTPS on the public listener and on a TCP
	// admin listener (a unix socket admin listener stays plain: it never leaves the machine).
	TLSCertFile, TLSKeyFile string
	// ErrorLog receives the HTTP servers' errors; nil means the log package's default.
	ErrorLog *log.Logger
	// ShutdownTimeout bounds the wait for calls in flight once ctx is done; 0 means 30 s.
	ShutdownTimeout time.Duration
}

// Serve serves until ctx is done or a listener fails, then shuts the HTTP servers down,
// letting calls in flight finish. It does not close the Server.
func (s *Server) Serve(ctx context.Context, c ServeConfig) error {
	if c.Public == nil {
		return errors.New("server: ServeConfig.Public is required")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("server: TLS needs both a certificate and a key file")
	}
	var tlsConf *tls.Config
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("loading the TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	newHTTP := func(h http.Handler) *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: c.ErrorLog}
	}
	type srv struct {
		hs *http.Server
		l  net.Listener
	}
	servers := []srv{{newHTTP(s.PublicHandler()), c.Public}}
	if c.Admin != nil {
		servers = append(servers, srv{newHTTP(s.AdminHandler()), c.Admin})
	}
	errc := make(chan error, len(servers))
	for _, sv := range servers {
		l := sv.l
		if tlsConf != nil && l.Addr().Network() != "unix" {
			l = tls.NewListener(l, tlsConf)
		}
		go func() { errc <- sv.hs.Serve(l) }()
	}
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	timeout := c.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, sv := range servers {
		if serr := sv.hs.Shutdown(sctx); serr != nil && err == nil {
			err = serr
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
