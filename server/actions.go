package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/abi"
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
	ctx := r.Context()
	vars := mux.Vars(r)
	name, actionName := vars["name"], vars["action"]
	var req invokeRequest
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	v, err := s.reg.Resolve(ctx, name, req.Version)
	if err != nil {
		return err
	}
	man := v.Manifest()
	action, ok := man.Action(actionName)
	if !ok {
		names := make([]string, len(man.Actions))
		for i, a := range man.Actions {
			names[i] = a.Name
		}
		return problemf(http.StatusNotFound, codeActionNotFound, "connector %s %s has no action %q (actions: %s)", name, v.Info.Version, actionName, strings.Join(names, ", "))
	}
	call := &host.Call{CorrelationID: correlationID(ctx), Timeout: time.Duration(action.TimeoutMS) * time.Millisecond}
	if req.Connection != "" {
		b, conn, err := s.reg.Binding(ctx, req.Connection)
		if err != nil {
			return err
		}
		if !slices.Contains(conn.Connectors, name) {
			return problemf(http.StatusForbidden, codeConnectionNotAllowed, "connection %s is not bound to connector %s (it allows %s); add it with PATCH /v1/connections/%s", conn.ID, name, strings.Join(conn.Connectors, ", "), conn.ID)
		}
		if conn.Status == registry.StatusNeedsReauth {
			return problemf(http.StatusConflict, codeNeedsReauth, "connection %s needs consent again: POST /v1/connections/%s/reauthorize", conn.ID, conn.ID)
		}
		call.Binding = b
	} else if !man.HasAuthType(abi.AuthNone) {
		return problemf(http.StatusBadRequest, codeConnectionRequired, "connector %s needs a connection (auth %s): add \"connection\": \"<id>\"", name, strings.Join(man.Auth.Types, " or "))
	}
	input := req.Input
	if len(input) == 0 || string(input) == "null" {
		input = json.RawMessage(`{}`)
	}
	if errs := v.InputSchema(actionName).Validate(input); errs != nil {
		p := newProblem(http.StatusBadRequest, codeInvalidInput, describeSchemaErrors("input", errs))
		p.Errors = errs
		return p
	}

	start := time.Now()
	res, rep, ran, err := s.reg.Invoke(ctx, name, req.Version, call, actionName, input)
	version := v.Info.Version
	if ran != nil {
		version = ran.Info.Version
	}
	code := "ok"
	defer func() {
		s.metrics.add("plugboard_action_calls_total", labels("connector", name, "version", version, "action", actionName, "code", code), 1)
		s.metrics.observe("plugboard_action_duration_seconds", labels("connector", name, "action", actionName), time.Since(start))
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
		return err
	}
	if res.Error != nil {
		code = res.Error.Code
		return pluginProblem(res.Error)
	}
	w.Header().Set("X-Plugboard-Version", version)
	writeJSON(w, http.StatusOK, invokeResponse{Output: res.Output, Connector: name, Version: version, CorrelationID: call.CorrelationID})
	return nil
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
