package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/server"
)

// TestActivateCanary drives a canary from the CLI against a real server: start it, watch it
// with `connector get`, promote it.
func TestActivateCanary(t *testing.T) {
	anymanifestWasm(t)
	srv, err := server.New(context.Background(), &server.Options{DataDir: t.TempDir(), AdminToken: "pba_canary",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close(context.Background()) }()
	e := env{"PLUGBOARD_URL": hs.URL, "PLUGBOARD_TOKEN": "pba_canary"}
	dir := t.TempDir()
	for _, v := range []string{"1.0.0", "2.0.0"} {
		path := filepath.Join(dir, v+".wasm")
		writePlugin(t, path, devManifest(v), time.Now())
		plugboard(t, e, "", "connector", "push", path).ok(t)
	}

	plugboard(t, e, "", "connector", "activate", "anymanifest", "1.0.0", "--canary", "2.0.0", "--percent", "50").
		want(t, exitOK, []string{"anymanifest 1.0.0 is active; canary 2.0.0 takes 50% of the calls.\n"}, nil)
	for i := 0; i < 4; i++ {
		callEcho(t, hs.URL, "pba_canary")
	}
	r := plugboard(t, e, "", "connector", "get", "anymanifest").ok(t)
	for _, want := range []string{"Canary:          2.0.0 at 50%", "active side:   1.0.0: 2 calls, 0 errors (0.0%)", "canary side:   2.0.0: 2 calls, 0 errors (0.0%)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("connector get lacks %q:\n%s", want, r.stdout)
		}
	}
	plugboard(t, e, "", "connector", "activate", "anymanifest", "2.0.0").ok(t)
	if r := plugboard(t, e, "", "connector", "get", "anymanifest").ok(t); !strings.Contains(r.stdout, "Last canary:     2.0.0 promoted") || strings.Contains(r.stdout, "Canary:") {
		t.Errorf("after the promotion:\n%s", r.stdout)
	}
	if v := callEcho(t, hs.URL, "pba_canary"); v != "2.0.0" {
		t.Errorf("after the promotion a call ran on %s", v)
	}
}
