package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultLockTimeout is how long Open waits for the data file's lock when
// [Options.LockTimeout] is zero.
const DefaultLockTimeout = 5 * time.Second

// Options configures [Open]. A nil *Options is the zero value: every field's zero value is a
// working default.
type Options struct {
	// MasterKeyFile is the path of the master key file that seals connection secrets; "" means
	// master.key in the data file's directory. When the file is absent it is created (mode 0600)
	// with one new random 32-byte key, unless the data file already holds secrets sealed with
	// another key (then Open fails rather than make them unreadable).
	MasterKeyFile string
	// LockTimeout bounds the wait for the data file's exclusive lock; 0 (or less) means
	// DefaultLockTimeout (5 s), so a second server on the same data directory fails with a clear
	// error ([ErrLocked]) instead of hanging.
	LockTimeout time.Duration
	// Now is the clock for timestamps the store fills in and for kv expiry; nil means time.Now.
	Now func() time.Time
	// SkipCheck skips bbolt's consistency check of the whole file at Open (it reads every
	// page, so it takes a while on very large stores). false (the default) runs it, and Open
	// refuses a damaged file with a [CorruptError]. The cheap checks that the file is whole
	// (its length, its meta pages) run either way.
	SkipCheck bool
}

// Store is Plugboard's durable state in one bbolt file. It is safe for concurrent use. Every
// write is one transaction, fsynced before the method returns; every value returned is a copy
// the caller owns.
type Store struct {
	db      *bolt.DB
	path    string
	keyFile string
	now     func() time.Time

	sealer   atomic.Pointer[Sealer]
	closed   atomic.Bool
	corrupt  atomic.Int64 // transactions that found the file damaged (bbolt panicked)
	rotateMu sync.Mutex   // one key rotation at a time
	cl       cluster      // leases, heartbeats and watchers of this one process (cluster.go)
}

// Open opens (creating if needed, mode 0600) the data file at path, creates the buckets, and
// loads (or creates) the master key file, checking that its keys open the secrets already
// sealed in the file. The data file's directory must exist. opts may be nil.
//
// Open fails with [ErrLocked] when another process holds the file (another Plugboard running on
// the same data directory), with a *[CorruptError] ([ErrCorrupt]) naming the file when it is
// cut short, its meta pages are damaged or it fails bbolt's consistency check (unless
// [Options.SkipCheck]), and with a message naming the key file when that file is malformed,
// accessible to group or others, or does not match the stored secrets.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MasterKeyFile == "" {
		o.MasterKeyFile = filepath.Join(filepath.Dir(path), DefaultMasterKeyFileName)
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, &bolt.Options{Timeout: o.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is locked by another process (another Plugboard may be running on this data directory); gave up after %s: %w",
			path, o.LockTimeout, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	if !o.SkipCheck {
		if err := consistency(db, path); err != nil {
			db.Close()
			return nil, err
		}
	}
	s := &Store{db: db, path: path, keyFile: o.MasterKeyFile, now: o.Now}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadKeys(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openBolt is bolt.Open with a damaged file reported as a *CorruptError: bbolt panics when the
// freelist page is not a freelist, and answers ErrInvalid or ErrChecksum for bad meta pages.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer recoverCorrupt(path, &err)
	db, err = bolt.Open(path, 0o600, opts)
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, &CorruptError{Path: path, Problem: err.Error()}
	}
	return db, err
}

// init creates the buckets and checks the format version.
func (s *Store) init() error {
	err := s.update(context.Background(), func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketStore)
		switch f := b.Get(keyFormat); {
		case f == nil:
			return b.Put(keyFormat, currentFormat)
		case !bytes.Equal(f, currentFormat):
			return fmt.Errorf("store: %s has data format %q; this Plugboard reads format %q", s.path, f, currentFormat)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: initialising %s: %w", s.path, err)
	}
	return nil
}

// loadKeys loads or creates the master key file and reconciles it with the key checks stored
// in the data file. A key check is a constant sealed with a key when that key is first seen;
// keys that sealed something leave one behind, so Open can tell at start (not at the first
// secret read) that the key file does not belong to this data file. A stored check whose key is
// missing or different only stops Open when some connection secret is sealed with that key id;
// otherwise the stale check is dropped.
func (s *Store) loadKeys() error {
	sealer, err := LoadKeyFile(s.keyFile)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		sealer, err = GenerateSealer()
		created = true
	}
	if err != nil {
		return err
	}
	var stale []string
	err = s.view(context.Background(), func(tx *bolt.Tx) error {
		var bad []string
		sentinel := ErrDecrypt
		c := tx.Bucket(bucketStore).Cursor()
		for k, v := c.Seek([]byte(keyCheckPrefix)); k != nil && bytes.HasPrefix(k, []byte(keyCheckPrefix)); k, v = c.Next() {
			kid := string(k[len(keyCheckPrefix):])
			if _, err := sealer.OpenRaw(v, []byte(keyCheckADPrefix+kid)); err != nil {
				bad = append(bad, kid)
				if errors.Is(err, ErrUnknownKey) {
					sentinel = ErrUnknownKey
				}
			}
		}
		if len(bad) == 0 {
			return nil
		}
		used, err := sealedSecretsByKey(tx, bad)
		if err != nil {
			return err
		}
		if len(used) == 0 {
			stale = bad
			return nil
		}
		var desc []string
		n := 0
		for _, kid := range bad {
			if used[kid] > 0 {
				desc = append(desc, fmt.Sprintf("%d sealed with master key %q", used[kid], kid))
				n += used[kid]
			}
		}
		if created {
			return fmt.Errorf("store: master key file %s does not exist, but %s holds %d connection secret(s) (%s): restore the key file; a new key could not open them: %w",
				s.keyFile, s.path, n, strings.Join(desc, ", "), ErrUnknownKey)
		}
		return fmt.Errorf("store: master key file %s does not open %d connection secret(s) in %s (%s), so it may belong to another data directory: %w",
			s.keyFile, n, s.path, strings.Join(desc, ", "), sentinel)
	})
	if err != nil {
		return err
	}
	if created {
		if err := sealer.WriteNewKeyFile(s.keyFile); err != nil {
			return err
		}
	}
	err = s.update(context.Background(), func(tx *bolt.Tx) error { return putKeyChecks(tx, sealer, stale) })
	if err != nil {
		return fmt.Errorf("store: recording master key checks: %w", err)
	}
	s.sealer.Store(sealer)
	return nil
}

