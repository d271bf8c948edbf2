package registry

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/registry/storage/boltstore"
)

// deafNode is the store as a node sees it whose watch never reports and whose heartbeats
// never arrive: the other nodes do not wait for it, and it learns nothing by itself. It is
// the worst case of a node that lags (a slow watch, or a rollout whose wait for every node
// timed out).
type deafNode struct{ storage.Store }

func (deafNode) Watch(context.Context, func(storage.Change)) error { return nil }
func (deafNode) Heartbeat(context.Context, storage.Node, time.Duration) error {
	return nil
}

// TestLaggingNodeServesWhatAnotherUploaded: a connector uploaded and activated on one node is
// usable on another at once, even when that node's watch has not reported it: creating a
// connection, an MCP server and a call look the connector up in the store before answering
// connector_not_found. A connector the store does not have is still connector_not_found.
func TestLaggingNodeServesWhatAnotherUploaded(t *testing.T) {
	wasm := spyWasm(t)
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "plugboard.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	newNode := func(name string, s storage.Store) *Registry {
		h, err := host.New(host.Config{State: State{St: s}})
		if err != nil {
			t.Fatal(err)
		}
		r := New(s, h, nil)
		if err := r.Join(t.Context(), NodeInfo{Name: name}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(context.Background()); h.Close(context.Background()) })
		return r
	}
	n1, n2 := newNode("n1", st), newNode("n2", deafNode{st})
	ctx := t.Context()

	if _, err := n2.CreateConnection(ctx, ConnectionSpec{ID: "early", Connectors: []string{"spy"},
		Auth: Auth{Type: "api_key", Credentials: Credentials{APIKey: "k"}}}); !errors.Is(err, ErrConnectorNotFound) {
		t.Fatalf("connection naming a connector no node has: %v, want ErrConnectorNotFound", err)
	}
	if _, err := n1.Upload(ctx, wasm, true); err != nil {
		t.Fatal(err)
	}
	if rt := n2.route("spy"); rt != nil {
		t.Fatalf("n2 serves %s before anything asked: the test no longer provokes the lag", rt)
	}
	if _, err := n2.CreateConnection(ctx, ConnectionSpec{ID: "s", Connectors: []string{"spy"},
		Auth: Auth{Type: "api_key", Credentials: Credentials{APIKey: "k"}}, Params: map[string]any{"base_url": "http://127.0.0.1:1"}}); err != nil {
		t.Fatalf("connection on the lagging node: %v", err)
	}
	if rt := n2.route("spy"); rt == nil || rt.active.Info.Version == "" {
		t.Fatalf("n2 route after the lookup: %v", rt)
	}

	// A call and an MCP server on a third lagging node, which has not served spy either.
	n3 := newNode("n3", deafNode{st})
	if _, _, err := n3.CreateMCPServer(ctx, MCPServerSpec{Name: "mm", Connector: "spy", Connection: "s"}); err != nil {
		t.Fatalf("MCP server on a lagging node: %v", err)
	}
	n4 := newNode("n4", deafNode{st})
	p, err := n4.Prepare(ctx, CallSpec{Connector: "spy", Connection: "s", Action: "whoami"})
	if err != nil {
		t.Fatalf("call on a lagging node: %v", err)
	}
	p.Release()
	if _, err := n4.Prepare(ctx, CallSpec{Connector: "nope", Connection: "s", Action: "whoami"}); !errors.Is(err, ErrConnectorNotFound) {
		t.Fatalf("call of a connector the store does not have: %v, want ErrConnectorNotFound", err)
	}
}

// spyWasm builds plugins/testdata/spy from source.
func spyWasm(t *testing.T) []byte {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "spy.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./plugins/testdata/spy")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the spy plugin: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
