package natsstore

import "github.com/plugboard/plugboard/registry/storage"

// The storage names under bbolt's package-local names, so bbolt's tests (port_*_test.go,
// copied from boltstore) run against this backend unchanged where they do not look inside
// the bbolt file.

type (
	APIKey           = storage.APIKey
	AuditEntry       = storage.AuditEntry
	AuditQuery       = storage.AuditQuery
	CommitResult     = storage.CommitResult
	Connection       = storage.Connection
	Delivery         = storage.Delivery
	Invocation       = storage.Invocation
	MCPServer        = storage.MCPServer
	NewEvent         = storage.NewEvent
	OAuthState       = storage.OAuthState
	Origin           = storage.Origin
	Pending          = storage.Pending
	PushOutcome      = storage.PushOutcome
	PushState        = storage.PushState
	QueueEntry       = storage.QueueEntry
	Sealer           = storage.Sealer
	Source           = storage.Source
	StoredEvent      = storage.StoredEvent
	Subscription     = storage.Subscription
	SubscriptionView = storage.SubscriptionView
	Timer            = storage.Timer
	TriggerError     = storage.TriggerError
	TriggerLimits    = storage.TriggerLimits
	TriggerRef       = storage.TriggerRef
	Version          = storage.Version
)

const (
	DefaultMasterKeyFileName = storage.DefaultMasterKeyFileName
	KeySize                  = storage.KeySize
	MaxInvocationsPerID      = storage.MaxInvocationsPerID
	MaxPruneBatch            = storage.MaxPruneBatch
	MaxKVKeyBytes            = storage.MaxKVKeyBytes
	MaxKVScopeBytes          = storage.MaxKVScopeBytes
	MaxKVValueBytes          = storage.MaxKVValueBytes
	MaxTimersPerScope        = storage.MaxTimersPerScope
	SourceActive             = storage.SourceActive
	SourcePoll               = storage.SourcePoll
	SourceStarting           = storage.SourceStarting
	SourceStopping           = storage.SourceStopping
	SourceWebhook            = storage.SourceWebhook
	SubActive                = storage.SubActive
	SubDisabled              = storage.SubDisabled
	SubOverflow              = storage.SubOverflow
)

var (
	ErrActive        = storage.ErrActive
	ErrClosed        = storage.ErrClosed
	ErrCorrupt       = storage.ErrCorrupt
	ErrDecrypt       = storage.ErrDecrypt
	ErrExists        = storage.ErrExists
	ErrInvalid       = storage.ErrInvalid
	ErrNotFound      = storage.ErrNotFound
	ErrTooLarge      = storage.ErrTooLarge
	ErrTooMany       = storage.ErrTooMany
	ErrUnknownKey    = storage.ErrUnknownKey
	ErrVersionExists = storage.ErrVersionExists
	Digest           = storage.Digest
	GenerateSealer   = storage.GenerateSealer
	LoadKeyFile      = storage.LoadKeyFile
	NewSealer        = storage.NewSealer
)
