package host

import (
	"errors"
	"fmt"
)

// Sentinel errors of plugin calls. Errors returned by [Module.Call] wrap exactly one of them.
var (
	// ErrTimeout: the call ran past its deadline; the instance was discarded.
	ErrTimeout = errors.New("plugin call timed out")
	// ErrPluginFailed: the plugin trapped, returned non-zero, set an Extism error, ran out of
	// memory or wrote an output that is not a valid result document.
	ErrPluginFailed = errors.New("plugin failed")
	// ErrCanceled: the caller went away before the call finished.
	ErrCanceled = errors.New("plugin call canceled")
	// ErrClosed: the module was closed (its version was unloaded).
	ErrClosed = errors.New("module closed")
	// ErrBusy: every instance of the pool stayed busy until the deadline.
	ErrBusy = errors.New("all plugin instances busy")
	// ErrNoSpace: compiling a module failed because the compilation cache could not be written
	// for lack of disk space or quota (ENOSPC, EDQUOT): the server's problem, not the module's.
	ErrNoSpace = errors.New("no space left on the server's disk for the compilation cache")
)

// Errors a [State] implementation returns so the imports can answer the right code.
var (
	ErrNotFound = errors.New("not found")
	ErrTooLarge = errors.New("too large")
	ErrTooMany  = errors.New("too many")
)

// Upload check codes of API.md "upload checks", in the order they are checked.
const (
	CheckInvalidWasm      = "invalid_wasm"
	CheckImportNotAllowed = "import_not_allowed"
	CheckMissingExport    = "missing_export"
	CheckDescribeFailed   = "describe_failed"
	CheckInvalidManifest  = "invalid_manifest"
)

// CheckError is a failed upload check: Code is one of the Check* constants and Err says what
// exactly failed, in words an author can act on.
type CheckError struct {
	Code string
	Err  error
}

// Error implements the error interface.
func (e *CheckError) Error() string { return fmt.Sprintf("%s: %v", e.Code, e.Err) }

// Unwrap returns the underlying error.
func (e *CheckError) Unwrap() error { return e.Err }

func checkErr(code string, format string, args ...any) *CheckError {
	return &CheckError{Code: code, Err: fmt.Errorf(format, args...)}
}
