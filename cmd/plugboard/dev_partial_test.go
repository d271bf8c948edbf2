package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/server"
)

// TestDevWatchWaitsForAFinishedBuild: a .wasm that a build is still writing when the watcher
// starts (here empty, as `go build -o` leaves it between truncating and writing) is not pushed
// at start; it is pushed once it is complete. Before, the first look pushed every file at once
// and the server answered 400 invalid_wasm "does not start with \0asm".
func TestDevWatchWaitsForAFinishedBuild(t *testing.T) {
	anymanifestWasm(t)
	srv, err := server.New(context.Background(), &server.Options{DataDir: t.TempDir(), AdminToken: "pba_dev",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close(context.Background()) }()

	dir := t.TempDir()
	stamp := time.Now().Add(-time.Hour)
	partial := filepath.Join(dir, "any.wasm") // sorts first: a first look reaches it before other.wasm
	if err := os.WriteFile(partial, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writePlugin(t, filepath.Join(dir, "other.wasm"), strings.Replace(devManifest("1.0.0"), `"anymanifest"`, `"other"`, 1), stamp)

	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	exited := make(chan int)
	go func() {
		exited <- run(ctx, []string{"dev", "--watch", dir, "--interval", "20ms"},
			func(k string) string {
				return map[string]string{"PLUGBOARD_URL": hs.URL, "PLUGBOARD_TOKEN": "pba_dev"}[k]
			},
			strings.NewReader(""), out, out)
	}()
	// other.wasm is pushed by the same looks that saw any.wasm empty.
	waitOutput(t, out, `other\.wasm: other 1\.0\.0 active`)
	if strings.Contains(out.String(), "any.wasm") {
		t.Fatalf("the unfinished any.wasm was pushed:\n%s", out.String())
	}
	writePlugin(t, partial, devManifest("1.0.0"), stamp) // the build finishes
	waitOutput(t, out, `any\.wasm: anymanifest 1\.0\.0 active`)
	if strings.Contains(out.String(), "invalid_wasm") {
		t.Errorf("a push was refused:\n%s", out.String())
	}
	cancel()
	if code := <-exited; code != exitOK {
		t.Errorf("dev exited %d:\n%s", code, out.String())
	}
}
