// Package natsstore keeps Plugboard's state in NATS JetStream, so several nodes share one
// namespace (API.md "Cluster"). It implements every interface of [storage].
package natsstore

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// Options configure [Open].
type Options struct {
	// URLs are the NATS servers, comma-separated, each nats://HOST:PORT (or tls://).
	URLs string
	// Prefix starts the name of every bucket and stream, so several namespaces share one NATS;
	// "" means "plugboard".
	Prefix string
	// Replicas is the JetStream replica count of every bucket and stream; 0 means 1.
	Replicas int
	// CredsFile is a NATS credentials file (JWT and NKey seed); "" means none.
	CredsFile string
	// TLSCAFile is the CA that signs the NATS servers' certificates; "" means the system pool.
	TLSCAFile string
	// MasterKeyFile seals connection secrets; every node of a namespace needs the same file.
	MasterKeyFile string
	// Name names this client connection (the node name).
	Name string
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store is Plugboard's state in one JetStream namespace.
type Store struct{ storage.Store } // a placeholder until the backend lands

// Open connects to NATS, creates the buckets and streams of the namespace when they are
// missing, and loads the master key file.
func Open(ctx context.Context, opts Options) (*Store, error) {
	return nil, errors.New("natsstore: not implemented yet")
}

var _ = storage.ErrClosed
