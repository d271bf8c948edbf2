package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevWatchWaitsForAFinishedBuild: a .wasm that a build is still writing when the watcher
// starts (here empty, as `go build -o` leaves it between truncating and writing) is not pushed
// at start; it is pushed once it is complete. Before, the first look pushed every file at once
// and the server answered 400 invalid_wasm "does not start with \0asm".
func TestDevWatchWaitsForAFinishedBuild(t *testing.T) {
	anymanifestWasm(t)

	dir := t.TempDir()
	stamp := time.Now().Add(-time.Hour)
	partial := filepath.Join(dir, "any.wasm") // sorts first: a first look reaches it before other.wasm
	if err := os.WriteFile(partial, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writePlugin(t, filepath.Join(dir, "other.wasm"), strings.Replace(devManifest("1.0.0"), `"anymanifest"`, `"other"`, 1), stamp)

	_, out, stop := devWatch(t, dir)
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
	stop()
}
