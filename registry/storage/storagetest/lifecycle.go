package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// lifecycleCases are the promises of [storage.Store] as a whole: health, Close and cancelled
// contexts.
var lifecycleCases = []testCase{
	{"Health is nil and Corruptions 0 on an open store", func(t *testing.T, st storage.Store) {
		ok(t, st.Health(ctx(t)), "Health")
		if n := st.Corruptions(); n != 0 {
			t.Fatalf("Corruptions = %d on a new store", n)
		}
	}},
	{"every method fails with ErrClosed after Close", func(t *testing.T, st storage.Store) {
		// Something to find, so that a method that skips work on a missing record still has
		// to reach the store.
		putVersion(t, st, "github", "1.0.0", []byte("v1"))
		ok(t, st.CreateConnection(ctx(t), newConnection("c1", "github")), "CreateConnection")
		newSource(t, st, queueSub("sub_a"))
		ok(t, st.Close(), "Close")
		if err := st.Health(ctx(t)); err == nil {
			t.Fatal("Health is nil after Close")
		}
		c := ctx(t)
		now := time.Now()
		noop := func(*storage.Source) {}
		calls := map[string]func() error{
			"PutBlob": func() error { _, err := st.PutBlob(c, []byte("x")); return err },
			"Blob":    func() error { _, err := st.Blob(c, storage.Digest([]byte("v1"))); return err },
			"PutVersion": func() error {
				_, err := st.PutVersion(c, storage.Version{Name: "github", Version: "2.0.0", Digest: storage.Digest([]byte("v1"))})
				return err
			},
			"Version":          func() error { _, err := st.Version(c, "github", "1.0.0"); return err },
			"Versions":         func() error { _, err := st.Versions(c, "github"); return err },
			"Connectors":       func() error { _, err := st.Connectors(c); return err },
			"DeleteVersion":    func() error { return st.DeleteVersion(c, "github", "1.0.0") },
			"SetActive":        func() error { return st.SetActive(c, "github", "1.0.0") },
			"Active":           func() error { _, err := st.Active(c, "github"); return err },
			"ActiveAll":        func() error { _, err := st.ActiveAll(c); return err },
			"SetCanary":        func() error { return st.SetCanary(c, "github", nil) },
			"Canary":           func() error { _, err := st.Canary(c, "github"); return err },
			"CreateConnection": func() error { return st.CreateConnection(c, newConnection("c2")) },
			"Connection":       func() error { _, err := st.Connection(c, "c1"); return err },
			"Connections":      func() error { _, err := st.Connections(c); return err },
			"UpdateConnection": func() error {
				_, err := st.UpdateConnection(c, "c1", func(*storage.Connection) error { return nil })
				return err
			},
			"DeleteConnection": func() error { return st.DeleteConnection(c, "c1") },
			"PutOAuthState": func() error {
				return st.PutOAuthState(c, "h", storage.OAuthState{Connection: "c1", ExpiresAt: now.Add(time.Hour)})
			},
			"TakeOAuthState":  func() error { _, err := st.TakeOAuthState(c, "h"); return err },
			"RotateMasterKey": func() error { _, err := st.RotateMasterKey(c); return err },
			"CreateAPIKey":    func() error { return st.CreateAPIKey(c, storage.APIKey{ID: "key_a"}) },
			"APIKey":          func() error { _, err := st.APIKey(c, "key_a"); return err },
			"APIKeys":         func() error { _, err := st.APIKeys(c); return err },
			"DeleteAPIKey":    func() error { return st.DeleteAPIKey(c, "key_a") },
			"CreateMCPServer": func() error { return st.CreateMCPServer(c, storage.MCPServer{Name: "m"}) },
			"MCPServer":       func() error { _, err := st.MCPServer(c, "m"); return err },
			"MCPServers":      func() error { _, err := st.MCPServers(c); return err },
			"UpdateMCPServer": func() error {
				_, err := st.UpdateMCPServer(c, "m", func(*storage.MCPServer) error { return nil })
				return err
			},
			"DeleteMCPServer": func() error { return st.DeleteMCPServer(c, "m") },
			"TriggerSecret":   func() error { _, err := st.TriggerSecret(c, "src", "src_1"); return err },
			"FindSource":      func() error { _, _, err := st.FindSource(c, "k1"); return err },
			"GetSource":       func() error { _, err := st.GetSource(c, "src_1"); return err },
			"Sources":         func() error { _, err := st.Sources(c); return err },
			"CreateSource":    func() error { return st.CreateSource(c, storage.Source{ID: "src_2", Key: "k2"}, nil, nil, nil) },
			"AddSubscription": func() error {
				return st.AddSubscription(c, storage.Subscription{ID: "sub_b", SourceID: "src_1"}, nil, nil)
			},
			"UpdateSource":       func() error { _, err := st.UpdateSource(c, "src_1", noop); return err },
			"DeleteSource":       func() error { return st.DeleteSource(c, "src_1") },
			"SourceByHookToken":  func() error { _, err := st.SourceByHookToken(c, "tok"); return err },
			"GetSubscription":    func() error { _, _, err := st.GetSubscription(c, "sub_a"); return err },
			"Subscriptions":      func() error { _, err := st.Subscriptions(c, ""); return err },
			"DeleteSubscription": func() error { _, _, err := st.DeleteSubscription(c, "sub_a"); return err },
			"UpdateSubscription": func() error { _, err := st.UpdateSubscription(c, "sub_a", func(*storage.Subscription) {}); return err },
			"CommitEvents": func() error {
				_, err := st.CommitEvents(c, "src_1", events("e1"), storage.Origin{}, storage.TriggerLimits{}, nil)
				return err
			},
			"QueueHead":   func() error { _, _, err := st.QueueHead(c, "sub_a", 10); return err },
			"RecordPush":  func() error { return st.RecordPush(c, "sub_a", storage.PushOutcome{Seq: 1, Delivered: true}) },
			"LeaseEvents": func() error { _, _, err := st.LeaseEvents(c, "sub_a", 10, time.Minute); return err },
			"Ack":         func() error { _, err := st.Ack(c, "sub_a", []uint64{1}); return err },
			"Replay":      func() error { _, err := st.Replay(c, "sub_a", time.Time{}, 0); return err },
			"SetTimer":    func() error { _, err := st.SetTimer(c, storage.Timer{Connector: "github", FireAt: now}); return err },
			"CancelTimer": func() error { return st.CancelTimer(c, "github", "", "t_x") },
			"DueTimers":   func() error { _, err := st.DueTimers(c, now, 10); return err },
			"DeleteTimer": func() error { return st.DeleteTimer(c, "t_x") },
			"KVGet":       func() error { _, _, err := st.KVGet(c, "github", "c1", "k"); return err },
			"KVSet":       func() error { return st.KVSet(c, "github", "c1", "k", []byte("v"), 0) },
			"KVDelete":    func() error { return st.KVDelete(c, "github", "c1", "k") },
			"AppendAudit": func() error { return st.AppendAudit(c, storage.AuditEntry{Action: "x"}) },
			"Audit":       func() error { _, _, err := st.Audit(c, storage.AuditQuery{}); return err },
			"PruneAudit":  func() error { _, err := st.PruneAudit(c, time.Hour, 10); return err },
			"PutInvocations": func() error {
				return st.PutInvocations(c, []storage.Invocation{{CorrelationID: "x", Time: now, Document: json.RawMessage(`{}`)}})
			},
			"Invocations":      func() error { _, err := st.Invocations(c, "x"); return err },
			"PruneInvocations": func() error { _, err := st.PruneInvocations(c, now, 10); return err },
			"Meta":             func() error { _, err := st.Meta(c, "k"); return err },
			"SetMeta":          func() error { return st.SetMeta(c, "k", []byte("v")) },
			"TryLease":         func() error { _, err := st.TryLease(c, "l", "node-a", time.Minute); return err },
			"ReleaseLease":     func() error { return st.ReleaseLease(c, "l", "node-a") },
			"Heartbeat":        func() error { return st.Heartbeat(c, storage.Node{Name: "node-a"}, time.Minute) },
			"Nodes":            func() error { _, err := st.Nodes(c); return err },
			"Leave":            func() error { return st.Leave(c, "node-a") },
			"Watch":            func() error { return st.Watch(c, func(storage.Change) {}) },
		}
		for _, name := range slices.Sorted(maps.Keys(calls)) {
			if err := calls[name](); !errors.Is(err, storage.ErrClosed) {
				t.Errorf("%s after Close: error %v, want one wrapping %q", name, err, storage.ErrClosed)
			}
		}
	}},
	{"a cancelled context fails a call before it writes", func(t *testing.T, st storage.Store) {
		cancelled, cancel := context.WithCancel(ctx(t))
		cancel()
		if err := st.SetMeta(cancelled, "k", []byte("v")); err == nil {
			t.Fatal("SetMeta with a cancelled context succeeded")
		}
		if err := st.CreateConnection(cancelled, newConnection("c1")); err == nil {
			t.Fatal("CreateConnection with a cancelled context succeeded")
		}
		_, err := st.Connection(ctx(t), "c1")
		wantErr(t, err, storage.ErrNotFound, "the connection a cancelled create refused")
	}},
}
