package registry

import (
	"context"
	"errors"
	"time"

	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
)

// State adapts the store to [host.State] for the plugboard_kv and plugboard_timer imports.
type State struct{ St storage.Store }

var _ host.State = State{}

func mapStateErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrTooLarge):
		return host.ErrTooLarge
	case errors.Is(err, storage.ErrTooMany):
		return host.ErrTooMany
	case errors.Is(err, storage.ErrNotFound):
		return host.ErrNotFound
	}
	return err
}

// KVGet implements [host.State].
func (s State) KVGet(ctx context.Context, connector, connection, key string) ([]byte, bool, error) {
	v, ok, err := s.St.KVGet(ctx, connector, connection, key)
	return v, ok, mapStateErr(err)
}

// KVSet implements [host.State].
func (s State) KVSet(ctx context.Context, connector, connection, key string, value []byte, ttl time.Duration) error {
	return mapStateErr(s.St.KVSet(ctx, connector, connection, key, value, ttl))
}

// KVDelete implements [host.State].
func (s State) KVDelete(ctx context.Context, connector, connection, key string) error {
	return mapStateErr(s.St.KVDelete(ctx, connector, connection, key))
}

// SetTimer implements [host.State].
func (s State) SetTimer(ctx context.Context, t host.Timer) (string, error) {
	id, err := s.St.SetTimer(ctx, storage.Timer{Connector: t.Connector, Connection: t.Connection, Name: t.Name, FireAt: t.FireAt, Payload: t.Payload})
	return id, mapStateErr(err)
}

// CancelTimer implements [host.State].
func (s State) CancelTimer(ctx context.Context, connector, connection, id string) error {
	return mapStateErr(s.St.CancelTimer(ctx, connector, connection, id))
}
