// Package patch rewrites the manifest block of the anymanifest test plugin in a built .wasm, so
// a test gets a plugin describing any manifest without building one. It does no Wasm parsing:
// the block is found by its marker and overwritten in place, keeping the module's length.
package patch

import (
	"bytes"
	"errors"
	"fmt"
)

// Marker starts the manifest block; it occurs exactly once in anymanifest.wasm.
const Marker = "PLUGBOARD-MANIFEST:"

// Size is the length of the whole block, marker included.
const Size = 16384

// MaxManifest is the longest manifest document a block holds.
const MaxManifest = Size - len(Marker)

// Errors Patch wraps.
var (
	ErrNoMarker       = errors.New("patch: the manifest marker is not in the module")
	ErrManyMarkers    = errors.New("patch: the manifest marker occurs more than once")
	ErrTooLong        = errors.New("patch: the manifest does not fit the block")
	ErrTruncatedBlock = errors.New("patch: the module ends inside the manifest block")
)

// Patch returns a copy of wasm whose manifest block holds manifest (any bytes, normally a JSON
// document; it may not end in a space, which the plugin trims) padded with spaces. It checks
// the marker occurs exactly once and the block lies within the module, ending in padding.
func Patch(wasm, manifest []byte) ([]byte, error) {
	at := bytes.Index(wasm, []byte(Marker))
	switch {
	case at < 0:
		return nil, ErrNoMarker
	case bytes.Contains(wasm[at+1:], []byte(Marker)):
		return nil, ErrManyMarkers
	case len(manifest) > MaxManifest:
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLong, len(manifest), MaxManifest)
	case at+Size > len(wasm):
		return nil, ErrTruncatedBlock
	case wasm[at+Size-1] != ' ':
		return nil, fmt.Errorf("%w: the block does not end in padding", ErrTruncatedBlock)
	}
	out := bytes.Clone(wasm)
	block := out[at+len(Marker) : at+Size]
	n := copy(block, manifest)
	for i := n; i < len(block); i++ {
		block[i] = ' '
	}
	return out, nil
}

// Manifest returns the document currently in wasm's manifest block, padding trimmed.
func Manifest(wasm []byte) ([]byte, error) {
	at := bytes.Index(wasm, []byte(Marker))
	if at < 0 {
		return nil, ErrNoMarker
	}
	if at+Size > len(wasm) {
		return nil, ErrTruncatedBlock
	}
	return bytes.TrimRight(wasm[at+len(Marker):at+Size], " "), nil
}
