package registry

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/boltstore"
	"github.com/plugboard/plugboard/registry/storage/natsstore"
)

// StoreConfig says which backend keeps the state and how to reach it (API.md "Cluster").
type StoreConfig struct {
	// URL is "" for bbolt in DataDir (the default), or nats://HOST:PORT[,nats://...] for NATS
	// JetStream.
	URL string
	// DataDir holds the bbolt file (bbolt only).
	DataDir string
	// MasterKeyFile seals connection secrets; "" means DataDir/master.key.
	MasterKeyFile string
	// SkipCheck skips bbolt's consistency check of the whole file at open.
	SkipCheck bool
	// Prefix, Replicas, NATSCreds and NATSTLSCA configure the JetStream backend: the prefix
	// of its buckets and streams ("" means "plugboard"), their replica count (0 means 1), a
	// NATS credentials file and the CA of the NATS servers' certificates.
	Prefix    string
	Replicas  int
	NATSCreds string
	NATSTLSCA string
	// NodeName names this node to the backend.
	NodeName string
	// Logger receives the backend's events; nil means slog.Default().
	Logger *slog.Logger
}

// Backend returns the name of the backend cfg selects: "bbolt" or "nats".
func (cfg StoreConfig) Backend() string {
	if cfg.URL == "" {
		return "bbolt"
	}
	return "nats"
}

// OpenStore opens the backend cfg names. It is the only place that knows the backends: the
// rest of Plugboard sees a [storage.Store].
func OpenStore(ctx context.Context, cfg StoreConfig) (storage.Store, error) {
	key := cfg.MasterKeyFile
	if key == "" && cfg.DataDir != "" {
		key = filepath.Join(cfg.DataDir, storage.DefaultMasterKeyFileName)
	}
	switch {
	case cfg.URL == "":
		if cfg.DataDir == "" {
			return nil, fmt.Errorf("registry: a data directory is required for the bbolt store")
		}
		st, err := boltstore.Open(filepath.Join(cfg.DataDir, "plugboard.db"), &boltstore.Options{MasterKeyFile: key, SkipCheck: cfg.SkipCheck})
		if err != nil {
			return nil, err
		}
		return st, nil
	case strings.HasPrefix(cfg.URL, "nats://"), strings.HasPrefix(cfg.URL, "tls://"):
		st, err := natsstore.Open(ctx, natsstore.Options{URLs: cfg.URL, Prefix: cfg.Prefix, Replicas: cfg.Replicas,
			CredsFile: cfg.NATSCreds, TLSCAFile: cfg.NATSTLSCA, MasterKeyFile: key, Name: cfg.NodeName, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		return st, nil
	default:
		return nil, fmt.Errorf("registry: --store %q: want nats://HOST:PORT (NATS JetStream), or no --store for bbolt in the data directory", cfg.URL)
	}
}

// CheckStoreFile checks a bbolt data file (a backup, or a stopped server's file) without
// opening it for writing: nil when it is whole and consistent, a [storage.ErrCorrupt] error
// naming the problem otherwise, [storage.ErrLocked] while a server holds it.
func CheckStoreFile(path string) error { return boltstore.CheckFile(path) }
