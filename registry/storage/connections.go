package storage

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Connection is a stored connection. Only Secret is secret: it is sealed ([Sealer]) before it
// is written and opened when read, so the data file never holds it in clear.
type Connection struct {
	// ID is the connection id, unique in the store.
	ID string
	// Connectors are the connectors allowed to use the connection.
	Connectors []string
	// Params are the non-secret connection parameters as JSON (stored compacted).
	Params json.RawMessage
	// AuthType is the auth type ("none", "api_key", ...); the store does not interpret it.
	AuthType string
	// Hosts are the origins the connection's credentials may be sent to.
	Hosts []string
	// Status is the connection status ("ready", ...); the store does not interpret it.
	Status string
	// CreatedAt is set to now by [Store.CreateConnection] when zero.
	CreatedAt time.Time
	// UpdatedAt is set to now by [Store.CreateConnection] when zero and by
	// [Store.UpdateConnection] unless its fn changes it.
	UpdatedAt time.Time
	// Meta is non-secret extra state owned by the caller, as JSON (stored compacted).
	Meta json.RawMessage
	// Secret is the plaintext credential document, opaque to the store. It is never stored as
	// is, never marshalled (json:"-"), and never printed by String, GoString or LogValue. Empty
	// means no secret and reads back as nil.
	Secret []byte `json:"-"`
}

// String describes the connection without its secret.
func (c Connection) String() string {
	return fmt.Sprintf("store.Connection{ID: %q, Connectors: %q, AuthType: %q, Status: %q, Secret: %s}",
		c.ID, c.Connectors, c.AuthType, c.Status, redacted(c.Secret))
}

// GoString describes the connection without its secret (for %#v).
func (c Connection) GoString() string { return c.String() }

// LogValue logs the connection without its secret.
func (c Connection) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", c.ID), slog.Any("connectors", c.Connectors),
		slog.String("auth_type", c.AuthType), slog.String("status", c.Status), slog.String("secret", redacted(c.Secret)))
}

func redacted(secret []byte) string {
	if len(secret) == 0 {
		return "<none>"
	}
	return "<redacted>"
}
