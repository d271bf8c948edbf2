package boltstore

import "errors"

// errUnchanged makes an update transaction roll back (nothing to write, so no fsync) while the
// method reports success.
var errUnchanged = errors.New("unchanged")
