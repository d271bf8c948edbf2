// Package plugboardtest is an in-memory fake of the Plugboard HTTP API (docs/API.md) for the
// tests of programs that use package plugboard, as net/http/httptest is for HTTP handlers.
// [New] starts one on loopback for a test ([NewServer] outside one); point a client at
// [Server.URL] with [Token], and seed it with [Server.AddConnector] and [Server.AddConnection]
// or through the API.
//
// It implements, the way API.md describes them: bearer auth, correlation IDs (kept or made, and
// echoed), problem details, strict request decoding (unknown fields are a 400) and the status
// codes, for the connector, action and connection endpoints, subscriptions and their queues
// (pull with long-poll and a 30 s lease, ack, replay), and the health probes.
//
// It does not implement: WebAssembly (an "uploaded plugin" is the Wasm header followed by the
// manifest as JSON, see [Wasm]; an action call answers its input as its output unless
// [Server.Invoke] says otherwise, after checking the action's "required" input properties),
// polling or webhook pushes (tests queue events with [Server.Emit]), OAuth consent, keys and
// roles (one token, allowed everything), MCP servers, the audit and invocation logs, the store
// backup and the cluster. [Server.Intercept] answers anything else a test needs.
package plugboardtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
)

// Token is the bearer token a new Server accepts.
const Token = "pbt_test"

// wasmHeader is the magic number and version 1 of a Wasm binary.
var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

// Wasm returns a fake plugin for m: the Wasm header followed by m as JSON.
func Wasm(m abi.Manifest) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // a Manifest always marshals
	}
	return append(bytes.Clone(wasmHeader), b...)
}

// Problem is an error answer the fake sends.
type Problem struct {
	Status int
	Code   string
	Detail string
	Errors []FieldError
	// Source is "plugboard" when empty.
	Source string
	// RetryAfter is the Retry-After header sent with the answer ("7", or an HTTP date); empty
	// sends none.
	RetryAfter string
}

