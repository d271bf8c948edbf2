package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// keyCases are the promises of [storage.Keys].
var keyCases = []testCase{
	{"create, get, list and delete", func(t *testing.T, st storage.Store) {
		exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
		k := storage.APIKey{ID: "key_b", Name: "ci", Role: "invoker", Connectors: []string{"github"}, Connections: []string{"gh-main"},
			SecretHash: "sha256:" + fmt.Sprintf("%064x", 1), ExpiresAt: exp}
		ok(t, st.CreateAPIKey(ctx(t), k), "CreateAPIKey")
		ok(t, st.CreateAPIKey(ctx(t), storage.APIKey{ID: "key_a", Name: "admin", Role: "admin", SecretHash: "sha256:" + fmt.Sprintf("%064x", 2)}), "CreateAPIKey")
		got := must[storage.APIKey](t, "APIKey")(st.APIKey(ctx(t), "key_b"))
		if got.Name != k.Name || got.Role != k.Role || !slices.Equal(got.Connectors, k.Connectors) || !slices.Equal(got.Connections, k.Connections) ||
			got.SecretHash != k.SecretHash || !got.ExpiresAt.Equal(exp) {
			t.Fatalf("APIKey = %+v, want %+v", got, k)
		}
		if got.CreatedAt.IsZero() {
			t.Fatal("CreatedAt is zero: a zero one must become now")
		}
		if a := must[storage.APIKey](t, "APIKey")(st.APIKey(ctx(t), "key_a")); !a.ExpiresAt.IsZero() {
			t.Fatalf("a key created without ExpiresAt reads back ExpiresAt %v, want zero (never)", a.ExpiresAt)
		}
		var ids []string
		for _, k := range must[[]storage.APIKey](t, "APIKeys")(st.APIKeys(ctx(t))) {
			ids = append(ids, k.ID)
		}
		if !slices.Equal(ids, []string{"key_a", "key_b"}) {
			t.Fatalf("APIKeys = %v, want [key_a key_b] (id order)", ids)
		}
		ok(t, st.DeleteAPIKey(ctx(t), "key_b"), "DeleteAPIKey")
		_, err := st.APIKey(ctx(t), "key_b")
		wantErr(t, err, storage.ErrNotFound, "APIKey after DeleteAPIKey")
		if got := must[[]storage.APIKey](t, "APIKeys")(st.APIKeys(ctx(t))); len(got) != 1 || got[0].ID != "key_a" {
			t.Fatalf("APIKeys after delete = %+v", got)
		}
	}},
	{"a taken id is ErrExists and unknown ids are ErrNotFound", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateAPIKey(ctx(t), storage.APIKey{ID: "key_a", Role: "admin"}), "CreateAPIKey")
		wantErr(t, st.CreateAPIKey(ctx(t), storage.APIKey{ID: "key_a", Role: "reader"}), storage.ErrExists, "CreateAPIKey with a taken id")
		if got := must[storage.APIKey](t, "APIKey")(st.APIKey(ctx(t), "key_a")); got.Role != "admin" {
			t.Fatalf("the refused create replaced the key: %+v", got)
		}
		_, err := st.APIKey(ctx(t), "key_x")
		wantErr(t, err, storage.ErrNotFound, "APIKey of an unknown id")
		wantErr(t, st.DeleteAPIKey(ctx(t), "key_x"), storage.ErrNotFound, "DeleteAPIKey of an unknown id")
	}},
}

