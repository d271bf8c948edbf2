//go:build wasip1

// Command mcpspy is a test plugin: a hosted MCP server (manifest kind "mcp") with an OAuth2
// connection and one tool, me, that GETs {base_url}/me with the connection's credential. The
// server tests use it to check that servlet calls take the same guest-call path as actions
// (binding, consent state, statistics).
package main

import "github.com/plugboard/plugboard/plugins/internal/servlet"

func main() {}

const manifest = `{"abi":1,"name":"mcpspy","version":"1.0.0","kind":"mcp","title":"MCP spy",` +
	`"description":"Test servlet: one tool that calls the connection's API with its credential.",` +
	`"auth":{"types":["none","oauth2"],"oauth2":{"authorization_url":"https://auth.spy.invalid/authorize","token_url":"https://auth.spy.invalid/token","scopes":["spy.read"]}},` +
	`"connection_params":{"type":"object","properties":{"base_url":{"type":"string","format":"uri"}},"required":["base_url"]},` +
	`"hosts":["{base_url}"]}`

const tools = `[{"name":"me","description":"GET {base_url}/me with the connection's credential.","inputSchema":{"type":"object"}}]`

func init() { servlet.Serve(manifest, tools, call) }

func call(req *servlet.Request) servlet.Result {
	resp, err := servlet.HTTP(servlet.HTTPRequest{Method: "GET", URL: req.Param("base_url") + "/me"})
	if err != nil {
		return servlet.Errorf("fetching /me: %v", err)
	}
	return servlet.Structured(map[string]any{"status": resp.Status, "body": resp.Body})
}
