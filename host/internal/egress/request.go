package egress

import (
	"encoding/base64"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// prepared is a guest request that passed validation (step 1 of ABI.md section 5, before the
// allow-list check).
type prepared struct {
	method  string
	url     *url.URL
	origin  string
	header  http.Header // canonical names, one value each, dropped headers removed
	body    []byte      // nil: no body
	timeout time.Duration
	auth    bool
}

// droppedHeaders are guest headers that are never sent as given: the transport owns framing,
// connection management and the Host line (derived from the URL), and there is no proxy.
var droppedHeaders = map[string]bool{
	"Host":                true,
	"Content-Length":      true,
	"Transfer-Encoding":   true,
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Proxy-Authorization": true,
	"Proxy-Authenticate":  true,
	"Te":                  true,
	"Trailer":             true,
	"Upgrade":             true,
}

// refusedMethods are tokens that are valid HTTP methods but never make sense for a connector:
// CONNECT opens a tunnel, TRACE and TRACK echo the request (headers included) back.
var refusedMethods = map[string]bool{"CONNECT": true, "TRACE": true, "TRACK": true}

// prepare validates a guest request: method, URL, headers, body and timeout. It does not look at
// the grant.
func (c *Client) prepare(req *abi.HTTPRequest) (*prepared, *abi.Error) {
	if req == nil {
		return nil, abi.Errorf(abi.CodeInvalidRequest, "missing request")
	}
	p := &prepared{method: req.Method, auth: req.Auth == nil || *req.Auth}
	if p.method == "" {
		p.method = http.MethodGet
	}
	if !validMethod(p.method) {
		return nil, abi.Errorf(abi.CodeInvalidRequest, "method %.32q is not allowed: want an upper-case HTTP method such as GET or POST (CONNECT and TRACE are refused)", p.method)
	}

	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, abi.Errorf(abi.CodeInvalidRequest, "url is not a valid URL")
	}
	if p.origin, err = checkURL(u); err != nil {
		return nil, abi.Errorf(abi.CodeInvalidRequest, "url: %v", err)
	}
	u.Fragment, u.RawFragment = "", ""
	p.url = u

	p.header = make(http.Header, len(req.Headers)+2)
	for name, value := range req.Headers {
		if !validHeaderName(name) {
			return nil, abi.Errorf(abi.CodeInvalidRequest, "header name %.64q is not a valid HTTP token", name)
		}
		if !validHeaderValue(value) {
			return nil, abi.Errorf(abi.CodeInvalidRequest, "header %s: the value holds a control character", name)
		}
		key := http.CanonicalHeaderKey(name)
		if droppedHeaders[key] {
			continue
		}
		if _, dup := p.header[key]; dup {
			return nil, abi.Errorf(abi.CodeInvalidRequest, "header %s is given twice (names differ only in case)", key)
		}
		p.header[key] = []string{value}
	}

	switch {
	case req.Body != nil && req.BodyBase64 != nil:
		return nil, abi.Errorf(abi.CodeInvalidRequest, "set body or body_base64, not both")
	case req.Body != nil:
		p.body = []byte(*req.Body)
	case req.BodyBase64 != nil:
		if p.body, err = base64.StdEncoding.DecodeString(*req.BodyBase64); err != nil {
			return nil, abi.Errorf(abi.CodeInvalidRequest, "body_base64 is not valid standard base64 (RFC 4648, padded)")
		}
	}
	if int64(len(p.body)) > c.maxRequestBytes {
		return nil, abi.Errorf(abi.CodeTooLarge, "request body is %d bytes, over the limit of %d", len(p.body), c.maxRequestBytes)
	}

	switch ms := req.TimeoutMS; {
	case ms < 0:
		return nil, abi.Errorf(abi.CodeInvalidRequest, "timeout_ms must not be negative")
	case ms > 0 && ms <= math.MaxInt64/int64(time.Millisecond):
		p.timeout = time.Duration(ms) * time.Millisecond
	}
	return p, nil
}

// checkURL checks that u is an absolute http(s) URL without user info and with a valid port, and
// returns its normalised origin. The error text is safe to show: it never repeats the URL.
func checkURL(u *url.URL) (string, error) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errorString("must be an absolute http or https URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", errorString("must be an absolute URL (scheme://host/path)")
	}
	if u.User != nil {
		return "", errorString("user info in the URL is not allowed (the host injects the connection's credentials)")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", errorString("port must be between 1 and 65535")
		}
	}
	origin, err := abi.OriginOfURL(u.String())
	if err != nil {
		return "", errorString("has no valid origin (scheme://host[:port])")
	}
	return origin, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// validMethod accepts upper-case tokens (letters, digits, '-', '_') of at most 32 bytes that
// start with a letter, except the refused methods. Extension methods such as PROPFIND and REPORT
// (WebDAV, CalDAV) pass.
func validMethod(m string) bool {
	if len(m) == 0 || len(m) > 32 || m[0] < 'A' || m[0] > 'Z' || refusedMethods[m] {
		return false
	}
	for i := 0; i < len(m); i++ {
		b := m[i]
		if !('A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validHeaderValue rejects control characters other than horizontal tab (CR and LF above all,
// which would split the header).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}
