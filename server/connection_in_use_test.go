package server

import "testing"

// TestDeleteConnectionInUse: API.md makes deleting a connection a 409 while an MCP server uses
// it; once the server is gone the delete succeeds.
func TestDeleteConnectionInUse(t *testing.T) {
	ts, _, _ := mcpGitHub(t)
	r := ts.do("DELETE", "/v1/connections/gh-main", nil)
	if r.Status != 409 || r.code(t) != "connection_in_use" {
		t.Fatalf("delete while in use: %d %s", r.Status, r.Body)
	}
	ts.must(200, ts.do("GET", "/v1/connections/gh-main", nil))
	ts.must(204, ts.do("DELETE", "/v1/mcp-servers/github-tools", nil))
	ts.must(204, ts.do("DELETE", "/v1/connections/gh-main", nil))
	ts.must(404, ts.do("GET", "/v1/connections/gh-main", nil))
}
