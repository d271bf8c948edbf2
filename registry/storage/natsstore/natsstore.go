package natsstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plugboard/plugboard/registry/storage"
)

// DefaultPrefix starts the bucket and stream names when [Options.Prefix] is empty.
const DefaultPrefix = "plugboard"

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
	// When it is absent, Open creates it (mode 0600) with one new random key.
	MasterKeyFile string
	// Name names this client connection (the node name).
	Name string
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OpTimeout bounds one NATS request when the caller's context has no deadline; 0 means 5 s.
	OpTimeout time.Duration
	// ConnectWait is how long Open keeps trying when no NATS server answers yet (a node started
	// with, or just before, its NATS: systemd units and compose files start them together);
	// 0 means DefaultConnectWait, negative means one try. Refusals (credentials, TLS) fail at once.
	ConnectWait time.Duration
}

// DefaultConnectWait is how long Open waits for a NATS server that is not up yet.
const DefaultConnectWait = 30 * time.Second

// Store is Plugboard's state in one JetStream namespace. It is safe for concurrent use, and
// several Store values (one per node) may share one namespace.
type Store struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	urls   string
	prefix string
	now    func() time.Time
	log    *slog.Logger
	opTO   time.Duration

	keyFile  string
	sealer   atomic.Pointer[storage.Sealer]
	rotateMu sync.Mutex

	versions *bucket // v.<name>.<ver>, active.<name>, canary.<name>, ref.<digest>, g.<name>
	state    *bucket // conn.<id>, t.<id>, tscope.<conn>.<connector>, kv..., kvs..., oauth.<key>, meta.<key>
	trig     *bucket // trigger sources, subscriptions, events and queues (triggers.go)
	keys     *bucket // <key id>
	mcp      *bucket // <server name>
	cluster  *bucket // lease.<name>, node.<name>
	blobs    jetstream.ObjectStore
	audit    jetstream.Stream
	inv      jetstream.Stream

	// In-memory copies kept current by watchers (cache.go).
	cVersions, cActive, cCanary, cKeys, cMCP, cConns, cTimers *cache

	closed     atomic.Bool
	closedFlag *atomic.Bool // the connection handlers' copy of closed
	corrupt    atomic.Int64
	stop       context.CancelFunc
	watchers   sync.WaitGroup
	// holdWatchers is read-locked by a watcher for each update it applies; a test write-locks
	// it to play a node whose watchers lag behind the other nodes' commits.
	holdWatchers sync.RWMutex

	healthMu  sync.Mutex
	healthAt  time.Time
	healthErr error

	// crashMidBatch, when set (tests), makes a multi-key commit stop after publishing part of
	// its batch, before the commit message, as a node killed mid-commit would (txn.go).
	crashMidBatch atomic.Pointer[func(bucket string) bool]
}

var _ storage.Store = (*Store)(nil)

