package plugboard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// TestMCPInvocationAuditCalls checks the requests of the MCP server, invocation log and audit
// calls against a scripted fake, and how their answers decode.
func TestMCPInvocationAuditCalls(t *testing.T) {
	s := plugboardtest.New(t)
	type seen struct{ method, path, query, body string }
	var got []seen
	s.Intercept = func(w http.ResponseWriter, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, string(b)})
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/mcp-servers/tools":
			io.WriteString(w, `{"name":"tools","url":"/mcp/tools","connector":"http","tools":["request"],"all_tools":false,"enabled":false,"created_at":"2026-12-03T10:00:00Z","updated_at":"2026-12-03T10:00:00Z"}`)
		case "/v1/invocations/c_1":
			io.WriteString(w, `{"correlation_id":"c_1","connector":"http","version":"1.0.0","action":"request","connection":"crm","started_at":"2026-12-03T10:00:00Z","duration_ms":12.5,"outcome":"ok",`+
				`"outbound":[{"method":"POST","origin":"http://127.0.0.1:1","status":201,"duration_ms":3,"bytes_in":10,"bytes_out":20,"retries":0}],"logs":[{"level":"info","message":"hi"}],"guest_ms":1}`)
		case "/v1/audit":
			if r.URL.Query().Get("cursor") == "" {
				io.WriteString(w, `{"entries":[{"actor":"key_1","action":"invoke"},{"actor":"key_1","action":"invoke"}],"next":"p2"}`)
			} else {
				io.WriteString(w, `{"entries":[{"actor":"key_1","action":"key.create"}],"next":null}`)
			}
		}
		return true
	}
	c := plugboard.New(s.URL, plugboardtest.Token)
	ctx := t.Context()

	if m, err := c.GetMCPServer(ctx, "tools"); err != nil || m.Connector != "http" || m.Tools[0] != "request" {
		t.Errorf("GetMCPServer = %+v, %v", m, err)
	}
	off := false
	if _, err := c.UpdateMCPServer(ctx, "tools", plugboard.MCPServerPatch{Enabled: &off, Tools: []string{"request"}}); err != nil {
		t.Error(err)
	}
	if _, err := c.UpdateMCPServer(ctx, "tools", plugboard.MCPServerPatch{AllTools: true}); err != nil {
		t.Error(err)
	}
	if _, err := c.UpdateMCPServer(ctx, "tools", plugboard.MCPServerPatch{AllTools: true, Tools: []string{}}); err == nil {
		t.Error("Tools and AllTools together were sent")
	}
	inv, err := c.GetInvocation(ctx, "c_1")
	if err != nil || inv.Outcome != "ok" || inv.Connection != "crm" || len(inv.Outbound) != 1 || inv.Outbound[0].Status != 201 || inv.Logs[0].Message != "hi" {
		t.Errorf("GetInvocation = %+v, %v", inv, err)
	}
	var raw map[string]any
	if json.Unmarshal(inv.Raw, &raw); raw["guest_ms"] != 1.0 {
		t.Errorf("Raw = %s", inv.Raw)
	}
	var actions []string
	for e, err := range c.AuditEntries(ctx, plugboard.AuditQuery{Actor: "key_1", Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		actions = append(actions, e.Action)
	}
	if len(actions) != 3 || actions[2] != "key.create" {
		t.Errorf("audit entries %v, want both pages", actions)
	}

	want := []seen{
		{"GET", "/v1/mcp-servers/tools", "", ""},
		{"PATCH", "/v1/mcp-servers/tools", "", `{"enabled":false,"tools":["request"]}`},
		{"PATCH", "/v1/mcp-servers/tools", "", `{"tools":null}`},
		{"GET", "/v1/invocations/c_1", "", ""},
		{"GET", "/v1/audit", "actor=key_1&limit=2", ""},
		{"GET", "/v1/audit", "actor=key_1&cursor=p2&limit=2", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("requests %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
