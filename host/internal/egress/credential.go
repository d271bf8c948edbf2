package egress

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/plugboard/plugboard/abi"
)

// Credential is a connection's secret and how the manifest says to present it. The guest never
// sees it: the host adds it at the HTTP boundary, and no error message or [Outbound] record
// carries it.
type Credential struct {
	// Type is abi.AuthAPIKey, abi.AuthBasic or abi.AuthOAuth2; "" or abi.AuthNone injects
	// nothing. Any other value makes a call that would inject it fail with "denied".
	Type string
	// APIKey is the key of an api_key credential, placed as APIKeyIn says.
	APIKey string
	// APIKeyIn is the manifest's auth.api_key: a header or a query parameter, its name, and a
	// prefix put before the key ("Bearer "). Required for abi.AuthAPIKey.
	APIKeyIn *abi.APIKeyAuth
	// Username and Password of a basic credential, sent as "Authorization: Basic".
	Username, Password string
	// AccessToken of an oauth2 credential, sent as "Authorization: Bearer". The host refreshes
	// an expired token before the call.
	AccessToken string
	// Refresh, when set on an oauth2 credential, is called once per Do if a request carrying
	// the token is answered 401; it returns a fresh access token and the request is sent once
	// more with it (taking one more request from the budget). nil: a 401 is returned as is.
	// Concurrent calls of one connection may call it concurrently.
	Refresh func(ctx context.Context) (accessToken string, err error)
}

// credState is the credential as one Do call uses it: the access token may be replaced by a
// refresh, and every secret seen is remembered so messages can be scrubbed of it.
type credState struct {
	*Credential
	token   string
	secrets []string
}

func newCredState(c *Credential) *credState {
	s := &credState{Credential: c, token: c.AccessToken}
	s.remember(c.APIKey, c.Password, c.AccessToken)
	if c.Type == abi.AuthBasic {
		s.remember(base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password)))
	}
	return s
}

// remember adds secrets to scrub from messages.
func (s *credState) remember(secrets ...string) {
	for _, v := range secrets {
		if v != "" {
			s.secrets = append(s.secrets, v, url.QueryEscape(v), url.PathEscape(v))
		}
	}
}

// scrub replaces every secret the call holds in msg. Messages are built without secrets in the
// first place; this guards against an underlying error that echoes one.
func (s *credState) scrub(msg string) string {
	if s == nil {
		return msg
	}
	for _, v := range s.secrets {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	return msg
}

// headerName is the canonical header the credential occupies ("Authorization", or the api_key
// header), or "" when it goes in the query.
func (s *credState) headerName() string {
	switch s.Type {
	case abi.AuthBasic, abi.AuthOAuth2:
		return "Authorization"
	case abi.AuthAPIKey:
		if s.APIKeyIn != nil && s.APIKeyIn.In == "header" {
			return http.CanonicalHeaderKey(s.APIKeyIn.Name)
		}
	}
	return ""
}

// inject puts the credential on the request headers h and returns the URL to send, which differs
// from u only for a query api_key. A guest-set header or query parameter of the same name is
// replaced. It fails with "denied" when the credential cannot be presented; the message never
// holds the secret.
func (s *credState) inject(h http.Header, u *url.URL) (*url.URL, *abi.Error) {
	var value string
	switch s.Type {
	case "", abi.AuthNone:
		return u, nil
	case abi.AuthAPIKey:
		in := s.APIKeyIn
		if in == nil || strings.TrimSpace(in.Name) == "" || in.In != "header" && in.In != "query" {
			return nil, abi.Errorf(abi.CodeDenied, "the connection's api_key cannot be injected: the manifest's auth.api_key settings are missing or invalid")
		}
		value = in.Prefix + s.APIKey
		if in.In == "query" {
			v := *u
			v.RawQuery = replaceQueryParam(u.RawQuery, in.Name, value)
			return &v, nil
		}
		if !validHeaderName(in.Name) {
			return nil, abi.Errorf(abi.CodeDenied, "the connection's api_key cannot be injected: header name %q is not valid", in.Name)
		}
	case abi.AuthBasic:
		value = "Basic " + base64.StdEncoding.EncodeToString([]byte(s.Username+":"+s.Password))
	case abi.AuthOAuth2:
		value = "Bearer " + s.token
	default:
		return nil, abi.Errorf(abi.CodeDenied, "the connection's credential type %q cannot be injected", s.Type)
	}
	if !validHeaderValue(value) {
		return nil, abi.Errorf(abi.CodeDenied, "the connection's %s credential holds characters a header cannot carry", s.Type)
	}
	h[s.headerName()] = []string{value}
	return u, nil
}

// replaceQueryParam drops every parameter named name from rawQuery and appends name=value,
// leaving the other parameters byte for byte as they were (signed URLs stay valid).
func replaceQueryParam(rawQuery, name, value string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil && k == name || key == name {
			continue
		}
		b.WriteString(part)
		b.WriteByte('&')
	}
	b.WriteString(url.QueryEscape(name))
	b.WriteByte('=')
	b.WriteString(url.QueryEscape(value))
	return b.String()
}
