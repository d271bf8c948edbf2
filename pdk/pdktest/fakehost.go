package pdktest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plugboard/plugboard/abi"
)

// http is the fake plugboard_http: ABI.md section 5 steps 1, 3, 4 and 5. It does not refuse
// private addresses (step 2), so tests can use httptest servers on loopback.
func (c *callHost) http(request []byte) abi.HTTPResponse {
	fail := func(code, format string, args ...any) abi.HTTPResponse {
		return abi.HTTPResponse{Error: hostErr(code, format, args...)}
	}
	var req abi.HTTPRequest
	if err := abi.DecodeStrict(request, &req); err != nil {
		return fail(abi.CodeInvalidRequest, "%v", err)
	}
	c.h.mu.Lock()
	c.h.requests = append(c.h.requests, req)
	c.h.mu.Unlock()

	c.requests++
	if c.requests > c.h.opts.MaxRequests {
		return fail(abi.CodeTooManyRequests, "more than %d requests in one call", c.h.opts.MaxRequests)
	}
	if req.Body != nil && req.BodyBase64 != nil {
		return fail(abi.CodeInvalidRequest, "body and body_base64 are exclusive")
	}
	if req.Method == "" || strings.ContainsAny(req.Method, " \t\r\n") {
		return fail(abi.CodeInvalidRequest, "invalid method %q", req.Method)
	}
	var body []byte
	switch {
	case req.Body != nil:
		body = []byte(*req.Body)
	case req.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*req.BodyBase64)
		if err != nil {
			return fail(abi.CodeInvalidRequest, "body_base64: %v", err)
		}
		body = b
	}
	for name := range req.Headers {
		if name != http.CanonicalHeaderKey(name) {
			return fail(abi.CodeInvalidRequest, "header name %q is not in canonical form", name)
		}
	}
	auth := req.Auth == nil || *req.Auth

	ctx, cancel := context.WithDeadline(context.Background(), c.deadline)
	defer cancel()
	if req.TimeoutMS > 0 {
		var cancel2 context.CancelFunc
		ctx, cancel2 = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel2()
	}

	method, target := strings.ToUpper(req.Method), req.URL
	firstOrigin, _ := abi.OriginOfURL(req.URL)
	// As the real host: credentials go only to the first origin, and only while every hop has
	// stayed on it; once a redirect leaves, neither they nor the guest's own Authorization and
	// Cookie headers are sent again, not even on a way back.
	stayed := true
	for hop := 0; ; hop++ {
		if hop > 10 {
			return fail(abi.CodeTooManyRedirects, "more than 10 redirects")
		}
		u, err := url.Parse(target)
		if err != nil || !u.IsAbs() || u.Host == "" {
			return fail(abi.CodeInvalidRequest, "%q is not an absolute URL", target)
		}
		origin, err := abi.OriginOfURL(target)
		if err != nil {
			return fail(abi.CodeInvalidRequest, "%v", err)
		}
		if !c.h.allowed(origin) {
			return fail(abi.CodeHostNotAllowed, "%s is not one of the connector's hosts", origin)
		}
		hr, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
		if err != nil {
			return fail(abi.CodeInvalidRequest, "%v", err)
		}
		if body == nil {
			hr.Body = nil
			hr.ContentLength = 0
		}
		if origin != firstOrigin {
			stayed = false
		}
		for k, v := range req.Headers {
			if !stayed && (k == "Authorization" || k == "Cookie") {
				continue
			}
			hr.Header.Set(k, v)
		}
		if auth && stayed {
			c.h.inject(hr)
		}
		resp, err := c.h.client.Do(hr)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				return fail(abi.CodeTimeout, "%v", err)
			}
			return fail(abi.CodeNetwork, "%v", err)
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" && resp.StatusCode != 304 {
			resp.Body.Close()
			next, err := u.Parse(loc)
			if err != nil {
				return fail(abi.CodeNetwork, "redirect to an invalid Location %q", loc)
			}
			target = next.String()
			if resp.StatusCode == 303 || (resp.StatusCode == 301 || resp.StatusCode == 302) && method == "POST" {
				method, body = "GET", nil
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, c.h.opts.MaxResponseBytes+1))
		resp.Body.Close()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				return fail(abi.CodeTimeout, "%v", err)
			}
			return fail(abi.CodeNetwork, "%v", err)
		}
		if int64(len(data)) > c.h.opts.MaxResponseBytes {
			return fail(abi.CodeTooLarge, "the response body exceeds %d bytes", c.h.opts.MaxResponseBytes)
		}
		out := abi.HTTPResponse{Status: resp.StatusCode, Headers: map[string]string{}}
		for k, vs := range resp.Header {
			sep := ", "
			if k == "Set-Cookie" {
				sep = "\n"
			}
			out.Headers[k] = strings.Join(vs, sep)
		}
		if utf8.Valid(data) {
			out.Body = string(data)
		} else {
			out.BodyBase64 = base64.StdEncoding.EncodeToString(data)
		}
		return out
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// allowed reports whether origin matches the manifest's hosts and the connection's.
func (h *Harness) allowed(origin string) bool {
	if !abi.AnyOriginMatches(h.origins, origin) {
		return false
	}
	if h.opts.AllowedOrigins == nil {
		return true
	}
	var conn []string
	for _, o := range h.opts.AllowedOrigins {
		if n, err := abi.NormalizeOrigin(o, true); err == nil {
			conn = append(conn, n)
		}
	}
	return abi.AnyOriginMatches(conn, origin)
}

