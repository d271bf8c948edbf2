package pdk

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plugboard/plugboard/abi"
)

// Request is one outbound HTTP request.
type Request struct {
	// Method is the HTTP method; empty means GET.
	Method string
	// URL is the absolute URL. Its origin must be one of the manifest's hosts (and the
	// connection's), or the host refuses the request with host_not_allowed.
	URL string
	// Headers are the request headers; names are sent in canonical form. A header the host
	// injects credentials into (for example Authorization) is replaced by the host.
	Headers map[string]string
	// Body is the request body, nil for none. It travels as text when it is valid UTF-8 and
	// as base64 otherwise; the upstream receives the same bytes either way.
	Body []byte
	// Timeout bounds this request; zero leaves it to the call's deadline.
	Timeout time.Duration
	// NoAuth sends the request without the connection's credentials (auth: false), for
	// example to fetch a public URL the upstream returned.
	NoAuth bool
}

// Response is the upstream's answer. Redirects were followed by the host.
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Headers holds the response headers by canonical name; repeated headers are joined with
	// ", " (Set-Cookie with "\n").
	Headers map[string]string
	// Body is the response body.
	Body []byte
	// URL is the URL that was requested, against which relative links resolve.
	URL string
}

// Header returns the value of the named header, or "". The name may be in any case.
func (r *Response) Header(name string) string {
	if v, ok := r.Headers[CanonicalHeaderKey(name)]; ok {
		return v
	}
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// Text returns the body as a string.
func (r *Response) Text() string { return string(r.Body) }

// OK reports whether the status is 2xx.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// IsJSON reports whether the Content-Type is JSON (application/json or any +json type).
func (r *Response) IsJSON() bool {
	ct := strings.ToLower(r.Header("Content-Type"))
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.TrimSpace(ct)
	return ct == "application/json" || strings.HasSuffix(ct, "+json")
}

// JSON decodes the body into v. A body that is not valid JSON for v is an upstream_error.
func (r *Response) JSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return Errorf(abi.CodeUpstreamError, "upstream answered a body that is not the expected JSON: %v", err)
	}
	return nil
}

// HTTPClient sends requests through the plugboard_http import. Get one from [Context.HTTP];
// the With methods return configured copies, so a client can be set up once per call:
//
//	gh := ctx.HTTP().WithHeaders(map[string]string{"Accept": "application/vnd.github+json"})
type HTTPClient struct {
	ctx       *Context
	headers   map[string]string
	statusErr func(*Response) error
}

// WithHeaders returns a copy of c that adds headers to every request; a request's own headers
// win over them.
func (c *HTTPClient) WithHeaders(headers map[string]string) *HTTPClient {
	cp := *c
	cp.headers = maps.Clone(c.headers)
	if cp.headers == nil {
		cp.headers = map[string]string{}
	}
	for k, v := range headers {
		cp.headers[CanonicalHeaderKey(k)] = v
	}
	return &cp
}

// WithStatusErrors returns a copy of c whose JSON helpers map non-2xx responses with f instead
// of [StatusError]. f returns nil to accept a response.
func (c *HTTPClient) WithStatusErrors(f func(*Response) error) *HTTPClient {
	cp := *c
	cp.statusErr = f
	return &cp
}

// Do sends req and returns the upstream's response, whatever its status. The error, when the
// host refused or failed the request, is an *abi.Error with one of the host codes of ABI.md
// section 5 (host_not_allowed, private_address, timeout, network, ...); returned from a
// handler as it is, it is mapped by [FromHostError] and the API answers with the host's code.
func (c *HTTPClient) Do(req Request) (*Response, error) {
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = "GET"
	}
	hr := abi.HTTPRequest{Method: method, URL: req.URL}
	if len(c.headers)+len(req.Headers) > 0 {
		hr.Headers = maps.Clone(c.headers)
		if hr.Headers == nil {
			hr.Headers = map[string]string{}
		}
		for k, v := range req.Headers {
			hr.Headers[CanonicalHeaderKey(k)] = v
		}
	}
	if req.Body != nil {
		if utf8.Valid(req.Body) {
			s := string(req.Body)
			hr.Body = &s
		} else {
			s := base64.StdEncoding.EncodeToString(req.Body)
			hr.BodyBase64 = &s
		}
	}
	if req.Timeout > 0 {
		hr.TimeoutMS = max(req.Timeout.Milliseconds(), 1)
	}
	if req.NoAuth {
		f := false
		hr.Auth = &f
	}
	var reply abi.HTTPResponse
	if err := c.ctx.call(abi.ImportHTTP, hr, &reply); err != nil {
		return nil, err
	}
	if reply.Error != nil {
		return nil, reply.Error
	}
	resp := &Response{Status: reply.Status, Headers: reply.Headers, URL: req.URL, Body: []byte(reply.Body)}
	if resp.Headers == nil {
		resp.Headers = map[string]string{}
	}
	if reply.BodyBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(reply.BodyBase64)
		if err != nil {
			return nil, errInternalf("plugboard_http: malformed body_base64 from the host: %v", err)
		}
		resp.Body = b
	}
	return resp, nil
}

// GetJSON sends a GET to url and decodes the JSON answer into out (skipped when out is nil).
// See [HTTPClient.DoJSON] for errors.
func (c *HTTPClient) GetJSON(url string, out any) (*Response, error) {
	return c.DoJSON("GET", url, nil, out)
}

// PostJSON sends in as a JSON body with POST to url and decodes the JSON answer into out.
// See [HTTPClient.DoJSON] for errors.
func (c *HTTPClient) PostJSON(url string, in, out any) (*Response, error) {
	return c.DoJSON("POST", url, in, out)
}

// DoJSON sends a request with in encoded as JSON (no body when in is nil), with Accept and,
// for a body, Content-Type set to application/json unless the client's headers set them. It
// decodes a 2xx answer into out (skipped when out is nil or the body is empty).
//
// A non-2xx answer returns the response and the error of [StatusError] (or of the function
// given to [HTTPClient.WithStatusErrors]); a host failure returns a nil response and the host's
// *abi.Error.
func (c *HTTPClient) DoJSON(method, url string, in, out any) (*Response, error) {
	req := Request{Method: method, URL: url, Headers: map[string]string{}}
	if _, ok := c.headers["Accept"]; !ok {
		req.Headers["Accept"] = "application/json"
	}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, errInternalf("encoding the request body: %v", err)
		}
		req.Body = b
		if _, ok := c.headers["Content-Type"]; !ok {
			req.Headers["Content-Type"] = "application/json"
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		var serr error
		if c.statusErr != nil {
			serr = c.statusErr(resp)
		} else if e := StatusError(resp); e != nil {
			serr = e
		}
		if serr != nil {
			return resp, serr
		}
	}
	if out != nil && len(strings.TrimSpace(string(resp.Body))) > 0 {
		if err := resp.JSON(out); err != nil {
			return resp, err
		}
	}
	return resp, nil
}

// CanonicalHeaderKey returns the canonical form of a header name, as Go's net/http writes it
// ("content-type" becomes "Content-Type"). A name with a character that is not an HTTP token
// character is returned unchanged, as net/http does. (The pdk avoids importing net/http to keep
// plugins small.)
func CanonicalHeaderKey(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return s
		}
	}
	b := []byte(s)
	upper := true
	for i, c := range b {
		if upper && c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		} else if !upper && c >= 'A' && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}
