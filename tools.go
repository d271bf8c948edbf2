//go:build tools

// Package tools pins dependencies that land in later steps so go.sum is complete.
package tools

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