// putKeyChecks deletes the checks of the drop ids and adds a check for every key of sealer that
// has none. It returns errUnchanged when there was nothing to do.
func putKeyChecks(tx *bolt.Tx, sealer *Sealer, drop []string) error {
	b := tx.Bucket(bucketStore)
	changed := false
	for _, kid := range drop {
		if err := b.Delete([]byte(keyCheckPrefix + kid)); err != nil {
			return err
		}
		changed = true
	}
	for _, kid := range sealer.KeyIDs() {
		k := []byte(keyCheckPrefix + kid)
		if b.Get(k) != nil {
			continue
		}
		check, err := sealer.SealWith(kid, keyCheckPlain, []byte(keyCheckADPrefix+kid))
		if err != nil {
			return err
		}
		if err := b.Put(k, check); err != nil {
			return err
		}
		changed = true
	}
	if !changed {
		return errUnchanged
	}
	return nil
}

// sealedSecretsByKey counts the connection secrets sealed with each of kids.
func sealedSecretsByKey(tx *bolt.Tx, kids []string) (map[string]int, error) {
	want := make(map[string]bool, len(kids))
	for _, k := range kids {
		want[k] = true
	}
	used := map[string]int{}
	err := tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
		rec, err := decodeConnection(k, v)
		if err != nil {
			return err
		}
		if rec.Secret == nil {
			return nil
		}
		env, err := decodeEnvelope(rec.Secret)
		if err != nil {
			return fmt.Errorf("store: connection %q: %w", k, err)
		}
		kid := env.KID
		if want[kid] {
			used[kid]++
		}
		return nil
	})
	return used, err
}

// Close closes the data file, waiting for running transactions. Methods called after Close
// return [ErrClosed]; closing again returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: closing %s: %w", s.path, err)
	}
	return nil
}

// Path returns the data file's path.
func (s *Store) Path() string { return s.path }

// MasterKeyFile returns the master key file's path.
func (s *Store) MasterKeyFile() string { return s.keyFile }

// update runs fn in one write transaction, fsynced on commit. fn returning errUnchanged rolls
// back and update returns nil. ctx is checked before the transaction begins.
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	err := s.run(s.db.Update, fn)
	if errors.Is(err, errUnchanged) {
		return nil
	}
	return s.mapErr(err)
}

// run runs fn in a transaction begun by begin (db.View, db.Update or db.Batch; each rolls back
// when fn panics), turning a panic of bbolt into a *CorruptError and counting it.
func (s *Store) run(begin func(func(*bolt.Tx) error) error, fn func(tx *bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if !panickedInBolt() {
				panic(r)
			}
			s.corrupt.Add(1)
			err = &CorruptError{Path: s.path, Problem: fmt.Sprintf("a page is not what bbolt expected: %v", r)}
		}
	}()
	return begin(fn)
}

// Corruptions returns how many transactions since Open found the data file damaged (bbolt
// panicked on a page and the method returned an [ErrCorrupt] error). Any is reason to stop
// trusting the store: run `plugboard store check`.
func (s *Store) Corruptions() int64 { return s.corrupt.Load() }

// view runs fn in one read transaction. ctx is checked before the transaction begins.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.mapErr(s.run(s.db.View, fn))
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

func (s *Store) mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if isNoSpace(err) && !errors.Is(err, ErrNoSpace) {
		return fmt.Errorf("store: writing %s: %w (%w)", s.path, ErrNoSpace, err)
	}
	return err
}

// nowUTC is the store clock in UTC, without monotonic reading.
func (s *Store) nowUTC() time.Time { return s.now().UTC().Round(0) }

// sealerNow returns the current Sealer.
func (s *Store) sealerNow() *Sealer { return s.sealer.Load() }

// Health implements [storage.Store]: [ErrClosed] after Close, a *[CorruptError] once a
// transaction found the file damaged, nil otherwise.
func (s *Store) Health(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("store: %w", ErrClosed)
	}
	if n := s.corrupt.Load(); n > 0 {
		return &CorruptError{Path: s.path, Problem: fmt.Sprintf("%d transactions found the file damaged", n)}
	}
	return nil
}

var _ storage.Store = (*Store)(nil)
var _ storage.Backuper = (*Store)(nil)
