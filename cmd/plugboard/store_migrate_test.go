package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// TestStoreMigrate: `plugboard store migrate` copies a bbolt namespace into JetStream with
// nothing lost (versions and blobs, the active pointer, a connection's secret, a key, a timer,
// kv, a trigger source with its cursor, events and queue, the audit log), and a second run
// copies nothing twice.
func TestStoreMigrate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a nats-server; run without -short")
	}
	ctx := context.Background()
	dir := t.TempDir()
	src, err := registry.OpenStore(ctx, registry.StoreConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	wasm := clusterPlugin(t, "1.0.0")
	digest, err := src.PutBlob(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	steps := []error{
		func() error {
			_, err := src.PutVersion(ctx, storage.Version{Name: "anymanifest", Version: "1.0.0", Digest: digest, Size: int64(len(wasm)), Manifest: json.RawMessage(clusterManifest("1.0.0"))})
			return err
		}(),
		src.SetActive(ctx, "anymanifest", "1.0.0"),
		src.CreateConnection(ctx, storage.Connection{ID: "c1", Connectors: []string{"anymanifest"}, AuthType: "api_key", Status: "ready", Secret: []byte(`{"api_key":"s3cret"}`)}),
		src.CreateAPIKey(ctx, storage.APIKey{ID: "key_a", Name: "app", Role: "invoker"}),
		src.KVSet(ctx, "anymanifest", "c1", "k", []byte(`"v"`), 0),
		func() error {
			_, err := src.SetTimer(ctx, storage.Timer{ID: "t_1", Connector: "anymanifest", Connection: "c1", Name: "later", FireAt: time.Now().Add(time.Hour), Payload: json.RawMessage(`{}`)})
			return err
		}(),
		src.CreateSource(ctx, storage.Source{ID: "src_1", Key: "k1", Kind: storage.SourcePoll, Status: storage.SourceActive,
			TriggerRef: storage.TriggerRef{Connector: "anymanifest", Trigger: "items", Connection: "c1", Params: json.RawMessage(`{}`)}, NextSeq: 1},
			nil, &storage.Subscription{ID: "sub_1", SourceID: "src_1", Status: storage.SubActive, Delivery: storage.Delivery{Type: "queue"},
				TriggerRef: storage.TriggerRef{Connector: "anymanifest", Trigger: "items", Connection: "c1", Params: json.RawMessage(`{}`)}}, []byte("whsec_x")),
		func() error {
			cur := "c7"
			_, err := src.CommitEvents(ctx, "src_1", []storage.NewEvent{{SourceEventID: "e1", Data: json.RawMessage(`{"n":1}`)}, {SourceEventID: "e2", Data: json.RawMessage(`{"n":2}`)}},
				storage.Origin{}, storage.TriggerLimits{MaxQueue: 100, MaxEvents: 100}, func(s *storage.Source) { s.Cursor = &cur })
			return err
		}(),
		src.AppendAudit(ctx, storage.AuditEntry{Actor: "key_admin", Role: "admin", Action: "POST /v1/keys", Target: "key:key_a", Outcome: "allowed", Status: 201}),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("filling the bbolt store, step %d: %v", i, err)
		}
	}
	src.Close()

	nats := startNATS(t)
	migrate := func() string {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"store", "migrate", "--from", dir, "--to", nats.url()}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut)
		if code != 0 {
			t.Fatalf("store migrate: exit %d\n%s%s", code, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	first := migrate()
	t.Logf("first run:\n%s", first)
	second := migrate()
	t.Logf("second run:\n%s", second)
	if !strings.Contains(second, "0 versions, 0 connections, 0 keys") {
		t.Errorf("the second run copied again:\n%s", second)
	}

	dst, err := registry.OpenStore(ctx, registry.StoreConfig{URL: nats.url(), MasterKeyFile: filepath.Join(dir, "master.key"), NodeName: "check"})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if act, err := dst.Active(ctx, "anymanifest"); err != nil || act != "1.0.0" {
		t.Errorf("active: %q %v", act, err)
	}
	if b, err := dst.Blob(ctx, digest); err != nil || !bytes.Equal(b, wasm) {
		t.Errorf("blob: %d bytes, %v", len(b), err)
	}
	if c, err := dst.Connection(ctx, "c1"); err != nil || string(c.Secret) != `{"api_key":"s3cret"}` {
		t.Errorf("connection: %+v %v", c, err)
	}
	if _, err := dst.APIKey(ctx, "key_a"); err != nil {
		t.Errorf("API key: %v", err)
	}
	if v, ok, err := dst.KVGet(ctx, "anymanifest", "c1", "k"); err != nil || !ok || string(v) != `"v"` {
		t.Errorf("kv: %q %v %v", v, ok, err)
	}
	if ts, err := dst.DueTimers(ctx, time.Now().Add(2*time.Hour), 10); err != nil || len(ts) != 1 || ts[0].ID != "t_1" {
		t.Errorf("timers: %+v %v", ts, err)
	}
	srcDoc, err := dst.GetSource(ctx, "src_1")
	if err != nil || srcDoc.Cursor == nil || *srcDoc.Cursor != "c7" || srcDoc.NextSeq != 3 {
		t.Errorf("source: %+v %v", srcDoc, err)
	}
	if sec, err := dst.TriggerSecret(ctx, "sub", "sub_1"); err != nil || string(sec) != "whsec_x" {
		t.Errorf("subscription secret: %q %v", sec, err)
	}
	pending, _, err := dst.LeaseEvents(ctx, "sub_1", 10, time.Minute)
	if err != nil || len(pending) != 2 || pending[0].Event.SourceEventID != "e1" || pending[1].Entry.Seq != 2 {
		t.Errorf("queue after the migration: %+v %v", pending, err)
	}
	if entries, _, err := dst.Audit(ctx, storage.AuditQuery{}); err != nil || len(entries) != 1 {
		t.Errorf("audit: %d entries (want 1, copied once), %v", len(entries), err)
	}
}
