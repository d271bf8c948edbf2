//go:build wasip1

// Command github-mcp is a hosted MCP server (manifest kind "mcp") with GitHub tools: get_repo
// and list_issues. The connection's API key is injected by the host as a Bearer token; the
// plugin never sees it. It reaches only the connection's base_url (api.github.com by default,
// or a GitHub Enterprise Server API root).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o github-mcp.wasm ./plugins/github-mcp
package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/plugboard/plugboard/plugins/internal/servlet"
)

func main() {}

const manifest = `{"abi":1,"name":"github-mcp","version":"1.0.0","kind":"mcp","title":"GitHub tools",` +
	`"description":"Read repositories and issues on GitHub, as MCP tools.",` +
	`"auth":{"types":["api_key"],"api_key":{"in":"header","name":"Authorization","prefix":"Bearer "}},` +
	`"connection_params":{"type":"object","properties":{"base_url":{"type":"string","format":"uri","default":"https://api.github.com"}}},` +
	`"hosts":["{base_url}"]}`

const repoProps = `"owner":{"type":"string","pattern":"^[A-Za-z0-9][A-Za-z0-9-]*$","description":"Account that owns the repository"},` +
	`"repo":{"type":"string","pattern":"^[A-Za-z0-9_.-]+$","description":"Repository name"}`

const tools = `[` +
	`{"name":"get_repo","title":"Get repository","description":"A repository's description, default branch, stars, forks and open issue count.",` +
	`"inputSchema":{"type":"object","properties":{` + repoProps + `},"required":["owner","repo"]},` +
	`"annotations":{"readOnlyHint":true,"idempotentHint":true,"destructiveHint":false}},` +
	`{"name":"list_issues","title":"List issues","description":"A repository's open issues, newest first (first page).",` +
	`"inputSchema":{"type":"object","properties":{` + repoProps + `,"limit":{"type":"integer","minimum":1,"maximum":100}},"required":["owner","repo"]},` +
	`"annotations":{"readOnlyHint":true,"idempotentHint":true,"destructiveHint":false}}]`

func init() { servlet.Serve(manifest, tools, call) }

func call(req *servlet.Request) servlet.Result {
	var in struct {
		Owner string `json:"owner"`
		Repo  string `json:"repo"`
		Limit int    `json:"limit"`
	}
	if err := json.Unmarshal(req.Params.Arguments, &in); err != nil || in.Owner == "" || in.Repo == "" {
		return servlet.Errorf("invalid_input: owner and repo are required")
	}
	base := strings.TrimRight(req.Param("base_url"), "/")
	if base == "" {
		base = "https://api.github.com"
	}
	repoPath := "/repos/" + url.PathEscape(in.Owner) + "/" + url.PathEscape(in.Repo)
	switch req.Params.Name {
	case "get_repo":
		var repo struct {
			FullName      string `json:"full_name"`
			Description   string `json:"description"`
			DefaultBranch string `json:"default_branch"`
			Stars         int    `json:"stargazers_count"`
			Forks         int    `json:"forks_count"`
			OpenIssues    int    `json:"open_issues_count"`
			HTMLURL       string `json:"html_url"`
		}
		if r := get(base+repoPath, &repo); r != nil {
			return *r
		}
		return servlet.Structured(map[string]any{"full_name": repo.FullName, "description": repo.Description, "default_branch": repo.DefaultBranch,
			"stars": repo.Stars, "forks": repo.Forks, "open_issues": repo.OpenIssues, "html_url": repo.HTMLURL})
	case "list_issues":
		if in.Limit <= 0 {
			in.Limit = 30
		}
		var issues []struct {
			Number int    `json:"number"`
			Title  string `json:"title"`
			State  string `json:"state"`
		}
		if r := get(fmt.Sprintf("%s%s/issues?state=open&per_page=%d", base, repoPath, in.Limit), &issues); r != nil {
			return *r
		}
		return servlet.Structured(map[string]any{"issues": issues})
	}
	return servlet.Errorf("unknown tool %q", req.Params.Name)
}

// get fetches a GitHub API URL into v; a failure is the error result to answer.
func get(u string, v any) *servlet.Result {
	resp, err := servlet.HTTP(servlet.HTTPRequest{Method: "GET", URL: u, Headers: map[string]string{
		"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "plugboard-github-mcp/1.0.0"}})
	if err != nil {
		r := servlet.Errorf("unavailable: %v", err)
		return &r
	}
	if resp.Status >= 400 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal([]byte(resp.Body), &e)
		r := servlet.Errorf("GitHub answered %d: %s", resp.Status, e.Message)
		return &r
	}
	if err := json.Unmarshal([]byte(resp.Body), v); err != nil {
		r := servlet.Errorf("upstream_error: GitHub's answer does not decode: %v", err)
		return &r
	}
	return nil
}