// inject adds the connection's credentials to r as the manifest's auth settings say,
// replacing a header of the same name the guest set.
func (h *Harness) inject(r *http.Request) {
	cred := h.opts.Credential
	switch cred.authType() {
	case abi.AuthAPIKey:
		k := h.manifest.Auth.APIKey
		if k == nil {
			return
		}
		if k.In == "query" {
			q := r.URL.Query()
			q.Set(k.Name, k.Prefix+cred.APIKey)
			r.URL.RawQuery = q.Encode()
		} else {
			r.Header.Set(k.Name, k.Prefix+cred.APIKey)
		}
	case abi.AuthBasic:
		r.SetBasicAuth(cred.Username, cred.Password)
	case abi.AuthOAuth2:
		r.Header.Set("Authorization", "Bearer "+cred.AccessToken)
	}
}

// credential is the fake plugboard_credential.
func (c *callHost) credential(request []byte) abi.CredentialResponse {
	fail := func(code, format string, args ...any) abi.CredentialResponse {
		return abi.CredentialResponse{Error: hostErr(code, format, args...)}
	}
	var req abi.CredentialRequest
	if err := abi.DecodeStrict(request, &req); err != nil {
		return fail(abi.CodeInvalidRequest, "%v", err)
	}
	secret, ok := c.h.opts.Credential.field(req.Field)
	switch req.Op {
	case abi.CredentialHMACSHA256:
		if !ok {
			return fail(abi.CodeInvalidRequest, "the connection has no secret field %q", req.Field)
		}
		data, err := base64.StdEncoding.DecodeString(req.DataBase64)
		if err != nil {
			return fail(abi.CodeInvalidRequest, "data_base64: %v", err)
		}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(data)
		return abi.CredentialResponse{MACBase64: base64.StdEncoding.EncodeToString(m.Sum(nil))}
	case abi.CredentialReveal:
		var listed bool
		if caps := c.h.manifest.Capabilities; caps != nil {
			listed = slices.Contains(caps.Reveal, req.Field)
		}
		if !listed || !slices.Contains(c.h.opts.ApprovedReveal, req.Field) {
			return fail(abi.CodeDenied, "revealing %q is not allowed", req.Field)
		}
		if !ok {
			return fail(abi.CodeInvalidRequest, "the connection has no secret field %q", req.Field)
		}
		return abi.CredentialResponse{Value: secret}
	}
	return fail(abi.CodeInvalidRequest, "unknown op %q", req.Op)
}