// Open connects to NATS, creates the buckets and streams of the namespace when they are
// missing, loads (or creates) the master key file, and fills the in-memory copies of the
// records the request path reads. It returns once those copies hold everything committed
// before it was called.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URLs == "" {
		return nil, fmt.Errorf("natsstore: no NATS URL (want nats://HOST:PORT): %w", storage.ErrInvalid)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !validName(opts.Prefix) {
		return nil, fmt.Errorf("natsstore: prefix %q may hold only letters, digits, '-' and '_': %w", opts.Prefix, storage.ErrInvalid)
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 5 * time.Second
	}
	if opts.MasterKeyFile == "" {
		return nil, fmt.Errorf("natsstore: a master key file is required (--master-key-file; every node needs the same one): %w", storage.ErrInvalid)
	}
	log := opts.Logger
	urls := opts.URLs
	var closed atomic.Bool // the store's closed flag, for the handlers
	nopts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !closed.Load() {
				log.Warn("natsstore: disconnected from NATS; reconnecting", "url", urls, "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Debug("natsstore: asynchronous NATS error", "url", urls, "subject", subj, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("natsstore: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if opts.Name != "" {
		nopts = append(nopts, nats.Name(opts.Name))
	}
	if opts.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(opts.CredsFile))
	}
	if opts.TLSCAFile != "" {
		nopts = append(nopts, nats.RootCAs(opts.TLSCAFile))
	}
	nc, err := connect(ctx, opts, log, nopts)
	if err != nil {
		return nil, fmt.Errorf("natsstore: connecting to NATS at %s (is nats-server running with JetStream?): %w", opts.URLs, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsstore: JetStream at %s: %w", opts.URLs, err)
	}
	s := &Store{nc: nc, js: js, urls: opts.URLs, prefix: opts.Prefix, now: opts.Now, log: log, opTO: opts.OpTimeout, keyFile: opts.MasterKeyFile}
	s.closedFlag = &closed
	if err := s.init(ctx, opts.Replicas); err != nil {
		nc.Close()
		return nil, err
	}
	if err := s.loadKeys(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func validName(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// init creates the buckets and streams and starts the cache watchers.
func (s *Store) init(ctx context.Context, replicas int) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var err error
	mk := func(name string, atomicBatch bool, maxAge time.Duration) *bucket {
		if err != nil {
			return nil
		}
		var b *bucket
		b, err = s.openBucket(ctx, s.prefix+"_"+name, replicas, atomicBatch, maxAge)
		return b
	}
	s.versions = mk("versions", true, 0)
	s.state = mk("state", true, 0)
	s.trig = mk("trig", true, 0)
	s.keys = mk("apikeys", false, 0)
	s.mcp = mk("mcp", false, 0)
	s.cluster = mk("cluster", false, clusterMaxAge)
	if err != nil {
		return err
	}
	s.blobs, err = s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: s.prefix + "_blobs", Replicas: replicas,
		Description: "Plugboard plugin blobs, by digest"})
	if err != nil {
		return fmt.Errorf("natsstore: creating the object store %s_blobs on %s: %w", s.prefix, s.urls, err)
	}
	s.audit, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: s.prefix + "_audit", Subjects: []string{s.prefix + ".audit"},
		Replicas: replicas, Description: "Plugboard audit log", AllowDirect: true})
	if err != nil {
		return fmt.Errorf("natsstore: creating the stream %s_audit on %s: %w", s.prefix, s.urls, err)
	}
	s.inv, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: s.prefix + "_invocations", Subjects: []string{s.prefix + ".inv.>"},
		Replicas: replicas, Description: "Plugboard invocation logs", AllowDirect: true, AllowAtomicPublish: true})
	if err != nil {
		return fmt.Errorf("natsstore: creating the stream %s_invocations on %s: %w", s.prefix, s.urls, err)
	}
	return s.startCaches()
}

// opCtx bounds ctx by the operation timeout when it has no deadline.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.opTO)
}

// check fails fast after Close and on a done context.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("natsstore: %w", storage.ErrClosed)
	}
	return ctx.Err()
}

// reach is check, and fails fast while the NATS connection is down (a request would wait for
// the reconnection until its timeout): [storage.ErrUnavailable].
func (s *Store) reach(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if !s.nc.IsConnected() {
		return fmt.Errorf("natsstore: the store is unreachable (NATS at %s, status %s; retry once it is back): %w", s.urls, s.nc.Status(), storage.ErrUnavailable)
	}
	return nil
}

// netErr turns an error of the NATS client into one that says what to do: ErrClosed after
// Close, "unreachable" while the connection is down.
func (s *Store) netErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() {
		return fmt.Errorf("natsstore: %s: %w", what, storage.ErrClosed)
	}
	if !s.nc.IsConnected() || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("natsstore: %s: the store is unreachable (NATS at %s, status %s; retry once it is back): %w: %w", what, s.urls, s.nc.Status(), storage.ErrUnavailable, err)
	}
	return fmt.Errorf("natsstore: %s: %w", what, err)
}

// Close stops the watchers and closes the NATS connection. Methods called afterwards fail
// with [storage.ErrClosed]; closing again returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.closedFlag.Store(true)
	if s.stop != nil {
		s.stop()
	}
	s.watchers.Wait()
	s.nc.Close()
	return nil
}

// Health implements [storage.Store]: nil while the NATS connection is up and JetStream
// answers (the answer is kept for a second), an error naming the NATS URL otherwise.
func (s *Store) Health(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("natsstore: %w", storage.ErrClosed)
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if now := time.Now(); now.Sub(s.healthAt) < time.Second {
		return s.healthErr
	}
	var err error
	if !s.nc.IsConnected() {
		err = fmt.Errorf("natsstore: NATS at %s is unreachable (status %s); reconnecting", s.urls, s.nc.Status())
	} else {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, jerr := s.js.AccountInfo(cctx)
		cancel()
		if jerr != nil {
			err = fmt.Errorf("natsstore: JetStream at %s does not answer: %w", s.urls, jerr)
		}
	}
	if err == nil && s.corrupt.Load() > 0 {
		err = fmt.Errorf("natsstore: %d stored records failed to decode: %w", s.corrupt.Load(), storage.ErrCorrupt)
	}
	s.healthAt, s.healthErr = time.Now(), err
	return err
}

