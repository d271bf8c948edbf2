package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names (see doc.go for what each holds).
var (
	bucketStore       = []byte("store")
	bucketMeta        = []byte("meta")
	bucketBlobs       = []byte("blobs")
	bucketBlobRefs    = []byte("blob_refs")
	bucketVersions    = []byte("versions")
	bucketActive      = []byte("active")
	bucketCanaries    = []byte("canaries") // connector name -> storage.Canary
	bucketConnections = []byte("connections")
	bucketKV          = []byte("kv")
	bucketTimers      = []byte("timers")
	bucketTimersDue   = []byte("timers_due")
	bucketTimersScope = []byte("timers_scope")

	allBuckets = [][]byte{bucketStore, bucketMeta, bucketBlobs, bucketBlobRefs, bucketVersions,
		bucketActive, bucketCanaries, bucketConnections, bucketKV, bucketTimers, bucketTimersDue, bucketTimersScope,
		bucketSources, bucketSourceKeys, bucketHookTokens, bucketSubs, bucketSourceSubs, bucketEvents,
		bucketEventIDs, bucketQueue, bucketTrigSecrets}
)

// Keys in the store bucket.
var (
	keyFormat        = []byte("format")
	keyCheckPrefix   = "keycheck/"
	currentFormat    = []byte("1")
	keyCheckPlain    = []byte("plugboard master key check")
	keyCheckADPrefix = "plugboard/keycheck/"
)

// maxIDBytes bounds connector names, versions, connection ids, timer ids and meta keys.
const maxIDBytes = 1024

// checkID refuses an empty or oversized identifier; what names it in the error.
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("store: %s is empty: %w", what, ErrInvalid)
	}
	if len(id) > maxIDBytes {
		return fmt.Errorf("store: %s is over %d bytes: %w", what, maxIDBytes, ErrInvalid)
	}
	return nil
}

// appendLP appends s prefixed by its length as a uvarint, so concatenations stay unambiguous
// and one part is a prefix of the key only when it is that whole part.
func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readLP reads a length-prefixed string from b and returns it and the rest.
func readLP(b []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}

// connectionPrefix is the start of every scope key of a connection.
func connectionPrefix(connection string) []byte { return appendLP(nil, connection) }

// scopeKey names a (connector, connection) scope: connection first, so deleting a connection
// finds all its scopes with one prefix seek.
func scopeKey(connector, connection string) []byte {
	return appendLP(appendLP(nil, connection), connector)
}

// blobRefKey records that name@version references digest; all refs of a digest share the
// digest as prefix.
func blobRefKey(digest, name, version string) []byte {
	return append(appendLP(appendLP(nil, digest), name), version...)
}

// Time bounds of what UnixNano represents.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// timeInRange reports whether t fits in UnixNano.
func timeInRange(t time.Time) bool { return !t.Before(minTime) && !t.After(maxTime) }

// appendTime appends t as 8 bytes that sort like the times (big-endian UnixNano, sign flipped).
func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^(1<<63))
}

// readTime decodes appendTime's 8 bytes.
func readTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

// get looks key up in b (a bucket without nested buckets). Unlike Bucket.Get it tells an empty
// value from a missing key.
func get(b *bolt.Bucket, key []byte) ([]byte, bool) {
	k, v := b.Cursor().Seek(key)
	if k == nil || !bytes.Equal(k, key) {
		return nil, false
	}
	return v, true
}
