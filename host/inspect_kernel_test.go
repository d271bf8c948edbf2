package host

import (
	"errors"
	"strings"
	"testing"
)

// importModule is a minimal Wasm module with one function import of type params -> results
// (each a byte: 0x7e i64, 0x7f i32) and nothing else.
func importModule(module, name string, params, results []byte) []byte {
	vec := func(b []byte) []byte { return append([]byte{byte(len(b))}, b...) }
	str := func(s string) []byte { return vec([]byte(s)) }
	section := func(id byte, body []byte) []byte { return append([]byte{id, byte(len(body))}, body...) }
	typ := append([]byte{1, 0x60}, vec(params)...)
	typ = append(typ, vec(results)...)
	imp := append([]byte{1}, str(module)...)
	imp = append(imp, str(name)...)
	imp = append(imp, 0x00, 0x00) // function of type 0
	m := append([]byte{}, wasmMagic...)
	m = append(m, section(1, typ)...)
	return append(m, section(2, imp)...)
}

// TestUploadRefusesUnknownKernelImports: an import of extism:host/env that the host's kernel
// does not serve, or serves with another signature, is refused at upload with
// import_not_allowed and a message naming it, rather than failing later at instantiation.
func TestUploadRefusesUnknownKernelImports(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())
	for _, c := range []struct {
		name            string
		fn              string
		params, results []byte
		want            string
	}{
		{"unknown function", "input_set_all", []byte{0x7e}, nil, "is not an Extism kernel function"},
		{"wrong signature", "alloc", []byte{0x7f}, []byte{0x7f}, "has the signature (i32) -> (i32), but the Extism kernel's is (i64) -> (i64)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.Inspect(t.Context(), importModule("extism:host/env", c.fn, c.params, c.results))
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Code != CheckImportNotAllowed || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Inspect = %v, want %s containing %q", err, CheckImportNotAllowed, c.want)
			}
		})
	}
	// The same module importing a kernel function the host serves passes the import check
	// (and then fails for the missing plugboard_describe).
	_, err = h.Inspect(t.Context(), importModule("extism:host/env", "alloc", []byte{0x7e}, []byte{0x7e}))
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Code != CheckMissingExport {
		t.Fatalf("Inspect of a valid kernel import = %v, want %s", err, CheckMissingExport)
	}
}
