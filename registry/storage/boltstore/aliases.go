package boltstore

import "github.com/plugboard/plugboard/registry/storage"

// The types, limits and errors of the storage contract, under the names this package used before
// it became one backend of [storage]; code outside it uses the storage names.

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
	ErrLocked        = storage.ErrLocked
	ErrNoSpace       = storage.ErrNoSpace
	ErrNotFound      = storage.ErrNotFound
	ErrTooLarge      = storage.ErrTooLarge
	ErrTooMany       = storage.ErrTooMany
	ErrUnavailable   = storage.ErrUnavailable
	ErrUnknownKey    = storage.ErrUnknownKey
	ErrVersionExists = storage.ErrVersionExists
	CheckDigest      = storage.CheckDigest
	Digest           = storage.Digest
	GenerateSealer   = storage.GenerateSealer
	LoadKeyFile      = storage.LoadKeyFile
	NewSealer        = storage.NewSealer
	SealedKeyID      = storage.SealedKeyID
)