// timer is the fake plugboard_timer. Sleep does not block.
func (c *callHost) timer(request []byte) abi.TimerResponse {
	fail := func(code, format string, args ...any) abi.TimerResponse {
		return abi.TimerResponse{Error: hostErr(code, format, args...)}
	}
	var req abi.TimerRequest
	if err := abi.DecodeStrict(request, &req); err != nil {
		return fail(abi.CodeInvalidRequest, "%v", err)
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	switch req.Op {
	case abi.TimerSet:
		switch {
		case req.Name == "":
			return fail(abi.CodeInvalidRequest, "name is required")
		case req.DelayMS < abi.TimerMinDelayMS:
			return fail(abi.CodeInvalidRequest, "delay_ms must be at least %d", abi.TimerMinDelayMS)
		case len(h.timers) >= abi.TimerMaxPerScope:
			return fail(abi.CodeTooLarge, "at most %d timers may be pending", abi.TimerMaxPerScope)
		}
		h.timerSeq++
		id := fmt.Sprintf("t_%d", h.timerSeq)
		h.timers = append(h.timers, Timer{ID: id, Name: req.Name, Delay: time.Duration(req.DelayMS) * time.Millisecond, Payload: req.Payload})
		return abi.TimerResponse{ID: id}
	case abi.TimerCancel:
		h.timers = slices.DeleteFunc(h.timers, func(t Timer) bool { return t.ID == req.ID })
		return abi.TimerResponse{}
	case abi.TimerSleep:
		d := time.Duration(req.MS) * time.Millisecond
		if d < 0 {
			return fail(abi.CodeInvalidRequest, "ms must not be negative")
		}
		if time.Now().Add(h.slept + d).After(c.deadline) {
			return fail(abi.CodeDeadline, "sleeping %v would pass the call's deadline", d)
		}
		h.slept += d
		return abi.TimerResponse{}
	}
	return fail(abi.CodeInvalidRequest, "unknown op %q", req.Op)
}

// kv is the fake plugboard_kv, with the limits of ABI.md section 5.
func (c *callHost) kv(request []byte) abi.KVResponse {
	fail := func(code, format string, args ...any) abi.KVResponse {
		return abi.KVResponse{Error: hostErr(code, format, args...)}
	}
	var req abi.KVRequest
	if err := abi.DecodeStrict(request, &req); err != nil {
		return fail(abi.CodeInvalidRequest, "%v", err)
	}
	if req.Key == "" {
		return fail(abi.CodeInvalidRequest, "key is required")
	}
	if len(req.Key) > abi.KVMaxKeyBytes {
		return fail(abi.CodeTooLarge, "the key exceeds %d bytes", abi.KVMaxKeyBytes)
	}
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for k, e := range h.kv { // expire lazily
		if !e.expires.IsZero() && !now.Before(e.expires) {
			h.kvBytes -= len(k) + len(e.value)
			delete(h.kv, k)
		}
	}
	switch req.Op {
	case abi.KVGet:
		e, ok := h.kv[req.Key]
		found := ok
		if !ok {
			return abi.KVResponse{Found: &found}
		}
		return abi.KVResponse{Found: &found, Value: e.value}
	case abi.KVSet:
		if len(req.Value) == 0 || !json.Valid(req.Value) {
			return fail(abi.CodeInvalidRequest, "value must be JSON")
		}
		if len(req.Value) > abi.KVMaxValueBytes {
			return fail(abi.CodeTooLarge, "the value exceeds %d bytes", abi.KVMaxValueBytes)
		}
		if req.TTLS < 0 {
			return fail(abi.CodeInvalidRequest, "ttl_s must not be negative")
		}
		old, had := h.kv[req.Key]
		size := h.kvBytes + len(req.Key) + len(req.Value)
		if had {
			size -= len(req.Key) + len(old.value)
		}
		if size > abi.KVMaxScopeBytes {
			return fail(abi.CodeTooLarge, "the scope would exceed %d bytes", abi.KVMaxScopeBytes)
		}
		e := kvEntry{value: append(json.RawMessage(nil), req.Value...)}
		if req.TTLS > 0 {
			e.expires = now.Add(time.Duration(req.TTLS) * time.Second)
		}
		h.kv[req.Key] = e
		h.kvBytes = size
		return abi.KVResponse{}
	case abi.KVDelete:
		if e, ok := h.kv[req.Key]; ok {
			h.kvBytes -= len(req.Key) + len(e.value)
			delete(h.kv, req.Key)
		}
		return abi.KVResponse{}
	}
	return fail(abi.CodeInvalidRequest, "unknown op %q", req.Op)
}
