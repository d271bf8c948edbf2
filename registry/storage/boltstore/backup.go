package boltstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Backup writes a consistent snapshot of the whole data file to w (bbolt's Tx.WriteTo inside
// one read transaction, so writes go on meanwhile and are not in the copy) and returns the
// bytes written. size, called once before the first byte, learns the snapshot's exact length
// (for a Content-Length); it may be nil.
//
// The snapshot is a bbolt file like the data file itself: `plugboard store check` reads it, and
// `plugboard store restore` installs it. Connection secrets are in it sealed only: restoring it
// needs the master key file that sealed them ([Store.MasterKeyFile]).
func (s *Store) Backup(ctx context.Context, w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backing up %s: %w", s.path, err)
	}
	return n, nil
}

// CheckFile checks the data file (or a backup) at path without opening it for writing: that it
// is whole (its length and meta pages) and passes bbolt's consistency check. It returns nil, a
// *[CorruptError] listing the first problems, [ErrLocked] when a running server holds the file
// (check a backup of it instead), or the error of opening it.
func CheckFile(path string) error {
	if err := checkFile(path); err != nil {
		return err
	}
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("store: %s is locked by a running Plugboard: check a backup of it (`plugboard store backup FILE`) or stop the server: %w", path, ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", path, err)
	}
	defer db.Close()
	return consistency(db, path)
}
