package storage

import (
	"encoding/json"
	"time"
)

// Version is one stored version of a connector.
type Version struct {
	// Name is the connector name.
	Name string
	// Version is a SemVer 2.0 version.
	Version string
	// Digest is the content address of the plugin bytes ("sha256:<hex>"); the blob must be
	// stored ([Store.PutBlob]) before the version.
	Digest string
	// Size is the plugin's size in bytes; 0 in [Store.PutVersion] means the blob's size.
	Size int64
	// UploadedAt is when the version was uploaded; zero in [Store.PutVersion] means now.
	UploadedAt time.Time
	// Manifest is the connector manifest as JSON (stored compacted); the store does not
	// interpret it.
	Manifest json.RawMessage
}
