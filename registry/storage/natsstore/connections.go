package natsstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// connectionRecord is the stored form of a Connection, the same document as bbolt's: Secret
// holds the sealed secret, with "plugboard/connection/<id>" as additional data, so a record
// copied from a bbolt file opens here.
type connectionRecord struct {
	ID         string          `json:"id"`
	Connectors []string        `json:"connectors,omitempty"`
	Params     json.RawMessage `json:"params,omitempty"`
	AuthType   string          `json:"auth_type,omitempty"`
	Hosts      []string        `json:"hosts,omitempty"`
	Status     string          `json:"status,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	Meta       json.RawMessage `json:"meta,omitempty"`
	Secret     json.RawMessage `json:"secret,omitempty"`
}

func secretAD(id string) []byte { return []byte("plugboard/connection/" + id) }

func connKey(id string) string { return "conn." + enc(id) }

func encodeConnection(sealer *storage.Sealer, c storage.Connection) ([]byte, error) {
	rec := connectionRecord{ID: c.ID, Connectors: c.Connectors, Params: c.Params, AuthType: c.AuthType,
		Hosts: c.Hosts, Status: c.Status, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(), Meta: c.Meta}
	if len(c.Secret) > 0 {
		sealed, err := sealer.SealWith(sealer.ActiveKeyID(), c.Secret, secretAD(c.ID))
		if err != nil {
			return nil, fmt.Errorf("natsstore: connection %q: sealing the secret: %w", c.ID, err)
		}
		rec.Secret = sealed
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("natsstore: connection %q: params or meta: %w: %w", c.ID, storage.ErrInvalid, err)
	}
	return data, nil
}

func (rec connectionRecord) connection(sealer *storage.Sealer) (storage.Connection, error) {
	c := storage.Connection{ID: rec.ID, Connectors: slices.Clone(rec.Connectors), Params: slices.Clone(rec.Params), AuthType: rec.AuthType,
		Hosts: slices.Clone(rec.Hosts), Status: rec.Status, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt, Meta: slices.Clone(rec.Meta)}
	if rec.Secret != nil {
		pt, err := sealer.OpenRaw(rec.Secret, secretAD(rec.ID))
		if err != nil {
			return storage.Connection{}, fmt.Errorf("natsstore: connection %q: %w", rec.ID, err)
		}
		c.Secret = pt
	}
	return c, nil
}

// CreateConnection implements [storage.Connections].
func (s *Store) CreateConnection(ctx context.Context, c storage.Connection) error {
	if err := checkID("connection id", c.ID); err != nil {
		return err
	}
	now := s.nowUTC()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = now
	}
	data, err := encodeConnection(s.sealerNow(), c)
	if err != nil {
		return err
	}
	_, err = s.update(ctx, s.state, func(t *txn) error {
		e, err := t.get(ctx, connKey(c.ID))
		if err != nil {
			return err
		}
		if e.exists {
			return fmt.Errorf("natsstore: connection %q: %w", c.ID, storage.ErrExists)
		}
		t.put(connKey(c.ID), data)
		return nil
	})
	return err
}

// Connection implements [storage.Connections], from memory (the secret opened on each read).
func (s *Store) Connection(ctx context.Context, id string) (storage.Connection, error) {
	if id == "" {
		return storage.Connection{}, fmt.Errorf("natsstore: connection %q: %w", id, storage.ErrNotFound)
	}
	v, ok, err := s.cached(ctx, s.cConns, enc(id))
	if err != nil {
		return storage.Connection{}, err
	}
	if !ok {
		return storage.Connection{}, fmt.Errorf("natsstore: connection %q: %w", id, storage.ErrNotFound)
	}
	return s.openConnection(ctx, v.(connectionRecord))
}

// openConnection opens a record's secret; a record sealed with a key this node does not hold
// is read again from JetStream once (a rotation on another node may have re-sealed it).
func (s *Store) openConnection(ctx context.Context, rec connectionRecord) (storage.Connection, error) {
	c, err := rec.connection(s.sealerNow())
	if errors.Is(err, storage.ErrUnknownKey) {
		var fresh connectionRecord
		if found, gerr := s.getJSON(ctx, s.state, connKey(rec.ID), &fresh); gerr == nil && found {
			return fresh.connection(s.sealerNow())
		}
	}
	return c, err
}

// Connections implements [storage.Connections], from memory, sorted by id.
func (s *Store) Connections(ctx context.Context) ([]storage.Connection, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []storage.Connection
	all, err := s.values(ctx, s.cConns)
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		c, err := s.openConnection(ctx, v.(connectionRecord))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// UpdateConnection implements [storage.Connections]: a read-modify-write checked by the
// record's revision (fn runs again on a conflict), which deletes the timers of the connectors
// fn unbinds in the same commit.
func (s *Store) UpdateConnection(ctx context.Context, id string, fn func(*storage.Connection) error) (storage.Connection, error) {
	var out storage.Connection
	_, err := s.update(ctx, s.state, func(t *txn) error {
		var rec connectionRecord
		found := false
		var err error
		if id != "" {
			found, err = t.getJSON(ctx, connKey(id), &rec)
		}
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("natsstore: connection %q: %w", id, storage.ErrNotFound)
		}
		sealer := s.sealerNow()
		c, err := rec.connection(sealer)
		if err != nil {
			return err
		}
		updatedAt := c.UpdatedAt
		if err := fn(&c); err != nil {
			return err
		}
		if c.ID != id {
			return fmt.Errorf("natsstore: connection %q: the update changed the id to %q: %w", id, c.ID, storage.ErrInvalid)
		}
		if c.UpdatedAt.Equal(updatedAt) {
			c.UpdatedAt = s.nowUTC()
		}
		c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
		data, err := encodeConnection(sealer, c)
		if err != nil {
			return err
		}
		t.put(connKey(id), data)
		for _, name := range rec.Connectors {
			if !slices.Contains(c.Connectors, name) {
				if err := deleteScopeTimers(ctx, t, id, name); err != nil {
					return err
				}
			}
		}
		if len(c.Secret) == 0 {
			c.Secret = nil
		}
		out = c
		return nil
	})
	if err != nil {
		return storage.Connection{}, err
	}
	return out, nil
}

// DeleteConnection implements [storage.Connections]: the connection, its kv entries and its
// timers go in one commit.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	_, err := s.update(ctx, s.state, func(t *txn) error {
		var e entry
		var err error
		if id != "" {
			e, err = t.get(ctx, connKey(id))
		}
		if err != nil {
			return err
		}
		if !e.exists {
			return fmt.Errorf("natsstore: connection %q: %w", id, storage.ErrNotFound)
		}
		t.del(connKey(id))
		for _, filter := range []string{"kvs." + enc(id) + ".>", "kv." + enc(id) + ".>"} {
			es, err := t.scan(ctx, filter)
			if err != nil {
				return err
			}
			for _, e := range es {
				t.del(e.key)
			}
		}
		scopes, err := t.scan(ctx, "tscope."+enc(id)+".>")
		if err != nil {
			return err
		}
		for _, sc := range scopes {
			var ids []string
			if err := json.Unmarshal(sc.val, &ids); err != nil {
				return s.corruptErr("timer scope "+sc.key, err)
			}
			for _, tid := range ids {
				t.del(timerKey(tid))
			}
			t.del(sc.key)
		}
		return nil
	})
	return err
}

// PutOAuthState implements [storage.Connections]; lapsed states are dropped in the same
// commit.
func (s *Store) PutOAuthState(ctx context.Context, key string, st storage.OAuthState) error {
	if err := checkID("oauth state key", key); err != nil {
		return err
	}
	if err := checkID("connection id", st.Connection); err != nil {
		return err
	}
	st.ExpiresAt = st.ExpiresAt.UTC()
	now := s.nowUTC()
	_, err := s.update(ctx, s.state, func(t *txn) error {
		all, err := t.scan(ctx, "oauth.>")
		if err != nil {
			return err
		}
		for _, e := range all {
			var old storage.OAuthState
			if json.Unmarshal(e.val, &old) != nil || !old.ExpiresAt.After(now) {
				t.del(e.key)
			}
		}
		if _, err := t.get(ctx, "oauth."+enc(key)); err != nil {
			return err
		}
		return t.putJSON("oauth."+enc(key), st)
	})
	return err
}

// TakeOAuthState implements [storage.Connections]: the delete is checked by the state's
// revision, so of several nodes taking the same state exactly one gets it.
func (s *Store) TakeOAuthState(ctx context.Context, key string) (storage.OAuthState, error) {
	var out storage.OAuthState
	now := s.nowUTC()
	_, err := s.update(ctx, s.state, func(t *txn) error {
		found := false
		var err error
		if key != "" {
			found, err = t.getJSON(ctx, "oauth."+enc(key), &out)
		}
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("natsstore: oauth state: %w", storage.ErrNotFound)
		}
		t.del("oauth." + enc(key))
		return nil
	})
	if err != nil {
		return storage.OAuthState{}, err
	}
	if !out.ExpiresAt.After(now) {
		return storage.OAuthState{}, fmt.Errorf("natsstore: oauth state lapsed at %s: %w", out.ExpiresAt.Format(time.RFC3339), storage.ErrNotFound)
	}
	return out, nil
}

// RotateMasterKey implements [storage.Connections] as bbolt does: the key file gains the new
// key first, every secret is re-sealed (each record checked by its revision), then the old
// keys leave the key file. In a cluster the other nodes must get the new key file before they
// read a re-sealed secret: copy it to every node (the rotation leaves old and new keys in it
// until the last step, so copy it after the rotation returns).
func (s *Store) RotateMasterKey(ctx context.Context) (int, error) {
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	next, kid, err := s.sealerNow().WithNewKey()
	if err != nil {
		return 0, err
	}
	if err := next.WriteKeyFile(s.keyFile); err != nil {
		return 0, err
	}
	if err := s.putKeyChecks(ctx, next); err != nil {
		return 0, err
	}
	s.sealer.Store(next)
	rotated := 0
	fail := func(err error) (int, error) {
		return rotated, fmt.Errorf("natsstore: rotating master key (the key file keeps the old keys; run the rotation again): %w", err)
	}
	conns, err := s.scan(ctx, s.state, "conn.>")
	if err != nil {
		return fail(err)
	}
	for _, e := range conns {
		n := 0
		_, err := s.update(ctx, s.state, func(t *txn) error {
			n = 0
			var rec connectionRecord
			found, err := t.getJSON(ctx, e.key, &rec)
			if err != nil || !found || rec.Secret == nil {
				return err
			}
			if k, err := storage.SealedKeyID(rec.Secret); err != nil || k == kid {
				return err
			}
			c, err := rec.connection(next)
			if err != nil {
				return err
			}
			data, err := encodeConnection(next, c)
			if err != nil {
				return err
			}
			t.put(e.key, data)
			n = 1
			return nil
		})
		if err != nil {
			return fail(err)
		}
		rotated += n
	}
	secrets, err := s.scan(ctx, s.trig, "sec.>")
	if err != nil {
		return fail(err)
	}
	for _, e := range secrets {
		n := 0
		_, err := s.update(ctx, s.trig, func(t *txn) error {
			n = 0
			cur, err := t.get(ctx, e.key)
			if err != nil || !cur.exists {
				return err
			}
			if k, err := storage.SealedKeyID(cur.val); err != nil || k == kid {
				return err
			}
			ad := secretADTrig(e.key)
			plain, err := next.Open(cur.val, ad)
			if err != nil {
				return err
			}
			sealed, err := next.Seal(plain, ad)
			if err != nil {
				return err
			}
			t.put(e.key, sealed)
			n = 1
			return nil
		})
		if err != nil {
			return fail(err)
		}
		rotated += n
	}
	final, err := next.Retain(kid)
	if err != nil {
		return rotated, err
	}
	if err := final.WriteKeyFile(s.keyFile); err != nil {
		return rotated, fmt.Errorf("natsstore: rotating master key: every secret is sealed with %q, but dropping the old keys from the key file failed: %w", kid, err)
	}
	s.sealer.Store(final)
	return rotated, nil
}

// CreateAPIKey implements [storage.Keys].
func (s *Store) CreateAPIKey(ctx context.Context, k storage.APIKey) error {
	if err := checkID("API key id", k.ID); err != nil {
		return err
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.nowUTC()
	}
	return s.createRecord(ctx, s.keys, "API key", enc(k.ID), k)
}

// APIKey implements [storage.Keys], from memory.
func (s *Store) APIKey(ctx context.Context, id string) (storage.APIKey, error) {
	v, ok, err := s.cachedID(ctx, s.cKeys, id)
	if err != nil {
		return storage.APIKey{}, err
	}
	if !ok {
		return storage.APIKey{}, fmt.Errorf("natsstore: API key %q: %w", id, storage.ErrNotFound)
	}
	k := v.(storage.APIKey)
	k.Connectors, k.Connections = slices.Clone(k.Connectors), slices.Clone(k.Connections)
	return k, nil
}

// cachedID is cached for a caller's id ("" is never stored).
func (s *Store) cachedID(ctx context.Context, c *cache, id string) (any, bool, error) {
	if id == "" {
		return nil, false, s.check(ctx)
	}
	return s.cached(ctx, c, enc(id))
}

// APIKeys implements [storage.Keys], from memory, by id.
func (s *Store) APIKeys(ctx context.Context) ([]storage.APIKey, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []storage.APIKey
	all, err := s.values(ctx, s.cKeys)
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		k := v.(storage.APIKey)
		k.Connectors, k.Connections = slices.Clone(k.Connectors), slices.Clone(k.Connections)
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteAPIKey implements [storage.Keys].
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	return s.deleteRecord(ctx, s.keys, "API key", id)
}

// CreateMCPServer implements [storage.MCPServers].
func (s *Store) CreateMCPServer(ctx context.Context, m storage.MCPServer) error {
	if err := checkID("MCP server name", m.Name); err != nil {
		return err
	}
	now := s.nowUTC()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	m.UpdatedAt = now
	return s.createRecord(ctx, s.mcp, "MCP server", enc(m.Name), m)
}

// MCPServer implements [storage.MCPServers], from memory.
func (s *Store) MCPServer(ctx context.Context, name string) (storage.MCPServer, error) {
	v, ok, err := s.cachedID(ctx, s.cMCP, name)
	if err != nil {
		return storage.MCPServer{}, err
	}
	if !ok {
		return storage.MCPServer{}, fmt.Errorf("natsstore: MCP server %q: %w", name, storage.ErrNotFound)
	}
	m := v.(storage.MCPServer)
	m.Tools = slices.Clone(m.Tools)
	return m, nil
}

// MCPServers implements [storage.MCPServers], from memory, by name.
func (s *Store) MCPServers(ctx context.Context) ([]storage.MCPServer, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []storage.MCPServer
	all, err := s.values(ctx, s.cMCP)
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		m := v.(storage.MCPServer)
		m.Tools = slices.Clone(m.Tools)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// UpdateMCPServer implements [storage.MCPServers]: checked by the record's revision.
func (s *Store) UpdateMCPServer(ctx context.Context, name string, fn func(*storage.MCPServer) error) (storage.MCPServer, error) {
	var m storage.MCPServer
	_, err := s.update(ctx, s.mcp, func(t *txn) error {
		m = storage.MCPServer{}
		found := false
		var err error
		if name != "" {
			found, err = t.getJSON(ctx, enc(name), &m)
		}
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("natsstore: MCP server %q: %w", name, storage.ErrNotFound)
		}
		if err := fn(&m); err != nil {
			return err
		}
		m.Name = name
		m.UpdatedAt = s.nowUTC()
		return t.putJSON(enc(name), m)
	})
	if err != nil {
		return storage.MCPServer{}, err
	}
	return m, nil
}

// DeleteMCPServer implements [storage.MCPServers].
func (s *Store) DeleteMCPServer(ctx context.Context, name string) error {
	return s.deleteRecord(ctx, s.mcp, "MCP server", name)
}

// createRecord stores v under key unless the key exists ([storage.ErrExists]).
func (s *Store) createRecord(ctx context.Context, b *bucket, what, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.update(ctx, b, func(t *txn) error {
		e, err := t.get(ctx, key)
		if err != nil {
			return err
		}
		if e.exists {
			return fmt.Errorf("natsstore: %s %q: %w", what, dec(key), storage.ErrExists)
		}
		t.put(key, data)
		return nil
	})
	return err
}

// deleteRecord deletes the record of id ([storage.ErrNotFound] when there is none).
func (s *Store) deleteRecord(ctx context.Context, b *bucket, what, id string) error {
	_, err := s.update(ctx, b, func(t *txn) error {
		var e entry
		var err error
		if id != "" {
			e, err = t.get(ctx, enc(id))
		}
		if err != nil {
			return err
		}
		if !e.exists {
			return fmt.Errorf("natsstore: %s %q: %w", what, id, storage.ErrNotFound)
		}
		t.del(enc(id))
		return nil
	})
	return err
}

// Meta implements [storage.Meta].
func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	var e entry
	var err error
	if key != "" {
		e, err = s.get(ctx, s.state, "meta."+enc(key))
	} else {
		err = s.check(ctx)
	}
	if err != nil {
		return nil, err
	}
	if !e.exists {
		return nil, fmt.Errorf("natsstore: meta %q: %w", key, storage.ErrNotFound)
	}
	return append([]byte{}, e.val...), nil
}

// SetMeta implements [storage.Meta].
func (s *Store) SetMeta(ctx context.Context, key string, v []byte) error {
	if err := checkID("meta key", key); err != nil {
		return err
	}
	_, err := s.update(ctx, s.state, func(t *txn) error {
		old, err := t.get(ctx, "meta."+enc(key))
		if err != nil {
			return err
		}
		if old.exists && bytes.Equal(old.val, v) {
			return nil
		}
		t.put("meta."+enc(key), append([]byte{}, v...))
		return nil
	})
	return err
}

// secretADTrig is the additional data of a trigger secret stored under key "sec.<kind>.<id>":
// "<kind>:<id>", as bbolt seals it.
func secretADTrig(key string) []byte {
	kind, id, _ := strings.Cut(strings.TrimPrefix(key, "sec."), ".")
	return []byte(kind + ":" + dec(id))
}
