package plugboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Client talks to one Plugboard server. Its methods are safe for concurrent use once its exported
// fields are set.
type Client struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	baseErr error  // why baseURL is unusable; returned by every call
	token   string
	hc      *http.Client

	// UserAgent is sent as the User-Agent header. Empty means "plugboard-client".
	UserAgent string

	// UploadProgress, when set, is called while UploadConnector sends its body, with the bytes
	// handed to the connection so far and the total. Nil means no reporting.
	UploadProgress func(sent, total int64)
}

// maxDocument bounds a success document read from the server; maxErrorBody bounds an error body.
const (
	maxDocument  = 64 << 20
	maxErrorBody = 1 << 20
)

// New returns a client for the server at baseURL (such as "http://127.0.0.1:8080"; a path prefix
// is kept, for a server behind a reverse proxy) that sends token as a bearer token (none when
// empty). A nil httpClient means a client with no overall timeout that does not follow
// redirects, so a misconfigured URL is reported rather than followed with the token attached.
// An unusable baseURL is reported by every call. "unix:/path/to.sock" talks HTTP over that
// socket (a management listener, `serve --admin-listen unix:...`); httpClient is then ignored.
func New(baseURL, token string, httpClient *http.Client) *Client {
	c := &Client{token: token, hc: httpClient}
	if sock, ok := strings.CutPrefix(baseURL, "unix:"); ok {
		c.hc = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}},
		}
		baseURL = "http://plugboard.sock"
		if sock == "" {
			baseURL = "unix:"
		}
	}
	if c.hc == nil {
		c.hc = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	c.base, c.baseErr = parseBase(baseURL)
	return c
}

// Unusable returns a client whose every call fails with err: for a caller that found the
// settings unusable (an unreadable config file, an unknown context) before it had a URL.
func Unusable(err error) *Client {
	c := New("http://unusable.invalid", "", nil)
	c.baseErr = err
	return c
}

// CheckBaseURL reports whether New can use raw as a server URL: http or https with a host
// and no query, fragment or user info, or "unix:/path/to.sock".
func CheckBaseURL(raw string) error {
	if sock, ok := strings.CutPrefix(raw, "unix:"); ok {
		if sock == "" {
			return fmt.Errorf("invalid server URL %q: unix: needs the socket's path, as in unix:/run/plugboard.sock", raw)
		}
		return nil
	}
	_, err := parseBase(raw)
	return err
}

func parseBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("invalid server URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("invalid server URL %q: the scheme must be http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("invalid server URL %q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("invalid server URL %q: it must not carry a query, fragment or user info", raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

type correlationKey struct{}

// WithCorrelationID returns a context whose calls send id as X-Correlation-ID. The server keeps
// it for its logs, error bodies and the plugin call; an empty id lets the server make one.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// pathf builds a request path from format, escaping each segment. A segment that is empty, "."
// or ".." is refused: it would name another endpoint once the URL is cleaned.
func pathf(format string, segs ...string) (string, error) {
	args := make([]any, len(segs))
	for i, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("invalid name %q in request path", s)
		}
		args[i] = url.PathEscape(s)
	}
	return fmt.Sprintf(format, args...), nil
}

// request is one call to the API.
type request struct {
	method      string
	path        string // escaped, starting with "/"
	query       url.Values
	body        io.Reader
	size        int64 // body length
	contentType string
	accept      string    // "" means JSON or a problem document
	sink        io.Writer // when set, a 2xx body is streamed here instead of read into response.body
}

// response is a 2xx answer with its body read.
type response struct {
	status  int
	header  http.Header
	body    []byte
	written int64 // bytes streamed to request.sink
}

// send does one exchange. A non-2xx answer is returned as a *Problem.
func (c *Client) send(ctx context.Context, r request) (*response, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, r.body)
	if err != nil {
		return nil, err
	}
	if r.body != nil {
		req.ContentLength = r.size
		req.Header.Set("Content-Type", r.contentType)
	}
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept+", application/problem+json")
	ua := c.UserAgent
	if ua == "" {
		ua = "plugboard-client"
	}
	req.Header.Set("User-Agent", ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if id, _ := ctx.Value(correlationKey{}).(string); id != "" {
		req.Header.Set("X-Correlation-ID", id)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err // *url.Error already names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, newProblem(resp, body)
	}
	if r.sink != nil {
		n, err := io.Copy(r.sink, resp.Body)
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			err = fmt.Errorf("the server sent %d of %d bytes (it failed half-way; its log says why)", n, resp.ContentLength)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: reading the response: %w", r.method, u, err)
		}
		return &response{status: resp.StatusCode, header: resp.Header, written: n}, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the response: %w", r.method, u, err)
	}
	if len(body) > maxDocument {
		return nil, fmt.Errorf("%s %s: the response is larger than %d MiB", r.method, u, maxDocument>>20)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// call sends in (if not nil) as JSON and decodes the answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) (*response, error) {
	r := request{method: method, path: path, query: query}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		r.body, r.size, r.contentType = bytes.NewReader(b), int64(len(b)), "application/json"
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := decodeDocument(resp, out); err != nil {
			return nil, fmt.Errorf("%s %s%s: %w", method, c.base, path, err)
		}
	}
	return resp, nil
}

// decodeDocument decodes a JSON success body, saying what came instead when it is not JSON:
// usually a URL that points at another web server.
func decodeDocument(resp *response, out any) error {
	if len(bytes.TrimSpace(resp.body)) == 0 {
		return fmt.Errorf("the server answered %d with an empty body where a JSON document was expected", resp.status)
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return fmt.Errorf("the answer is not JSON (Content-Type %q); is the URL a Plugboard server?",
				resp.header.Get("Content-Type"))
		}
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}

// list fetches every page of a list endpoint: the items under field, following "next" cursors
// (passed back as the "cursor" query parameter, as GET /v1/audit does).
func list[T any](ctx context.Context, c *Client, path, field string) ([]T, error) {
	var all []T
	query := url.Values{}
	seen := map[string]bool{}
	for {
		var page map[string]json.RawMessage
		if _, err := c.call(ctx, http.MethodGet, path, query, nil, &page); err != nil {
			return nil, err
		}
		raw, ok := page[field]
		if !ok {
			return nil, fmt.Errorf("GET %s%s: the answer has no %q list", c.base, path, field)
		}
		var items []T
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("GET %s%s: decoding %q: %w", c.base, path, field, err)
		}
		all = append(all, items...)
		var next string
		if raw, ok := page["next"]; ok {
			_ = json.Unmarshal(raw, &next) // null or absent: the last page
		}
		if next == "" {
			return all, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("GET %s%s: the server repeated the cursor %q", c.base, path, next)
		}
		seen[next] = true
		query.Set("cursor", next)
	}
}

// keepRaw decodes data into v (a pointer to a method-less copy of the document type) and keeps a
// copy of data in raw.
func keepRaw(data []byte, v any, raw *json.RawMessage) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	*raw = bytes.Clone(data)
	return nil
}
