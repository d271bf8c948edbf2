//go:build wasip1

// Command badimport is a test plugin that imports a function outside the allowed modules,
// AssemblyScript's env.abort, so the upload check import_not_allowed can be tested. Otherwise
// it is a valid connector.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o badimport.wasm ./plugins/testdata/badimport
package main

import (
	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

func main() {}

// abort is AssemblyScript's default abort handler, which Plugboard refuses.
//
//go:wasmimport env abort
func abort(message, file, line, column int32)

func init() {
	pdk.Connector(pdk.Info{
		Name:    "badimport",
		Version: "1.0.0",
		Auth:    abi.Auth{Types: []string{abi.AuthNone}},
	})
	pdk.Action("abort", func(ctx *pdk.Context, _ struct{}) (struct{}, error) {
		abort(0, 0, 0, 0) // referenced, so the linker keeps the import
		return struct{}{}, nil
	})
}