// mcpCases are the promises of [storage.MCPServers], updates atomic as connections' are.
var mcpCases = []testCase{
	{"create, get, list, update and delete", func(t *testing.T, st storage.Store) {
		m := storage.MCPServer{Name: "gh", Connector: "github", Connection: "gh-main", Tools: []string{"list_issues"}, Enabled: true, TokenHash: "sha256:" + fmt.Sprintf("%064x", 3)}
		ok(t, st.CreateMCPServer(ctx(t), m), "CreateMCPServer")
		ok(t, st.CreateMCPServer(ctx(t), storage.MCPServer{Name: "aa", Connector: "slack"}), "CreateMCPServer")
		got := must[storage.MCPServer](t, "MCPServer")(st.MCPServer(ctx(t), "gh"))
		if got.Connector != m.Connector || got.Connection != m.Connection || !slices.Equal(got.Tools, m.Tools) || !got.Enabled || got.TokenHash != m.TokenHash {
			t.Fatalf("MCPServer = %+v, want %+v", got, m)
		}
		if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
			t.Fatalf("CreatedAt %v, UpdatedAt %v: both must be set", got.CreatedAt, got.UpdatedAt)
		}
		var names []string
		for _, m := range must[[]storage.MCPServer](t, "MCPServers")(st.MCPServers(ctx(t))) {
			names = append(names, m.Name)
		}
		if !slices.Equal(names, []string{"aa", "gh"}) {
			t.Fatalf("MCPServers = %v, want [aa gh] (name order)", names)
		}
		up, err := st.UpdateMCPServer(ctx(t), "gh", func(m *storage.MCPServer) error { m.Enabled = false; m.TokenHash = "sha256:rotated"; return nil })
		ok(t, err, "UpdateMCPServer")
		if up.Enabled || up.TokenHash != "sha256:rotated" || up.UpdatedAt.Before(got.UpdatedAt) {
			t.Fatalf("UpdateMCPServer returned %+v", up)
		}
		if read := must[storage.MCPServer](t, "MCPServer")(st.MCPServer(ctx(t), "gh")); read.Enabled || read.TokenHash != "sha256:rotated" {
			t.Fatalf("MCPServer after the update = %+v", read)
		}
		ok(t, st.DeleteMCPServer(ctx(t), "gh"), "DeleteMCPServer")
		_, err = st.MCPServer(ctx(t), "gh")
		wantErr(t, err, storage.ErrNotFound, "MCPServer after DeleteMCPServer")
	}},
	{"a taken name is ErrExists and unknown names are ErrNotFound", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateMCPServer(ctx(t), storage.MCPServer{Name: "gh", Connector: "github"}), "CreateMCPServer")
		wantErr(t, st.CreateMCPServer(ctx(t), storage.MCPServer{Name: "gh", Connector: "slack"}), storage.ErrExists, "CreateMCPServer with a taken name")
		if got := must[storage.MCPServer](t, "MCPServer")(st.MCPServer(ctx(t), "gh")); got.Connector != "github" {
			t.Fatalf("the refused create replaced the server: %+v", got)
		}
		_, err := st.MCPServer(ctx(t), "x")
		wantErr(t, err, storage.ErrNotFound, "MCPServer of an unknown name")
		_, err = st.UpdateMCPServer(ctx(t), "x", func(*storage.MCPServer) error { return nil })
		wantErr(t, err, storage.ErrNotFound, "UpdateMCPServer of an unknown name")
		wantErr(t, st.DeleteMCPServer(ctx(t), "x"), storage.ErrNotFound, "DeleteMCPServer of an unknown name")
	}},
	{"an error from UpdateMCPServer's fn aborts it and is returned", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateMCPServer(ctx(t), storage.MCPServer{Name: "gh", Connector: "github", Enabled: true}), "CreateMCPServer")
		boom := errors.New("boom")
		_, err := st.UpdateMCPServer(ctx(t), "gh", func(m *storage.MCPServer) error { m.Enabled = false; return boom })
		wantErr(t, err, boom, "UpdateMCPServer whose fn fails")
		if got := must[storage.MCPServer](t, "MCPServer")(st.MCPServer(ctx(t), "gh")); !got.Enabled {
			t.Fatal("an aborted update was stored")
		}
	}},
	{"concurrent UpdateMCPServer loses no update", func(t *testing.T, st storage.Store) {
		ok(t, st.CreateMCPServer(ctx(t), storage.MCPServer{Name: "gh", Connector: "github"}), "CreateMCPServer")
		const workers, each = 8, 5
		var failed atomic.Value
		parallel(workers, func(w int) {
			for i := range each {
				tool := fmt.Sprintf("tool_%d_%d", w, i)
				_, err := st.UpdateMCPServer(ctx(t), "gh", func(m *storage.MCPServer) error {
					if !slices.Contains(m.Tools, tool) {
						m.Tools = append(m.Tools, tool)
					}
					return nil
				})
				if err != nil {
					failed.Store(err)
					return
				}
			}
		})
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("UpdateMCPServer: %v", err)
		}
		got := must[storage.MCPServer](t, "MCPServer")(st.MCPServer(ctx(t), "gh"))
		if len(got.Tools) != workers*each {
			t.Fatalf("%d tools after %d concurrent appends: updates were lost", len(got.Tools), workers*each)
		}
	}},
}
