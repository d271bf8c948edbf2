package mcpserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var testOpened = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func testSessions(key string, now time.Time) *sessions {
	return &sessions{key: SessionKeyFrom(key), lifetime: time.Hour, now: func() time.Time { return now }}
}

// TestSessionIDs: an id issued on one node is accepted by another with the same key and
// refused, with the reason, when it is altered, signed with another key, presented to another
// server or with another token, or out of its lifetime.
func TestSessionIDs(t *testing.T) {
	a := testSessions("admin-token", testOpened)
	params := &mcp.InitializeParams{ProtocolVersion: "2025-06-18", ClientInfo: &mcp.Implementation{Name: "claude", Version: "1.2"},
		Capabilities: &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}}}
	id, err := a.issue("github-tools", "mcp_tok", "2025-06-18", params)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			t.Fatalf("the id has %q, which a session id may not (visible ASCII only): %s", c, id)
		}
	}
	other, _ := a.issue("github-tools", "mcp_tok", "2025-06-18", params)
	if other == id {
		t.Error("two sessions opened in the same second got the same id")
	}

	b := testSessions("admin-token", testOpened.Add(59*time.Minute)) // another node, later
	c, err := b.check(id, "github-tools", "mcp_tok")
	if err != nil {
		t.Fatalf("another node with the same key: %v", err)
	}
	st := c.state()
	if st.NegotiatedProtocolVersion != "2025-06-18" || st.InitializeParams.ClientInfo.Name != "claude" ||
		st.InitializeParams.Capabilities.Sampling == nil || st.InitializedParams == nil {
		t.Errorf("the rebuilt state %+v %+v", st, st.InitializeParams)
	}

	payload := strings.Split(strings.TrimPrefix(id, sessionPrefix), ".")[0]
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	forged := strings.Replace(string(raw), `"s":"github-tools"`, `"s":"admin-tools"`, 1)
	forgedID := sessionPrefix + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + strings.Split(id, ".")[2]

	for _, tc := range []struct {
		name   string
		s      *sessions
		id     string
		server string
		token  string
		want   error
	}{
		{"an altered signature", b, id[:len(id)-2] + "xx", "github-tools", "mcp_tok", ErrSessionInvalid},
		{"an altered payload with the old signature", b, forgedID, "admin-tools", "mcp_tok", ErrSessionInvalid},
		{"a random id", b, "0b6a1c2f-7d1e-4c55-9f41-0d3b0a4a2f6e", "github-tools", "mcp_tok", ErrSessionInvalid},
		{"an empty payload", b, sessionPrefix + "." + a.sign(""), "github-tools", "mcp_tok", ErrSessionInvalid},
		{"another cluster's key", testSessions("another-admin-token", testOpened), id, "github-tools", "mcp_tok", ErrSessionInvalid},
		{"another MCP server", b, id, "other-tools", "mcp_tok", ErrSessionOtherServer},
		{"the namespace endpoint", b, id, "", "mcp_tok", ErrSessionOtherServer},
		{"another bearer token", b, id, "github-tools", "mcp_rotated", ErrSessionOtherToken},
		{"at the end of its lifetime", testSessions("admin-token", testOpened.Add(time.Hour)), id, "github-tools", "mcp_tok", ErrSessionExpired},
		{"opened in the future beyond clock skew", testSessions("admin-token", testOpened.Add(-2*time.Minute)), id, "github-tools", "mcp_tok", ErrSessionInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.s.check(tc.id, tc.server, tc.token)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrSessionNotFound) {
				t.Errorf("got %v, want %v (a kind of %v)", err, tc.want, ErrSessionNotFound)
			}
		})
	}
	if _, err := testSessions("admin-token", testOpened.Add(-30*time.Second)).check(id, "github-tools", "mcp_tok"); err != nil {
		t.Errorf("a node whose clock is 30 s behind: %v", err)
	}
}

// TestSessionIDSize: a client with huge capabilities still gets an id that fits a header.
func TestSessionIDSize(t *testing.T) {
	s := testSessions("k", testOpened)
	big := &mcp.ClientCapabilities{Experimental: map[string]any{"blob": strings.Repeat("x", 10000)}}
	id, err := s.issue("x", "t", "2025-06-18", &mcp.InitializeParams{ClientInfo: &mcp.Implementation{Name: strings.Repeat("n", 5000)}, Capabilities: big})
	if err != nil {
		t.Fatal(err)
	}
	if len(id) > 1024 {
		t.Errorf("the id is %d bytes", len(id))
	}
	if _, err := s.check(id, "x", "t"); err != nil {
		t.Error(err)
	}
}

// TestNegotiateMatchesSDK: the version a session id records is the one the SDK's initialize
// answers, for every version a client may ask.
func TestNegotiateMatchesSDK(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	h := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}))
	defer h.Close()
	asks := append(mcp.SupportedProtocolVersions(), "2099-01-01", "1999-01-01", "draft", "")
	for _, v := range asks {
		body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"` + v + `","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
		req, _ := http.NewRequestWithContext(context.Background(), "POST", h.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Result struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("initialize at %q: %v", v, err)
		}
		if got := negotiate(v); got != res.Result.ProtocolVersion {
			t.Errorf("asked %q: negotiate says %s, the SDK answered %s", v, got, res.Result.ProtocolVersion)
		}
	}
}
