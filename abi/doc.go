// Package abi is the Plugboard plugin ABI, version 1, as Go: the names of the exports a plugin
// provides and of the host imports it may call, the JSON documents that cross the boundary, the
// connector manifest with its validation, and the error codes.
//
// The normative text is ABI.md; this package is its executable form. It does no I/O, so the host,
// the PDK and external tools can all share it. Every decoder here is strict: unknown fields are
// an error, so a typo in a plugin or a manifest never passes silently.
package abi
