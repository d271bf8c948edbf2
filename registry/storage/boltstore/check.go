package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// CorruptError reports a data file that cannot be used as it is: cut short, with a damaged
// meta page, failing bbolt's consistency check at [Open], or found damaged by a transaction
// (bbolt panicked on a page that is not what it expected). It matches [ErrCorrupt].
type CorruptError struct {
	// Path is the data file.
	Path string
	// Problem says what is wrong, e.g. "truncated: 12288 of 32768 bytes".
	Problem string
	// Problems lists what bbolt's consistency check found (the first few), when it ran.
	Problems []string
}

// Error names the file, the problem and what to do.
func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("the store %s is damaged (%s)", e.Path, e.Problem)
	if len(e.Problems) > 0 {
		msg += ": " + strings.Join(e.Problems, "; ")
	}
	return msg + ": restore it from a backup with `plugboard store restore BACKUP --data DIR`, or move it away to start empty"
}

// Is makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// maxCheckProblems is how many problems of bbolt's consistency check an error lists.
const maxCheckProblems = 5

// bbolt's on-disk constants (go.etcd.io/bbolt internal/common): the page header is 16 bytes and
// the meta follows it; the meta's checksum is FNV-64a of its first 56 bytes.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumOffset  = 56
	metaSize       = 64
)

// boltMeta is the part of a bbolt meta page the file checks need.
type boltMeta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

// readMeta decodes and verifies the meta of the page at off; ok is false when the page is
// missing, cut short, not a bbolt meta or fails its checksum.
func readMeta(f io.ReaderAt, off int64) (m boltMeta, ok bool) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return m, false
	}
	b := buf[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != boltMagic || le.Uint32(b[4:]) != boltVersion {
		return m, false
	}
	h := fnv.New64a()
	h.Write(b[:metaSumOffset])
	if h.Sum64() != le.Uint64(b[metaSumOffset:]) {
		return m, false
	}
	return boltMeta{pageSize: le.Uint32(b[8:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, true
}

// checkFile checks, before bbolt maps the file, that an existing data file is whole: not empty,
// one valid meta page at least, and as long as its newest valid meta says (pgid * page size).
// bbolt would otherwise map past the end and crash with SIGBUS, or fail with a message naming
// no file. A file that does not exist passes (Open creates it).
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return &CorruptError{Path: path, Problem: "the file is empty (0 bytes)"}
	}
	m0, ok0 := readMeta(f, 0)
	sizes := []int64{int64(os.Getpagesize()), 4096}
	if ok0 {
		sizes = []int64{int64(m0.pageSize)}
	}
	var m1 boltMeta
	ok1 := false
	for _, ps := range sizes {
		if m1, ok1 = readMeta(f, ps); ok1 {
			break
		}
	}
	var m boltMeta
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case ok0:
		m = m0
	default:
		return &CorruptError{Path: path, Problem: fmt.Sprintf("no valid bbolt meta page in its %d bytes: not a Plugboard store, or its first pages were overwritten", size)}
	}
	if m.pageSize < 512 || m.pageSize&(m.pageSize-1) != 0 {
		return &CorruptError{Path: path, Problem: fmt.Sprintf("its meta page names a page size of %d bytes", m.pageSize)}
	}
	if want := int64(m.pgid) * int64(m.pageSize); size < want {
		return &CorruptError{Path: path, Problem: fmt.Sprintf("truncated: %d of %d bytes", size, want)}
	}
	if size < 4*int64(m.pageSize) {
		return &CorruptError{Path: path, Problem: fmt.Sprintf("truncated: %d of at least %d bytes", size, 4*m.pageSize)}
	}
	return nil
}

// consistency runs bbolt's consistency check (Tx.Check) on db and returns a *CorruptError
// listing the first problems, or nil.
func consistency(db *bolt.DB, path string) (err error) {
	defer recoverCorrupt(path, &err)
	var problems []string
	n := 0
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			if n < maxCheckProblems {
				msg := strings.TrimPrefix(strings.TrimPrefix(e.Error(), "panic: "), "assertion failed: ")
				problems = append(problems, msg)
			}
			n++
		}
		return nil
	})
	if err != nil || n == 0 {
		return err
	}
	what := "it failed bbolt's consistency check with 1 problem"
	if n > 1 {
		what = fmt.Sprintf("it failed bbolt's consistency check with %d problems", n)
	}
	return &CorruptError{Path: path, Problem: what, Problems: problems}
}

// recoverCorrupt, deferred, turns a panic raised inside bbolt (an assertion on a page that is
// not what it expected) into a *CorruptError in *err. A panic raised elsewhere (a bug in a
// transaction's function) goes on panicking.
func recoverCorrupt(path string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	if !panickedInBolt() {
		panic(r)
	}
	*err = &CorruptError{Path: path, Problem: fmt.Sprintf("a page is not what bbolt expected: %v", r)}
}

// panickedInBolt reports whether the panic being recovered was raised by bbolt: the first frame
// below runtime.gopanic outside the runtime is in package go.etcd.io/bbolt.
func panickedInBolt() bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	seenPanic := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			seenPanic = true
		case seenPanic && !strings.HasPrefix(f.Function, "runtime."):
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}

// isNoSpace reports whether err is the file system refusing a write for lack of space
// (ENOSPC) or quota (EDQUOT).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
