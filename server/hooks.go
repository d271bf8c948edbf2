package server

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry/storage"
)

// maxHookBody caps an inbound webhook body.
const maxHookBody = 1 << 20

// /hooks/{token}, any method, no bearer token: the unguessable token names the webhook source.
// The plugin's receive step verifies the request (signatures), answers handshakes, and turns
// it into events, which are committed and fanned out before the upstream gets its answer.
func (s *Server) receiveHook(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	token := mux.Vars(r)["token"]
	src, err := s.st.SourceByHookToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return newProblem(http.StatusNotFound, codeNotFound, "no webhook source has this URL (it was stopped when its last subscription was deleted)")
	}
	if err != nil {
		return err
	}
	if src.Status == storage.SourceStopping {
		// The last subscriber left and the upstream unsubscribe is being retried: tell the
		// sender (410 makes many services drop the registration themselves).
		return newProblem(http.StatusGone, codeNotFound, "this webhook source has no subscribers any more; stop sending to it")
	}
	body, err := readBody(r, maxHookBody)
	if err != nil {
		return err
	}
	req := &abi.InboundRequest{Method: r.Method, Path: r.URL.Path, Query: map[string]string{}, Headers: map[string]string{},
		BodyBase64: base64.StdEncoding.EncodeToString(body)}
	for k, vs := range r.URL.Query() {
		req.Query[k] = strings.Join(vs, ",")
	}
	for k, vs := range r.Header {
		if k == "Authorization" || k == "Cookie" {
			continue // never the caller's credentials for Plugboard itself
		}
		sep := ", "
		if k == "Set-Cookie" {
			sep = "\n"
		}
		req.Headers[k] = strings.Join(vs, sep)
	}
	res, err := s.trig.Receive(ctx, src, req, correlationID(ctx))
	if err != nil {
		return err
	}
	status, body2 := http.StatusOK, ""
	if res.Response != nil {
		if res.Response.Status >= 200 && res.Response.Status <= 599 {
			status = res.Response.Status
		}
		for k, v := range res.Response.Headers {
			if isHopHeader(k) {
				continue
			}
			w.Header().Set(k, v)
		}
		body2 = res.Response.Body
	}
	if w.Header().Get("Content-Type") == "" && body2 != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body2))
	return nil
}

// isHopHeader names headers a plugin's handshake answer may not set.
func isHopHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Content-Length", "Transfer-Encoding", "Keep-Alive", "Upgrade", "Trailer", "Set-Cookie":
		return true
	}
	return false
}
