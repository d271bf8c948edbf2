// Package openapitest checks HTTP exchanges with a Plugboard server against the API's
// OpenAPI document (package openapi), with kin-openapi's validator, so every test that talks
// to the server also holds the document to what the server really does.
//
// What is checked, per exchange:
//   - the request's route and method are in the document (a request the server answered
//     404 not_found or 405 method_not_allowed may be for a path that does not exist: tests
//     send those on purpose);
//   - a request the server accepted (2xx) matches the operation's parameters and body
//     schema: a request the document calls invalid must not succeed;
//   - every response matches a response the operation lists (its status, or "default"), and
//     its body that response's schema. Write-only properties (secrets) in a response are
//     violations.
//
// The MCP endpoints (/mcp, /mcp/{name}) and the hooks (/hooks/{token}) speak other
// protocols; only their problem documents are checked. Response bodies stream through
// unchanged (server-sent events keep flowing); bodies over 8 MiB are not checked.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/plugboard/plugboard/server/openapi"
)

const maxChecked = 8 << 20

func init() {
	for _, ct := range []string{"application/wasm", "application/octet-stream", "application/yaml", "text/html", "text/plain", "text/event-stream"} {
		if openapi3filter.RegisteredBodyDecoder(ct) == nil {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
		}
	}
}

// Checker validates exchanges and keeps what did not match. It is safe for concurrent use.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
	// problem validates the problem documents of the MCP and hook endpoints.
	problem *openapi3.Schema

	mu         sync.Mutex
	violations []string
	operations map[string]int // "METHOD /template" -> exchanges checked
}

var (
	loadOnce sync.Once
	loaded   *openapi3.T
	loadErr  error
)

// New returns a Checker for the embedded document.
func New() (*Checker, error) {
	loadOnce.Do(func() {
		l := openapi3.NewLoader()
		loaded, loadErr = l.LoadFromData(openapi.JSON())
		if loadErr == nil {
			loadErr = loaded.Validate(context.Background())
		}
	})
	if loadErr != nil {
		return nil, fmt.Errorf("openapitest: the document does not load: %w", loadErr)
	}
	// The router matches paths only: drop the servers so any host matches.
	doc := *loaded
	doc.Servers = nil
	router, err := gorillamux.NewRouter(&doc)
	if err != nil {
		return nil, err
	}
	return &Checker{doc: &doc, router: router, problem: doc.Components.Schemas["Problem"].Value, operations: map[string]int{}}, nil
}

// Middleware returns h wrapped by a new Checker that reports every violation as a test error
// when the test ends.
func Middleware(t testing.TB, h http.Handler) http.Handler {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Report(t) })
	return c.Handler(h)
}

// Proxy starts a reverse proxy to target that checks every exchange and reports the
// violations as test errors when the test ends; it returns the proxy's base URL.
func Proxy(t testing.TB, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // long polls and event streams pass through as they come
	srv := httptest.NewServer(Middleware(t, rp))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Report fails t with each violation seen so far.
func (c *Checker) Report(t testing.TB) {
	t.Helper()
	for _, v := range c.Violations() {
		t.Errorf("OpenAPI document (server/openapi/openapi.yaml) and server disagree: %s", v)
	}
}

// Violations returns what did not match, in the order seen.
func (c *Checker) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// Operations returns the operations checked so far ("POST /v1/connections"), sorted.
func (c *Checker) Operations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for op := range c.operations {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}

func (c *Checker) violate(r *http.Request, status int, format string, args ...any) {
	msg := fmt.Sprintf("%s %s -> %d: ", r.Method, r.URL.RequestURI(), status) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.violations) < 200 {
		c.violations = append(c.violations, msg)
	}
}

// Handler serves h and checks each exchange once h has answered.
func (c *Checker) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqBody []byte
		if r.Body != nil {
			reqBody, _ = io.ReadAll(r.Body)
			r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		// The request as it arrived, for the check after h may have changed r.
		orig := r.Clone(r.Context())
		tw := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tw, r)
		if tw.status == 0 {
			tw.status = http.StatusOK
		}
		c.check(orig, reqBody, tw)
	})
}

func (c *Checker) check(r *http.Request, reqBody []byte, tw *teeWriter) {
	status := tw.status
	p := r.URL.Path
	if p == "/mcp" || strings.HasPrefix(p, "/mcp/") || strings.HasPrefix(p, "/hooks/") {
		if strings.HasPrefix(tw.Header().Get("Content-Type"), "application/problem+json") && !tw.over {
			c.checkProblem(r, status, tw.body.Bytes())
		}
		return
	}
	// The validator reads the request URL as a client sent it.
	r.URL.Scheme, r.URL.Host = "http", r.Host
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusUnauthorized {
			return // a path or method that does not exist, answered as such (401 without a token: /v1 tells nothing before it)
		}
		c.violate(r, status, "no operation in the document: %v", err)
		return
	}
	c.mu.Lock()
	c.operations[r.Method+" "+route.Path]++
	c.mu.Unlock()
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
		SkipSettingDefaults:   true,
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	if status/100 == 2 {
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.violate(r, status, "the server accepted a request the document calls invalid: %v", oneLine(err))
		}
	}
	if tw.over {
		opts.ExcludeResponseBody = true
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: tw.Header(), Options: opts}
	out.SetBodyBytes(tw.body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.violate(r, status, "the response does not match the document: %v\n\tbody: %s", oneLine(err), excerpt(tw.body.Bytes()))
	}
}

func (c *Checker) checkProblem(r *http.Request, status int, body []byte) {
	v, err := decodeJSON(body)
	if err == nil {
		err = c.problem.VisitJSON(v, openapi3.EnableJSONSchema2020())
	}
	if err != nil {
		c.violate(r, status, "not a problem document: %v\n\tbody: %s", oneLine(err), excerpt(body))
	}
}

func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " | ")
	if len(s) > 1500 {
		s = s[:1500] + "..."
	}
	return s
}

func excerpt(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// teeWriter passes the response through and keeps a copy of its first 8 MiB.
type teeWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	over   bool
}

func (w *teeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.over {
		if w.body.Len()+len(b) > maxChecked {
			w.over = true
			w.body.Reset()
		} else {
			w.body.Write(b)
		}
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming.
func (w *teeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func decodeJSON(b []byte) (any, error) {
	var v any
	err := json.Unmarshal(b, &v)
	return v, err
}