// Corruptions implements [storage.Store]: how many stored records failed to decode since Open.
func (s *Store) Corruptions() int64 { return s.corrupt.Load() }

// corruptErr counts a record that failed to decode and returns an error naming it.
func (s *Store) corruptErr(what string, err error) error {
	s.corrupt.Add(1)
	return fmt.Errorf("natsstore: %s does not decode: %w: %w", what, storage.ErrCorrupt, err)
}

// nowUTC is the store clock in UTC, without monotonic reading.
func (s *Store) nowUTC() time.Time { return s.now().UTC().Round(0) }

func (s *Store) sealerNow() *storage.Sealer { return s.sealer.Load() }

// MasterKeyID implements [storage.Connections].
func (s *Store) MasterKeyID() string { return s.sealerNow().ActiveKeyID() }

// loadKeys loads or creates the master key file and checks it against the key checks stored
// in the namespace: a key file that belongs to another namespace is refused at start.
func (s *Store) loadKeys(ctx context.Context) error {
	sealer, err := storage.LoadKeyFile(s.keyFile)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		sealer, err = storage.GenerateSealer()
		created = true
	}
	if err != nil {
		return err
	}
	checks, err := s.scan(ctx, s.state, "keycheck.>")
	if err != nil {
		return err
	}
	var bad []string
	for _, e := range checks {
		kid := dec(strings.TrimPrefix(e.key, "keycheck."))
		if _, err := sealer.OpenRaw(e.val, []byte(keyCheckAD+kid)); err != nil {
			bad = append(bad, kid)
		}
	}
	if len(bad) > 0 {
		used := 0
		for _, c := range s.cConns.all() {
			if kid, err := storage.SealedKeyID(c.(connectionRecord).Secret); err == nil && contains(bad, kid) {
				used++
			}
		}
		if used > 0 {
			return fmt.Errorf("natsstore: master key file %s does not open %d connection secret(s) in the namespace %q (keys %q); every node needs the same key file: %w",
				s.keyFile, used, s.prefix, bad, storage.ErrUnknownKey)
		}
	}
	if created {
		if err := sealer.WriteNewKeyFile(s.keyFile); err != nil {
			if !errors.Is(err, fs.ErrExist) {
				return err
			}
			// Another process created it first: use that one.
			if sealer, err = storage.LoadKeyFile(s.keyFile); err != nil {
				return err
			}
		}
	}
	if err := s.putKeyChecks(ctx, sealer); err != nil {
		return err
	}
	s.sealer.Store(sealer)
	return nil
}

const keyCheckAD = "plugboard/keycheck/"

var keyCheckPlain = []byte("plugboard master key check")

// putKeyChecks stores a key check for each key of sealer that has none.
func (s *Store) putKeyChecks(ctx context.Context, sealer *storage.Sealer) error {
	for _, kid := range sealer.KeyIDs() {
		_, err := s.update(ctx, s.state, func(t *txn) error {
			e, err := t.get(ctx, "keycheck."+enc(kid))
			if err != nil || e.exists {
				return err
			}
			check, err := sealer.SealWith(kid, keyCheckPlain, []byte(keyCheckAD+kid))
			if err != nil {
				return err
			}
			t.put("keycheck."+enc(kid), check)
			return nil
		})
		if err != nil {
			return fmt.Errorf("natsstore: recording master key checks: %w", err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// connect dials NATS, trying again every 250 ms for up to opts.ConnectWait while no server
// answers (nats.ErrNoServers), and saying so in the log.
func connect(ctx context.Context, opts Options, log *slog.Logger, nopts []nats.Option) (*nats.Conn, error) {
	wait := opts.ConnectWait
	if wait == 0 {
		wait = DefaultConnectWait
	}
	deadline := time.Now().Add(wait)
	var told time.Time
	for {
		nc, err := nats.Connect(opts.URLs, nopts...)
		if err == nil || !errors.Is(err, nats.ErrNoServers) || wait < 0 || time.Now().After(deadline) {
			return nc, err
		}
		if time.Since(told) >= 5*time.Second {
			log.Info("natsstore: waiting for NATS to answer", "url", opts.URLs, "gives_up_in", time.Until(deadline).Round(time.Second).String())
			told = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (stopped waiting: %v)", err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
