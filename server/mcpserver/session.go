package mcpserver

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Sessions that any node can serve.
//
// A Streamable HTTP session id (Mcp-Session-Id) is a signed token that carries what a node needs
// to serve the session's requests: the MCP server it was opened on, the protocol version
// initialize negotiated, the client's name, version and capabilities, when it was opened, and a
// fingerprint of the bearer token that opened it. It is signed with HMAC-SHA256 under
// [Options.SessionKey], which every node of a cluster derives from the same secret
// ([SessionKeyFrom]), so a node that never saw the initialize checks the id and rebuilds the
// session from it; no node keeps a session table and nothing about sessions is stored.
//
// The id is signed, not encrypted: it holds nothing the client did not send or receive.

// sessionPrefix starts every session id; it names the format, so a later one can be told apart.
const sessionPrefix = "pbs1."

// DefaultSessionLifetime is the default of [Options.SessionLifetime].
const DefaultSessionLifetime = 24 * time.Hour

// clockSkew is how far in the future a session's opening time may be (nodes' clocks differ).
const clockSkew = time.Minute

// maxCapabilitiesBytes bounds the client capabilities a session id carries; larger ones (an
// experimental capability with a big payload) are left out so the header stays small.
const maxCapabilitiesBytes = 1024

// Errors a session id is refused with. They wrap [ErrSessionNotFound], so callers test for it
// with errors.Is; each answers 404 with a JSON-RPC error (-32001), which tells an MCP client to
// start a new session.
var (
	// ErrSessionNotFound is the class of every refused session id.
	ErrSessionNotFound = errors.New("session not found")
	// ErrSessionInvalid: the id was not issued by this Plugboard (another cluster, another admin
	// token) or was altered.
	ErrSessionInvalid = fmt.Errorf("%w: the session id was not issued by this Plugboard or was altered", ErrSessionNotFound)
	// ErrSessionExpired: the session is older than [Options.SessionLifetime].
	ErrSessionExpired = fmt.Errorf("%w: the session expired", ErrSessionNotFound)
	// ErrSessionOtherServer: the id belongs to another MCP server's endpoint.
	ErrSessionOtherServer = fmt.Errorf("%w: the session belongs to another MCP server", ErrSessionNotFound)
	// ErrSessionOtherToken: the request's bearer token is not the one that opened the session.
	ErrSessionOtherToken = fmt.Errorf("%w: the session was opened with another bearer token", ErrSessionNotFound)
)

// SessionKeyFrom derives the session signing key from a secret every node of a cluster shares
// (the admin token). Distinct secrets give unrelated keys, and the key reveals nothing of the
// secret.
func SessionKeyFrom(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("plugboard/mcp-session-key/v1"))
	return m.Sum(nil)
}

// sessionClaims is what a session id carries. Field names are short: the id travels in a header
// on every request.
type sessionClaims struct {
	// Server is the MCP server's name; "" for the /mcp namespace endpoint.
	Server string `json:"s"`
	// Protocol is the protocol version initialize negotiated.
	Protocol string `json:"p"`
	// Client is the client's name and version from initialize.
	Client *mcp.Implementation `json:"c,omitempty"`
	// Capabilities are the client's capabilities, when they are small enough to carry.
	Capabilities json.RawMessage `json:"k,omitempty"`
	// Issued is when initialize ran, in Unix seconds.
	Issued int64 `json:"t"`
	// Bearer is a keyed fingerprint of the bearer token that opened the session.
	Bearer string `json:"b"`
	// Nonce makes two sessions opened in the same second by the same client distinct.
	Nonce string `json:"n"`
}

// sessions signs and checks session ids.
type sessions struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
}

// bearerPrint is the keyed fingerprint of a bearer token a session id binds to.
func (s *sessions) bearerPrint(token string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("bearer\x00" + token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
}

func (s *sessions) sign(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(sessionPrefix + payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// issue returns the id of a new session of server, opened by initialize with params under the
// bearer token, at the negotiated protocol version.
func (s *sessions) issue(server, token, protocol string, params *mcp.InitializeParams) (string, error) {
	nonce := make([]byte, 9)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("mcpserver: drawing a session nonce: %w", err)
	}
	c := sessionClaims{Server: server, Protocol: protocol, Issued: s.now().Unix(), Bearer: s.bearerPrint(token),
		Nonce: base64.RawURLEncoding.EncodeToString(nonce)}
	if params != nil {
		if params.ClientInfo != nil {
			c.Client = &mcp.Implementation{Name: truncate(params.ClientInfo.Name, 100), Version: truncate(params.ClientInfo.Version, 50)}
		}
		if params.Capabilities != nil {
			if b, err := json.Marshal(params.Capabilities); err == nil && len(b) <= maxCapabilitiesBytes && string(b) != "{}" {
				c.Capabilities = b
			}
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("mcpserver: encoding a session id: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return sessionPrefix + payload + "." + s.sign(payload), nil
}

// check verifies a session id for a request to server with the bearer token; the error wraps
// [ErrSessionNotFound] and says what is wrong.
func (s *sessions) check(id, server, token string) (*sessionClaims, error) {
	rest, ok := strings.CutPrefix(id, sessionPrefix)
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || payload == "" || !hmac.Equal([]byte(sig), []byte(s.sign(payload))) {
		return nil, ErrSessionInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, ErrSessionInvalid
	}
	var c sessionClaims
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if dec.Decode(&c) != nil || c.Protocol == "" {
		return nil, ErrSessionInvalid
	}
	if c.Server != server {
		name := c.Server
		if name == "" {
			name = "the /mcp namespace endpoint"
		}
		return nil, fmt.Errorf("%w (%s)", ErrSessionOtherServer, name)
	}
	issued := time.Unix(c.Issued, 0)
	now := s.now()
	if issued.After(now.Add(clockSkew)) {
		return nil, ErrSessionInvalid
	}
	if !now.Before(issued.Add(s.lifetime)) {
		return nil, fmt.Errorf("%w: it was opened at %s and sessions last %s", ErrSessionExpired, issued.UTC().Format(time.RFC3339), s.lifetime)
	}
	if !hmac.Equal([]byte(c.Bearer), []byte(s.bearerPrint(token))) {
		return nil, ErrSessionOtherToken
	}
	return &c, nil
}

// expires is when the session stops being accepted.
func (s *sessions) expires(c *sessionClaims) time.Time {
	return time.Unix(c.Issued, 0).Add(s.lifetime)
}

// state is the session state a node rebuilds from the id: initialize and initialized done.
func (c *sessionClaims) state() *mcp.ServerSessionState {
	p := &mcp.InitializeParams{ProtocolVersion: c.Protocol, ClientInfo: c.Client, Capabilities: &mcp.ClientCapabilities{}}
	if len(c.Capabilities) > 0 {
		_ = json.Unmarshal(c.Capabilities, p.Capabilities)
	}
	return &mcp.ServerSessionState{InitializeParams: p, InitializedParams: &mcp.InitializedParams{},
		NegotiatedProtocolVersion: c.Protocol, LogLevel: "info"}
}

// negotiate is the protocol version the SDK's initialize answers to a client asking for asked:
// the client's version when the SDK serves it over a handshake (before the stateless
// revision), else the newest one it does.
func negotiate(asked string) string {
	supported := mcp.SupportedProtocolVersions()
	if asked < versionStateless && slices.Contains(supported, asked) {
		return asked
	}
	for _, v := range supported {
		if v < versionStateless {
			return v
		}
	}
	return asked
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
