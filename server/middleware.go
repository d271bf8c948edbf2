package server

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry/storage"
)

type ctxKey int

const correlationKey ctxKey = iota

func correlationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey).(string)
	return id
}

var (
	correlationRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	traceparentRE = regexp.MustCompile(`^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$`)
	b32           = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// newCorrelationID returns "c_" and 26 random base32 characters.
func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "c_" + strings.ToLower(b32.EncodeToString(b[:]))
}

// withCorrelation keeps a caller's X-Correlation-ID (or the trace id of a W3C traceparent),
// otherwise makes one, and echoes it in the response header.
func withCorrelation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Correlation-ID")
		if !correlationRE.MatchString(id) {
			id = ""
			if m := traceparentRE.FindStringSubmatch(r.Header.Get("traceparent")); m != nil {
				id = m[1]
			}
		}
		if id == "" {
			id = newCorrelationID()
		}
		w.Header().Set("X-Correlation-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), correlationKey, id)))
	})
}

// statusWriter records the status for the access log and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withLogAndRecover logs each request with its correlation id and turns a handler panic into a
// 500 problem instead of a dropped connection.
func (s *Server) withLogAndRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "panic", fmt.Sprint(v), "correlation_id", correlationID(r.Context()), "path", r.URL.Path)
				if sw.status == 0 {
					writeProblem(sw, r, newProblem(http.StatusInternalServerError, codeInternal, "internal error; the server log has the details under this correlation id"))
				}
			}
			s.log.LogAttrs(r.Context(), slog.LevelDebug, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", sw.status), slog.Duration("duration", time.Since(start)), slog.String("correlation_id", correlationID(r.Context())))
		}()
		next.ServeHTTP(sw, r)
	})
}

// readBody reads a request body up to max bytes; over it the error is a 413 problem.
func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, problemf(http.StatusRequestEntityTooLarge, codeTooLarge, "request body of %d bytes is over the %d-byte limit", r.ContentLength, max)
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, max))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, problemf(http.StatusRequestEntityTooLarge, codeTooLarge, "request body is over the %d-byte limit", max)
	}
	if err != nil {
		return nil, problemf(http.StatusBadRequest, codeInvalidRequest, "reading request body: %v", err)
	}
	return b, nil
}

// decodeJSON reads a JSON request body strictly: unknown fields are a 400 naming the field.
func decodeJSON(r *http.Request, max int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return problemf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "send the body as application/json, not %s", ct)
	}
	b, err := readBody(r, max)
	if err != nil {
		return err
	}
	switch t := strings.TrimSpace(string(b)); {
	case t == "":
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "the request body is empty; send a JSON object")
	case t[0] != '{' && json.Valid([]byte(t)):
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "the request body must be a JSON object, not "+jsonKind(t)+"; send {...} with the fields docs/API.md lists")
	}
	return decodeStrictProblem(b, v)
}

// jsonKind names the kind of the valid JSON value t, for an error message.
func jsonKind(t string) string {
	switch t[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// decodeStrictProblem decodes b strictly into v; a failure is a 400 naming what is wrong.
func decodeStrictProblem(b []byte, v any) error {
	if err := abi.DecodeStrict(b, v); err != nil {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, strings.TrimPrefix(err.Error(), "decoding JSON: "))
	}
	return nil
}

// freshReads marks the reads of GET /v1/... with storage.WithFresh: a management read sees a
// write another node acknowledged a moment ago (API.md "Cluster", reads after writes), at the
// cost of a store round trip. Action calls, MCP and event pulls keep the watched in-memory
// copies, so the request path does not wait on the network.
func freshReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/") {
			r = r.WithContext(storage.WithFresh(r.Context()))
		}
		next.ServeHTTP(w, r)
	})
}
