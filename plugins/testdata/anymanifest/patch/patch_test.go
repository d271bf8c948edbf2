package patch

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// module fakes a .wasm: some bytes, the block holding doc, more bytes.
func module(doc string) []byte {
	block := Marker + doc + strings.Repeat(" ", Size-len(Marker)-len(doc))
	return []byte("\x00asm\x01\x00\x00\x00 code " + block + " more data")
}

func TestPatch(t *testing.T) {
	orig := module(`{"name":"anymanifest"}`)
	want := `{"abi":1,"name":"other","version":"2.0.0"}`
	got, err := Patch(orig, []byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(orig) {
		t.Errorf("length changed from %d to %d", len(orig), len(got))
	}
	if m, _ := Manifest(got); string(m) != want {
		t.Errorf("Manifest = %q", m)
	}
	if m, _ := Manifest(orig); string(m) != `{"name":"anymanifest"}` {
		t.Errorf("the original was modified: %q", m)
	}
	if !bytes.HasPrefix(got, []byte("\x00asm\x01\x00\x00\x00 code ")) || !bytes.HasSuffix(got, []byte(" more data")) {
		t.Error("bytes outside the block changed")
	}
	// A shorter manifest leaves no trace of a longer one.
	again, _ := Patch(got, []byte(`{}`))
	if m, _ := Manifest(again); string(m) != `{}` {
		t.Errorf("Manifest after a shorter patch = %q", m)
	}
	full := strings.Repeat("x", MaxManifest)
	if p, err := Patch(orig, []byte(full)); err != nil || len(p) != len(orig) {
		t.Errorf("a manifest filling the block: %v", err)
	}
}

func TestPatchErrors(t *testing.T) {
	tests := []struct {
		name     string
		wasm     []byte
		manifest string
		want     error
	}{
		{"no marker", []byte("\x00asm nothing here"), "{}", ErrNoMarker},
		{"two markers", append(module("{}"), module("{}")...), "{}", ErrManyMarkers},
		{"a manifest too long", module("{}"), strings.Repeat("x", MaxManifest+1), ErrTooLong},
		{"a block cut short", module("{}")[:100], "{}", ErrTruncatedBlock},
		{"a block without padding at its end", []byte("x" + Marker + strings.Repeat("y", Size)), "{}", ErrTruncatedBlock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Patch(tt.wasm, []byte(tt.manifest)); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}
