package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
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
	waitOutput(t, out, `other\.wasm: .* → other 1\.0\.0 active`)
	if strings.Contains(out.String(), "any.wasm") {
		t.Fatalf("the unfinished any.wasm was pushed:\n%s", out.String())
	}
	writePlugin(t, partial, devManifest("1.0.0"), stamp) // the build finishes
	waitOutput(t, out, `any\.wasm: .* → anymanifest 1\.0\.0 active`)
	if strings.Contains(out.String(), "invalid_wasm") {
		t.Errorf("a push was refused:\n%s", out.String())
	}
	stop()
}

// TestDevWatchWaitsForACutShortBuild: a build that stops writing half-way for longer than two
// looks (a copy paused on a loaded machine) is not pushed: the bytes read end inside a
// section, the watcher says it waits, and it pushes the file once the build finishes it.
func TestDevWatchWaitsForACutShortBuild(t *testing.T) {
	whole, err := patch.Patch(anymanifestWasm(t), []byte(devManifest("1.0.0")))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "any.wasm")
	_, out, stop := devWatch(t, dir)
	waitOutput(t, out, `Watching `)

	f, err := os.Create(plugin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(whole[:len(whole)/2]); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, `any\.wasm is not a whole WebAssembly module yet \(\d+\.\d MiB\); waiting for the build to finish writing it`)
	if strings.Contains(out.String(), "uploading") {
		t.Fatalf("the half-written any.wasm was pushed:\n%s", out.String())
	}
	if _, err := f.Write(whole[len(whole)/2:]); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, `any\.wasm: .* → anymanifest 1\.0\.0 active`)
	if strings.Contains(out.String(), "invalid_wasm") {
		t.Errorf("a push was refused:\n%s", out.String())
	}
	stop()
}

// TestWasmComplete: a module is whole when its sections add up to its end.
func TestWasmComplete(t *testing.T) {
	module := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type section: one func type
		"\x00\x85\x01" + "\x04name" + strings.Repeat("x", 128)) // a custom section of 133 bytes (2-byte LEB size)
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"a whole module", module, true},
		{"the header alone", module[:8], true},
		{"cut inside the header", module[:5], false},
		{"cut after a section id", module[:15], false},
		{"cut inside a size", module[:16], false},
		{"cut inside a section", module[:len(module)-1], false},
		{"bytes past the last section", append(bytes.Clone(module), 0x01), false},
		{"not WebAssembly: the server says why", []byte("#!/bin/sh\necho hi"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wasmComplete(tt.b); got != tt.want {
				t.Errorf("wasmComplete = %v, want %v", got, tt.want)
			}
		})
	}
	if !wasmComplete(anymanifestWasm(t)) {
		t.Error("a Go plugin built by the toolchain is not whole")
	}
}
