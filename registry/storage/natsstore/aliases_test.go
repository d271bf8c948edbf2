package natsstore

import "github.com/plugboard/plugboard/registry/storage"

// The storage names this package's tests use, under short package-local names (bbolt's, which
// declares them in its own package).

type (
	APIKey        = storage.APIKey
	AuditQuery    = storage.AuditQuery
	Connection    = storage.Connection
	Delivery      = storage.Delivery
	MCPServer     = storage.MCPServer
	NewEvent      = storage.NewEvent
	Origin        = storage.Origin
	Pending       = storage.Pending
	Source        = storage.Source
	Subscription  = storage.Subscription
	TriggerLimits = storage.TriggerLimits
	TriggerRef    = storage.TriggerRef
	Version       = storage.Version
)

const (
	SourceActive  = storage.SourceActive
	SourcePoll    = storage.SourcePoll
	SourceWebhook = storage.SourceWebhook
)

var (
	ErrClosed     = storage.ErrClosed
	ErrDecrypt    = storage.ErrDecrypt
	ErrNotFound   = storage.ErrNotFound
	ErrUnknownKey = storage.ErrUnknownKey
	Digest        = storage.Digest
)
