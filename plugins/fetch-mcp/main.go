//go:build wasip1

// Command fetch-mcp is a hosted MCP server (manifest kind "mcp"): one tool, fetch, that reads a
// web page of the connection's site and returns it as readable text. It can reach only the
// origin of the connection's base_url (the manifest's hosts), so an agent given this server
// reads that site and nothing else.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fetch-mcp.wasm ./plugins/fetch-mcp
package main

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/plugboard/plugboard/plugins/fetch-mcp/readable"
	"github.com/plugboard/plugboard/plugins/internal/servlet"
)

func main() {}

const manifest = `{"abi":1,"name":"fetch-mcp","version":"1.0.0","kind":"mcp","title":"Fetch",` +
	`"description":"Reads web pages of one site (the connection's base_url) as readable text.",` +
	`"auth":{"types":["none","api_key"],"api_key":{"in":"header","name":"Authorization","prefix":"Bearer "}},` +
	`"connection_params":{"type":"object","properties":{"base_url":{"type":"string","format":"uri","description":"The site this server may read, e.g. https://docs.example.com"}},"required":["base_url"]},` +
	`"hosts":["{base_url}"],"limits":{"timeout_ms":20000}}`

const tools = `[{"name":"fetch","title":"Fetch page","description":"Fetches a page of the site and returns its readable text (scripts, styles and tags removed). url is absolute or a path on the site.",` +
	`"inputSchema":{"type":"object","properties":{"url":{"type":"string","description":"Absolute URL on the site, or a path such as /docs/intro"},` +
	`"max_length":{"type":"integer","minimum":1,"maximum":100000,"description":"Longest text returned, in characters (default 5000)"}},"required":["url"]},` +
	`"annotations":{"readOnlyHint":true,"idempotentHint":true,"destructiveHint":false}}]`

func init() { servlet.Serve(manifest, tools, call) }

func call(req *servlet.Request) servlet.Result {
	if req.Params.Name != "fetch" {
		return servlet.Errorf("unknown tool %q", req.Params.Name)
	}
	var in struct {
		URL       string `json:"url"`
		MaxLength int    `json:"max_length"`
	}
	if err := json.Unmarshal(req.Params.Arguments, &in); err != nil || in.URL == "" {
		return servlet.Errorf("invalid_input: arguments need a url")
	}
	if in.MaxLength <= 0 {
		in.MaxLength = 5000
	}
	target, err := resolve(req.Param("base_url"), in.URL)
	if err != nil {
		return servlet.Errorf("invalid_input: %v", err)
	}
	resp, err := servlet.HTTP(servlet.HTTPRequest{Method: "GET", URL: target, Headers: map[string]string{"Accept": "text/html, text/plain;q=0.9, */*;q=0.1"}})
	if err != nil {
		return servlet.Errorf("fetching %s: %v", target, err)
	}
	if resp.Status >= 400 {
		return servlet.Errorf("fetching %s: HTTP %d", target, resp.Status)
	}
	text := resp.Body
	if ct := resp.Headers["Content-Type"]; ct == "" || strings.Contains(ct, "html") {
		text = readable.Text(text)
	}
	truncated := false
	if r := []rune(text); len(r) > in.MaxLength {
		text, truncated = string(r[:in.MaxLength]), true
	}
	return servlet.Structured(map[string]any{"url": target, "status": resp.Status, "text": text, "truncated": truncated})
}

// resolve makes u absolute against base.
func resolve(base, u string) (string, error) {
	ref, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	if ref.IsAbs() {
		return ref.String(), nil
	}
	b, err := url.Parse(base)
	if err != nil || !b.IsAbs() {
		return "", err
	}
	return b.ResolveReference(ref).String(), nil
}
