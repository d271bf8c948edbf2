package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
)

type invokeRequest struct {
	Connection string          `json:"connection,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Version    string          `json:"version,omitempty"`
}

type invokeResponse struct {
	Output        json.RawMessage `json:"output"`
	Connector     string          `json:"connector"`
	Version       string          `json:"version"`
	CorrelationID string          `json:"correlation_id"`
}

// POST /v1/connectors/{name}/actions/{action}
func (s *Server) invoke(w http.ResponseWriter, r *http.Request) error {
	vars := mux.Vars(r)
	var req invokeRequest
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	if err := s.authorizeTarget(r.Context(), vars["name"], req.Connection); err != nil {
		return err
	}
	res, err := s.runAction(r.Context(), actionCall{Connector: vars["name"], Action: vars["action"],
		Connection: req.Connection, Version: req.Version, Input: req.Input, CorrelationID: correlationID(r.Context())})
	if res != nil {
		w.Header().Set("X-Plugboard-Usage", res.Usage) // on errors too (invocations.go)
	}
	if err != nil {
		return err
	}
	w.Header().Set("X-Plugboard-Version", res.Version)
	writeJSON(w, http.StatusOK, invokeResponse{Output: res.Output, Connector: vars["name"], Version: res.Version, CorrelationID: res.CorrelationID})
	return nil
}

// actionCall is one action call, from the HTTP API or from an MCP tools/call: both run
// [Server.runAction], so they resolve, bind, validate, run and count alike.
type actionCall struct {
	Connector, Action string
	// Connection is the connection id; "" for a call without one.
	Connection string
	// Version pins a stored version; "" means the active one.
	Version string
	Input   json.RawMessage
	// CorrelationID is passed to the plugin.
	CorrelationID string
}

// actionResult is the outcome of an action call. [Server.runAction] returns one for every call,
// failed ones included; Output is set only for a call that returned output.
type actionResult struct {
	Output        json.RawMessage
	Version       string // the version the call ran on
	CorrelationID string
	// Usage is the call's X-Plugboard-Usage receipt (invocations.go).
	Usage string
}

// runAction is the action path of DESIGN.md "Flow of one action call": resolve the version and
// the action, check the connection is bound to the connector, validate the input, run the call
// under a lease and record its metrics and its invocation log record. A guest error comes back
// as a *Problem with source "plugin". The result is never nil: a failed call's carries its
// usage receipt.
func (s *Server) runAction(ctx context.Context, c actionCall) (*actionResult, error) {
	start := time.Now()
	var ran ranCall
	res, err := s.execAction(ctx, c, &ran)
	inv := newInvocation(c, ran.version, ran.role, ran.report, start, time.Since(start), err)
	if p, ok := ctx.Value(principalKey{}).(*principal); ok && p != nil {
		inv.Caller = p.KeyID // who: allowed action calls are in this log, not in the audit log
	}
	s.invlog.record(inv)
	s.observeCall(ctx, inv, ran.report)
	if res == nil {
		res = &actionResult{Version: ran.version, CorrelationID: c.CorrelationID}
	}
	res.Usage = inv.usageHeader()
	return res, err
}

// ranCall is what execAction learned about a call, for its invocation record: the version and
// role it ran on, and the host's report when the guest was called.
type ranCall struct {
	version, role string
	report        *host.Report
}

// execAction resolves, checks and runs one call (runAction).
func (s *Server) execAction(ctx context.Context, c actionCall, ran *ranCall) (*actionResult, error) {
	name, actionName := c.Connector, c.Action
	// The prepared call holds the version (active, canary or pinned) for the whole call:
	// validation and invocation run on the same one, and a swap meanwhile does not release it.
	call, err := s.reg.Prepare(ctx, registry.CallSpec{Connector: name, Version: c.Version, Connection: c.Connection,
		CorrelationID: c.CorrelationID, Action: actionName})
	if err != nil {
		return nil, err
	}
	defer call.Release()
	v := call.Version()
	ran.version, ran.role = v.Info.Version, call.Role()
	input := c.Input
	if len(input) == 0 || string(input) == "null" {
		input = json.RawMessage(`{}`)
	}
	if errs := v.InputSchema(actionName).Validate(input); errs != nil {
		p := newProblem(http.StatusBadRequest, codeInvalidInput, describeSchemaErrors("input", errs))
		p.Errors = errs
		return nil, p
	}

	start := time.Now()
	res, rep, err := call.Invoke(ctx, input)
	ran.report = rep
	version := v.Info.Version
	code := "ok"
	defer func() {
		s.metrics.add("plugboard_action_calls_total", labels("connector", name, "version", version, "action", actionName, "code", code), 1)
		s.metrics.observe("plugboard_action_duration_seconds", labels("connector", name, "version", version, "action", actionName), time.Since(start))
		s.metrics.observe("plugboard_version_call_duration_seconds", labels("connector", name, "version", version, "role", call.Role()), time.Since(start))
		if rep != nil {
			for _, o := range rep.Outbound {
				st := fmt.Sprint(o.Status)
				if o.Err != "" {
					st = o.Err
				}
				s.metrics.add("plugboard_egress_requests_total", labels("connector", name, "origin", o.Origin, "status", st), 1)
			}
		}
	}()
	if err != nil {
		code = toProblem(err).Code
		return nil, err
	}
	if res.Error != nil {
		p := pluginProblem(res.Error)
		code = p.Code
		if p.refusal { // configuration to change, not a bug: WARN, where a plugin's internal error is an ERROR
			s.log.Warn("the host refused a connector's request", "connector", name, "version", version, "action", actionName,
				"code", p.Code, "detail", p.Detail, "correlation_id", c.CorrelationID)
		}
		return nil, p
	}
	return &actionResult{Output: res.Output, Version: version, CorrelationID: c.CorrelationID}, nil
}

// describeSchemaErrors renders schema errors as "input.title: missing property; ...".
func describeSchemaErrors(root string, errs []check.SchemaError) string {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		path := root + strings.ReplaceAll(e.Path, "/", ".")
		parts = append(parts, path+": "+e.Message)
	}
	return strings.Join(parts, "; ")
}
