package abi

import "embed"

// Source holds the Go source files of this package and of package check, which the Go PDK
// needs. `plugboard connector init --lang go` copies them (without the _test.go files and
// without this file) into the new connector's folder; see pdk.Source.
//
//go:embed *.go check/*.go
var Source embed.FS
