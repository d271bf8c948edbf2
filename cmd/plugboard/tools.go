//go:build tools

// This file pins modules that later issues use (the MCP SDK) so go.mod and go.sum stay
// stable while they land; it is never built (tag tools).
package main

import (
	_ "github.com/extism/go-pdk"
	_ "github.com/extism/go-sdk"
	_ "github.com/gorilla/mux"
	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "github.com/tetratelabs/wazero"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/time/rate"
)
