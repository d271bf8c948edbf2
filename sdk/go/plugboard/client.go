package plugboard

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"strings"
	"time"
)

// Client talks to one Plugboard server. Its methods are safe for concurrent use once its exported
// fields are set.
type Client struct {
	base       string // scheme://host[:port][/prefix], no trailing slash
	baseErr    error  // why baseURL is unusable; returned by every call
	token      string
	hc         *http.Client
	userAgent  string
	maxRetries int
	timeout    time.Duration
	sleep      func(context.Context, time.Duration) error // waits between retries; a test's fake clock

	// UploadProgress, when set, is called while UploadConnector sends its body, with the bytes
	// handed to the connection so far and the total. Nil means no reporting.
	UploadProgress func(sent, total int64)
}

// maxDocument bounds a success document read from the server; maxErrorBody bounds an error body.
const (
	maxDocument  = 64 << 20
	maxErrorBody = 1 << 20
)

// Retry defaults: see [WithMaxRetries].
const (
	// DefaultMaxRetries is how many times a 429 or 503 answer is retried unless
	// [WithMaxRetries] says otherwise.
	DefaultMaxRetries = 2
	// MaxRetryWait is the longest Retry-After the client waits for; an answer asking for more
	// is returned as an error at once.
	MaxRetryWait = 60 * time.Second
)

// An Option configures a [Client] made by [New].
type Option func(*Client)

// WithMaxRetries sets how many times a call answered 429 (rate limited) or 503 (unavailable)
// is sent again: [DefaultMaxRetries] by default, 0 for none. Each retry waits what the answer's
// Retry-After header says (delay seconds or an HTTP date), or, without one, an exponential
// backoff from 0.5 s with jitter; a wait over [MaxRetryWait] is not waited for and the error is
// returned at once. No other answer and no transport failure is retried: a call that failed
// otherwise may have had effects.
func WithMaxRetries(n int) Option {
	return func(c *Client) { c.maxRetries = max(n, 0) }
}

// WithTimeout bounds each HTTP exchange (each attempt, body included; a long-poll gets its
// wait on top). Zero, the default, leaves the deadline to the caller's context.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = max(d, 0) }
}

// WithUserAgent adds suffix (such as "my-app/1.2") after the client's own product token in the
// User-Agent header: "plugboard-go/VERSION my-app/1.2".
func WithUserAgent(suffix string) Option {
	return func(c *Client) {
		c.userAgent = "plugboard-go/" + ClientVersion()
		if suffix = strings.TrimSpace(suffix); suffix != "" {
			c.userAgent += " " + suffix
		}
	}
}

// WithHTTPClient sets the [http.Client] the calls go through: its Transport (a test server's
// client, a proxy, custom TLS), redirect policy and Timeout. Nil, the default, is a client with
// no overall timeout that does not follow redirects, so a misconfigured URL is reported rather
// than followed with the token attached. It is ignored for a "unix:" base URL.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// ClientVersion is the version of this package: the module version of
// github.com/plugboard/plugboard the program was built with, or "devel" when it is unknown (a
// build inside the repository).
func ClientVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
		for _, m := range mods {
			if m.Path == modulePath && m.Version != "" && m.Version != "(devel)" {
				return m.Version
			}
		}
	}
	return "devel"
}

const modulePath = "github.com/plugboard/plugboard"

// New returns a client for the server at baseURL (such as "http://127.0.0.1:8080"; a path prefix
// is kept, for a server behind a reverse proxy) that sends token (an API key "pbk_..." or the
// admin token) as a bearer token, none when empty. An unusable baseURL is reported by every
// call. "unix:/path/to.sock" talks HTTP over that socket (a management listener,
// `serve --admin-listen unix:...`).
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{token: token, maxRetries: DefaultMaxRetries, sleep: sleepCtx}
	WithUserAgent("")(c)
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
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
	c := New("http://unusable.invalid", "")
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
	body        []byte // nil: no body
	contentType string
	progress    func(sent, total int64) // reports the body's upload
	longPoll    time.Duration           // the server may hold the answer this long: added to the timeout
	accept      string                  // "" means JSON or a problem document
	sink        io.Writer               // when set, a 2xx body is streamed here instead of read into response.body
}

// response is a 2xx answer with its body read.
type response struct {
	status  int
	header  http.Header
	body    []byte
	written int64 // bytes streamed to request.sink
}

// send does one exchange, retrying 429 and 503 answers as [WithMaxRetries] says. A non-2xx
// answer is returned as a *Problem.
func (c *Client) send(ctx context.Context, r request) (*response, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	id, _ := ctx.Value(correlationKey{}).(string)
	for attempt := 0; ; attempt++ {
		resp, hdr, err := c.attempt(ctx, r, id)
		p, ok := err.(*Problem)
		if !ok || (p.Status != http.StatusTooManyRequests && p.Status != http.StatusServiceUnavailable) || attempt >= c.maxRetries {
			return resp, err
		}
		wait, ok := retryAfter(hdr.Get("Retry-After"), time.Now())
		if !ok {
			d := 500 * time.Millisecond << attempt
			wait = d/2 + rand.N(d/2+1)
		}
		if wait > MaxRetryWait {
			return nil, err
		}
		if id == "" {
			// Every attempt carries one id: the one the server made for the first, or ours.
			if id = p.CorrelationID; !correlationRE.MatchString(id) {
				id = newCorrelationID()
			}
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// correlationRE is what the server accepts as an X-Correlation-ID.
var correlationRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// newCorrelationID returns "c_" and 26 random base32 characters, as the server makes them.
func newCorrelationID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return "c_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt sends r once with correlation id id ("" lets the server make one). The header is
// the answer's, also when it is an error.
func (c *Client) attempt(ctx context.Context, r request, id string) (*response, http.Header, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout+r.longPoll)
		defer cancel()
	}
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
		if r.progress != nil {
			body = &progressReader{r: body, total: int64(len(r.body)), report: r.progress}
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, nil, err
	}
	if r.body != nil {
		req.ContentLength = int64(len(r.body))
		req.Header.Set("Content-Type", r.contentType)
	}
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept+", application/problem+json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if id != "" {
		req.Header.Set("X-Correlation-ID", id)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err // *url.Error already names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, resp.Header, newProblem(resp, body)
	}
	if r.sink != nil {
		n, err := io.Copy(r.sink, resp.Body)
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			err = fmt.Errorf("the server sent %d of %d bytes (it failed half-way; its log says why)", n, resp.ContentLength)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: reading the response: %w", r.method, u, err)
		}
		return &response{status: resp.StatusCode, header: resp.Header, written: n}, resp.Header, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading the response: %w", r.method, u, err)
	}
	if len(b) > maxDocument {
		return nil, nil, fmt.Errorf("%s %s: the response is larger than %d MiB", r.method, u, maxDocument>>20)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, resp.Header, nil
}

// call sends in (if not nil) as JSON and decodes the answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) (*response, error) {
	r := request{method: method, path: path, query: query}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		r.body, r.contentType = b, "application/json"
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