// FieldError is one schema failure.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Request is a request the fake received.
type Request struct {
	Method string
	// Path is the escaped path.
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Server is the fake API. Set its exported fields before the first request.
type Server struct {
	*httptest.Server

	// Token is the accepted bearer token: Token by default.
	Token string
	// MaxUpload caps a plugin upload, in bytes: 64 MiB by default.
	MaxUpload int64
	// PageSize, when positive, pages the connector and connection lists.
	PageSize int
	// Now is the clock for timestamps: time.Now by default.
	Now func() time.Time
	// Invoke, when set, answers action calls in place of the echo.
	Invoke func(connector, action string, req InvokeBody) (output any, p *Problem)
	// Intercept, when set, sees every request first; returning true means it answered.
	Intercept func(w http.ResponseWriter, r *http.Request) bool

	mu          sync.Mutex
	seq         int
	requests    []Request
	connectors  map[string]*connector
	connections map[string]*connection
	subs        map[string]*Subscription
	subOrder    []string
	subSignal   chan struct{} // closed and replaced when events are queued
}

type connector struct {
	versions map[string]*version
	order    []string // upload order
	active   string
}

type version struct {
	digest   string
	size     int64
	uploaded time.Time
	manifest abi.Manifest
}

type connection struct {
	ID         string            `json:"id"`
	Connectors []string          `json:"connectors"`
	Params     map[string]any    `json:"params,omitempty"`
	Auth       map[string]any    `json:"auth"`
	Hosts      []string          `json:"hosts"`
	Status     string            `json:"status"`
	ConsentURL string            `json:"consent_url,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	secret     authBody          // kept for Secret; never answered
	secrets    map[string]string // the extra secrets
}

// authBody is the auth object of a connection request.
type authBody struct {
	Type             string   `json:"type"`
	APIKey           string   `json:"api_key,omitempty"`
	Username         string   `json:"username,omitempty"`
	Password         string   `json:"password,omitempty"`
	Grant            string   `json:"grant,omitempty"`
	ClientID         string   `json:"client_id,omitempty"`
	ClientSecret     string   `json:"client_secret,omitempty"`
	Scopes           []string `json:"scopes,omitempty"`
	AuthorizationURL string   `json:"authorization_url,omitempty"`
	TokenURL         string   `json:"token_url,omitempty"`
}

// InvokeBody is the body of an action call.
type InvokeBody struct {
	Connection string          `json:"connection,omitempty"`
	Input      json.RawMessage `json:"input"`
	Version    string          `json:"version,omitempty"`
}

// New starts a fake on loopback; it is closed when the test ends.
func New(tb testing.TB) *Server {
	s := NewServer()
	tb.Cleanup(s.Close)
	return s
}

// NewServer starts a fake on loopback, for code without a testing.TB (an Example, a
// TestMain); the caller closes it with Close.
func NewServer() *Server {
	s := &Server{
		Token:       Token,
		MaxUpload:   64 << 20,
		Now:         time.Now,
		connectors:  map[string]*connector{},
		connections: map[string]*connection{},
		subs:        map[string]*Subscription{},
		subSignal:   make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready\n")) })
	v1 := http.NewServeMux()
	v1.HandleFunc("POST /v1/connectors", s.upload)
	v1.HandleFunc("GET /v1/connectors", s.listConnectors)
	v1.HandleFunc("GET /v1/connectors/{name}", s.getConnector)
	v1.HandleFunc("GET /v1/connectors/{name}/versions/{version}", s.getVersion)
	v1.HandleFunc("DELETE /v1/connectors/{name}/versions/{version}", s.deleteVersion)
	v1.HandleFunc("PUT /v1/connectors/{name}/active", s.activate)
	v1.HandleFunc("GET /v1/connectors/{name}/actions", s.listActions)
	v1.HandleFunc("POST /v1/connectors/{name}/actions/{action}", s.invoke)
	v1.HandleFunc("POST /v1/connections", s.createConnection)
	v1.HandleFunc("GET /v1/connections", s.listConnections)
	v1.HandleFunc("GET /v1/connections/{id}", s.getConnection)
	v1.HandleFunc("PATCH /v1/connections/{id}", s.patchConnection)
	v1.HandleFunc("PUT /v1/connections/{id}/credentials", s.rotate)
	v1.HandleFunc("DELETE /v1/connections/{id}", s.deleteConnection)
	s.routeSubscriptions(v1)
	v1.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, Problem{Status: 404, Code: "not_found", Detail: "no such endpoint"})
	})
	mux.Handle("/v1/", s.auth(v1))

	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Correlation-ID")
		if id == "" {
			s.mu.Lock()
			s.seq++
			id = fmt.Sprintf("c_%d", s.seq)
			s.mu.Unlock()
			r.Header.Set("X-Correlation-ID", id)
		}
		w.Header().Set("X-Correlation-ID", id)
		if s.Intercept != nil && s.Intercept(w, r) {
			s.record(r, nil)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	return s
}

// AddConnector stores m as an uploaded and active connector version, as POST
// /v1/connectors?activate=true with [Wasm](m) would.
func (s *Server) AddConnector(m abi.Manifest) {
	b := Wasm(m)
	sum := sha256.Sum256(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.connectors[m.Name]
	if c == nil {
		c = &connector{versions: map[string]*version{}}
		s.connectors[m.Name] = c
	}
	if c.versions[m.Version] == nil {
		c.order = append(c.order, m.Version)
	}
	c.versions[m.Version] = &version{digest: "sha256:" + hex.EncodeToString(sum[:]), size: int64(len(b)), uploaded: s.Now().UTC(), manifest: m}
	c.active = m.Version
}

// AddConnection stores a ready connection id for connectors, with auth type "none", as an
// operator would have made it.
func (s *Server) AddConnection(id string, connectors ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now().UTC()
	s.connections[id] = &connection{ID: id, Connectors: connectors, Auth: map[string]any{"type": "none"},
		Hosts: []string{}, Status: "ready", CreatedAt: now, UpdatedAt: now, secret: authBody{Type: "none"}}
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// LastRequest returns the last request received; the zero Request when there is none.
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return Request{}
	}
	return s.requests[len(s.requests)-1]
}

// Secret returns the stored auth object and extra secrets of a connection, for tests that check
// what the client sent; ok is false when there is no such connection.
func (s *Server) Secret(id string) (apiKey, username, password string, secrets map[string]string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.connections[id]
	if !ok {
		return "", "", "", nil, false
	}
	return c.secret.APIKey, c.secret.Username, c.secret.Password, maps.Clone(c.secrets), true
}

func (s *Server) record(r *http.Request, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body,
	})
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.Token {
			s.record(r, nil)
			s.problem(w, r, Problem{Status: 401, Code: "unauthenticated", Detail: "missing or invalid bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// body reads the request body (capped) and records the request.
func (s *Server) body(w http.ResponseWriter, r *http.Request, max int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	s.record(r, b)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.problem(w, r, Problem{Status: 413, Code: "too_large", Detail: fmt.Sprintf("the body exceeds %d bytes", max)})
		} else {
			s.problem(w, r, Problem{Status: 400, Code: "invalid_request", Detail: err.Error()})
		}
		return nil, false
	}
	return b, true
}

// decode reads a JSON body strictly into v.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, ok := s.body(w, r, 1<<20)
	if !ok {
		return false
	}
	if mt := r.Header.Get("Content-Type"); mt != "application/json" {
		s.problem(w, r, Problem{Status: 415, Code: "unsupported_media_type", Detail: "want application/json, got " + mt})
		return false
	}
	if err := abi.DecodeStrict(b, v); err != nil {
		s.problem(w, r, Problem{Status: 400, Code: "invalid_request", Detail: err.Error()})
		return false
	}
	return true
}

func (s *Server) problem(w http.ResponseWriter, r *http.Request, p Problem) {
	src := p.Source
	if src == "" {
		src = "plugboard"
	}
	doc := map[string]any{
		"type": "about:blank", "title": http.StatusText(p.Status), "status": p.Status,
		"detail": p.Detail, "code": p.Code, "correlation_id": r.Header.Get("X-Correlation-ID"), "source": src,
	}
	if len(p.Errors) > 0 {
		doc["errors"] = p.Errors
	}
	if p.RetryAfter != "" {
		w.Header().Set("Retry-After", p.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(doc)
}

func reply(w http.ResponseWriter, status int, doc any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(doc)
}

func (s *Server) versionDoc(name, ver string) map[string]any {
	c := s.connectors[name]
	v := c.versions[ver]
	return map[string]any{
		"name": name, "version": ver, "digest": v.digest, "size": v.size,
		"active": c.active == ver, "uploaded_at": v.uploaded, "manifest": v.manifest,
	}
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	b, ok := s.body(w, r, s.MaxUpload)
	if !ok {
		return
	}
	if !bytes.HasPrefix(b, wasmHeader) {
		s.problem(w, r, Problem{Status: 400, Code: "invalid_wasm", Detail: "invalid_wasm: not a WebAssembly binary (bad magic number)"})
		return
	}
	var m abi.Manifest
	if err := json.Unmarshal(b[len(wasmHeader):], &m); err != nil {
		s.problem(w, r, Problem{Status: 400, Code: "describe_failed", Detail: "describe_failed: " + err.Error()})
		return
	}
	if m.Name == "" || !check.IsSemVer(m.Version) {
		s.problem(w, r, Problem{Status: 400, Code: "invalid_manifest", Detail: "invalid_manifest: name and a SemVer version are required"})
		return
	}
	sum := sha256.Sum256(b)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.connectors[m.Name]
	if c == nil {
		c = &connector{versions: map[string]*version{}}
		s.connectors[m.Name] = c
	}
	status := http.StatusCreated
	if v, ok := c.versions[m.Version]; ok {
		if v.digest != digest {
			s.problem(w, r, Problem{Status: 409, Code: "version_exists",
				Detail: fmt.Sprintf("%s %s is stored with other bytes (%s)", m.Name, m.Version, v.digest)})
			return
		}
		status = http.StatusOK
	} else {
		c.versions[m.Version] = &version{digest: digest, size: int64(len(b)), uploaded: s.Now().UTC(), manifest: m}
		c.order = append(c.order, m.Version)
	}
	if c.active == "" || (r.URL.Query().Get("activate") == "true" && status == http.StatusCreated) {
		c.active = m.Version
	}
	reply(w, status, s.versionDoc(m.Name, m.Version))
}

// page returns the items of one page and the next cursor.
func page[T any](r *http.Request, items []T, size int) ([]T, any) {
	if size <= 0 {
		return items, nil
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
	start = min(start, len(items))
	end := min(start+size, len(items))
	if end == len(items) {
		return items[start:end], nil
	}
	return items[start:end], strconv.Itoa(end)
}

func (s *Server) listConnectors(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	var docs []map[string]any
	for _, name := range slices.Sorted(maps.Keys(s.connectors)) {
		c := s.connectors[name]
		docs = append(docs, map[string]any{
			"name": name, "title": c.versions[c.active].manifest.Title,
			"active_version": c.active, "versions": c.order,
		})
	}
	items, next := page(r, docs, s.PageSize)
	reply(w, 200, map[string]any{"connectors": orEmpty(items), "next": next})
}

func versionNotFound(name, version string) Problem {
	return Problem{Status: 404, Code: "version_not_found", Detail: fmt.Sprintf("%s has no version %q", name, version)}
}

// lookup finds a connector, or answers 404.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, name string) *connector {
	c := s.connectors[name]
	if c == nil {
		s.problem(w, r, Problem{Status: 404, Code: "connector_not_found", Detail: fmt.Sprintf("no connector %q", name)})
	}
	return c
}

func (s *Server) getConnector(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("name")
	c := s.lookup(w, r, name)
	if c == nil {
		return
	}
	var versions []map[string]any
	for _, v := range c.order {
		versions = append(versions, s.versionDoc(name, v))
	}
	m := c.versions[c.active].manifest
	reply(w, 200, map[string]any{"name": name, "title": m.Title, "active_version": c.active, "manifest": m, "versions": versions})
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ver := r.PathValue("name"), r.PathValue("version")
	c := s.lookup(w, r, name)
	if c == nil {
		return
	}
	if c.versions[ver] == nil {
		s.problem(w, r, versionNotFound(name, ver))
		return
	}
	reply(w, 200, s.versionDoc(name, ver))
}

func (s *Server) deleteVersion(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ver := r.PathValue("name"), r.PathValue("version")
	c := s.lookup(w, r, name)
	if c == nil {
		return
	}
	switch {
	case c.versions[ver] == nil:
		s.problem(w, r, versionNotFound(name, ver))
	case c.active == ver:
		s.problem(w, r, Problem{Status: 409, Code: "version_active", Detail: fmt.Sprintf("%s %s is the active version", name, ver)})
	default:
		delete(c.versions, ver)
		c.order = slices.DeleteFunc(c.order, func(v string) bool { return v == ver })
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) activate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Version string `json:"version"`
	}
	if !s.decode(w, r, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("name")
	c := s.lookup(w, r, name)
	if c == nil {
		return
	}
	next := c.versions[body.Version]
	if next == nil {
		s.problem(w, r, versionNotFound(name, body.Version))
		return
	}
	var added []string
	for _, h := range next.manifest.Hosts {
		if !slices.Contains(c.versions[c.active].manifest.Hosts, h) {
			added = append(added, h)
		}
	}
	if len(added) > 0 && r.URL.Query().Get("approve") != "capabilities" {
		s.problem(w, r, Problem{Status: 409, Code: "capabilities_changed",
			Detail: "the new version asks for more: hosts +" + strings.Join(added, ", +")})
		return
	}
	c.active = body.Version
	reply(w, 200, s.versionDoc(name, body.Version))
}

func (s *Server) listActions(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.lookup(w, r, r.PathValue("name"))
	if c == nil {
		return
	}
	reply(w, 200, map[string]any{"actions": orEmpty(c.versions[c.active].manifest.Actions)})
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	var req InvokeBody
	if !s.decode(w, r, &req) {
		return
	}
	name, action := r.PathValue("name"), r.PathValue("action")
	s.mu.Lock()
	c := s.lookup(w, r, name)
	if c == nil {
		s.mu.Unlock()
		return
	}
	ver := c.active
	if req.Version != "" {
		ver = req.Version
	}
	v := c.versions[ver]
	var p *Problem
	var a *abi.Action
	if v == nil {
		p = new(versionNotFound(name, ver))
	} else if a, _ = v.manifest.Action(action); a == nil {
		p = &Problem{Status: 404, Code: "action_not_found", Detail: fmt.Sprintf("%s has no action %q", name, action)}
	} else if conn := s.connections[req.Connection]; req.Connection != "" && conn == nil {
		p = &Problem{Status: 404, Code: "connection_not_found", Detail: fmt.Sprintf("no connection %q", req.Connection)}
	} else if conn != nil && !slices.Contains(conn.Connectors, name) {
		p = &Problem{Status: 403, Code: "connection_not_allowed", Detail: fmt.Sprintf("connection %q is not bound to %s", req.Connection, name)}
	} else {
		p = checkRequired(a.InputSchema, req.Input)
	}
	s.mu.Unlock()
	if p != nil {
		s.problem(w, r, *p)
		return
	}
	var out any = req.Input
	if s.Invoke != nil {
		if out, p = s.Invoke(name, action, req); p != nil {
			s.problem(w, r, *p)
			return
		}
	}
	reply(w, 200, map[string]any{"output": out, "connector": name, "version": ver, "correlation_id": r.Header.Get("X-Correlation-ID")})
}

// checkRequired checks input against the "required" list of an object schema.
func checkRequired(schema, input json.RawMessage) *Problem {
	var sch struct {
		Required []string `json:"required"`
	}
	_ = json.Unmarshal(schema, &sch)
	var in map[string]json.RawMessage
	if err := json.Unmarshal(input, &in); err != nil || in == nil {
		return &Problem{Status: 400, Code: "invalid_input", Detail: "input: must be an object",
			Errors: []FieldError{{Path: "", Message: "must be an object"}}}
	}
	var errs []FieldError
	for _, name := range sch.Required {
		if _, ok := in[name]; !ok {
			errs = append(errs, FieldError{Path: "/" + name, Message: "missing property"})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &Problem{Status: 400, Code: "invalid_input", Detail: "input" + strings.ReplaceAll(errs[0].Path, "/", ".") + ": missing property", Errors: errs}
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID         string            `json:"id"`
		Connectors []string          `json:"connectors"`
		Params     map[string]any    `json:"params,omitempty"`
		Auth       authBody          `json:"auth"`
		Secrets    map[string]string `json:"secrets,omitempty"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.checkConnection(req.ID, req.Connectors, req.Auth); p != nil {
		s.problem(w, r, *p)
		return
	}
	now := s.Now().UTC()
	c := &connection{
		ID: req.ID, Connectors: req.Connectors, Params: req.Params, Status: "ready",
		CreatedAt: now, UpdatedAt: now, secret: req.Auth, secrets: req.Secrets,
	}
	for _, name := range req.Connectors {
		c.Hosts = append(c.Hosts, s.connectors[name].versions[s.connectors[name].active].manifest.Hosts...)
	}
	c.Auth = publicAuth(req.Auth)
	if req.Auth.Type == "oauth2" && req.Auth.Grant == "authorization_code" {
		c.Status = "pending_consent"
		c.ConsentURL = s.URL + "/v1/oauth/authorize?state=st_" + req.ID
	}
	s.connections[req.ID] = c
	reply(w, 201, c)
}

func (s *Server) checkConnection(id string, connectors []string, auth authBody) *Problem {
	if id == "" || len(connectors) == 0 {
		return &Problem{Status: 400, Code: "invalid_request", Detail: "id and connectors are required"}
	}
	if s.connections[id] != nil {
		return &Problem{Status: 409, Code: "connection_exists", Detail: fmt.Sprintf("connection %q exists", id)}
	}
	for _, name := range connectors {
		if s.connectors[name] == nil {
			return &Problem{Status: 404, Code: "connector_not_found", Detail: fmt.Sprintf("no connector %q", name)}
		}
	}
	return checkAuth(auth)
}

func checkAuth(a authBody) *Problem {
	bad := func(d string) *Problem { return &Problem{Status: 400, Code: "invalid_request", Detail: d} }
	switch a.Type {
	case "none":
	case "api_key":
		if a.APIKey == "" {
			return bad("auth.api_key is required")
		}
	case "basic":
		if a.Username == "" || a.Password == "" {
			return bad("auth.username and auth.password are required")
		}
	case "oauth2":
		if a.ClientID == "" || a.Grant == "" {
			return bad("auth.grant and auth.client_id are required")
		}
	default:
		return bad(fmt.Sprintf("auth.type %q is not one of none, api_key, basic, oauth2", a.Type))
	}
	return nil
}

// publicAuth is the auth object without its secrets.
func publicAuth(a authBody) map[string]any {
	m := map[string]any{"type": a.Type}
	if a.Type == "oauth2" {
		m["grant"], m["client_id"], m["scopes"] = a.Grant, a.ClientID, a.Scopes
	}
	if a.Type == "basic" {
		m["username"] = a.Username
	}
	return m
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	var docs []*connection
	for _, id := range slices.Sorted(maps.Keys(s.connections)) {
		docs = append(docs, s.connections[id])
	}
	items, next := page(r, docs, s.PageSize)
	reply(w, 200, map[string]any{"connections": orEmpty(items), "next": next})
}

// connection finds a connection, or answers 404.
func (s *Server) connection(w http.ResponseWriter, r *http.Request) *connection {
	c := s.connections[r.PathValue("id")]
	if c == nil {
		s.problem(w, r, Problem{Status: 404, Code: "connection_not_found", Detail: fmt.Sprintf("no connection %q", r.PathValue("id"))})
	}
	return c
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.connection(w, r); c != nil {
		reply(w, 200, c)
	}
}

func (s *Server) patchConnection(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Params     map[string]any `json:"params"`
		Connectors []string       `json:"connectors"`
		Hosts      []string       `json:"hosts"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.connection(w, r)
	if c == nil {
		return
	}
	if req.Params != nil {
		c.Params = req.Params
	}
	if req.Connectors != nil {
		c.Connectors = req.Connectors
	}
	if req.Hosts != nil {
		c.Hosts = req.Hosts
	}
	c.UpdatedAt = s.Now().UTC()
	reply(w, 200, c)
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Auth    authBody          `json:"auth"`
		Secrets map[string]string `json:"secrets,omitempty"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.connection(w, r)
	if c == nil {
		return
	}
	if p := checkAuth(req.Auth); p != nil {
		s.problem(w, r, *p)
		return
	}
	c.secret, c.Auth, c.UpdatedAt = req.Auth, publicAuth(req.Auth), s.Now().UTC()
	if req.Secrets != nil {
		c.secrets = req.Secrets
	}
	reply(w, 200, c)
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.connection(w, r); c != nil {
		delete(s.connections, c.ID)
		w.WriteHeader(http.StatusNoContent)
	}
}

// orEmpty makes a nil list encode as [] rather than null.
func orEmpty[T any](items []T) []T {
	if items == nil {
		return []T{}
	}
	return items
}

// SignWebhook returns the headers Plugboard sends with a push of body to a webhook
// subscription whose signing secret is secret (webhook-id id, webhook-timestamp at, and
// webhook-signature, per Standard Webhooks), plus Content-Type: for tests of a receiver that
// checks pushes with plugboard.VerifyWebhook. It panics when secret is not "whsec_" and base64.
func SignWebhook(secret, id string, at time.Time, body []byte) http.Header {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		panic("plugboardtest: SignWebhook: the secret is not whsec_ and base64")
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return h
}
