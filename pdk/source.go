package pdk

import "embed"

// Source holds the Go source files of this package and of package pdktest. `plugboard
// connector init --lang go` copies them (without the _test.go files and without this file)
// into the new connector's folder, so a connector builds outside this repository, where the
// module github.com/plugboard/plugboard is not published. Nothing in a plugin refers to it,
// so the linker leaves it out of every .wasm.
//
//go:embed *.go pdktest/*.go
var Source embed.FS
