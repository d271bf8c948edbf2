// Package servlet is the small runtime of Plugboard's hosted MCP servers (plugins of manifest
// kind "mcp" that export describe and call, the Extism servlet convention of hyper-mcp and
// mcp.run). It builds only for wasip1; see servlet.go.
package servlet
