package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// versionDoc is the version document of API.md; Canary is an extension.
type versionDoc struct {
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Digest     string          `json:"digest"`
	Size       int64           `json:"size"`
	Active     bool            `json:"active"`
	Canary     bool            `json:"canary,omitempty"`
	UploadedAt time.Time       `json:"uploaded_at"`
	Manifest   json.RawMessage `json:"manifest"`
}

func toVersionDoc(v storage.Version, active bool) versionDoc {
	return versionDoc{Name: v.Name, Version: v.Version, Digest: v.Digest, Size: v.Size, Active: active, UploadedAt: v.UploadedAt, Manifest: v.Manifest}
}

// POST /v1/connectors[?activate=true][&approve=capabilities][&dev=true]: body is the .wasm.
// approve accepts the capability changes of an activation; dev stores a rebuild of a stored
// version as VERSION+dev.<digest> instead of answering version_exists (registry.UploadOptions).
func (s *Server) uploadConnector(w http.ResponseWriter, r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct != "" && ct != "application/wasm" && ct != "application/octet-stream" {
		return problemf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "upload the plugin as application/wasm, not %s", ct)
	}
	activate, err := boolQuery(r, "activate")
	if err != nil {
		return err
	}
	approve, err := approveQuery(r)
	if err != nil {
		return err
	}
	dev, err := boolQuery(r, "dev")
	if err != nil {
		return err
	}
	wasm, err := readBody(r, s.opts.MaxUploadBytes)
	if err != nil {
		s.metrics.add("plugboard_uploads_total", labels("outcome", codeTooLarge), 1)
		return err
	}
	if len(wasm) == 0 {
		s.metrics.add("plugboard_uploads_total", labels("outcome", host.CheckInvalidWasm), 1)
		return newProblem(http.StatusBadRequest, host.CheckInvalidWasm,
			"the upload body is empty (0 bytes): send the .wasm file's bytes as the body (curl --data-binary @FILE); if a build was writing the file, upload it again once the build has finished")
	}
	res, err := s.reg.UploadWith(r.Context(), wasm, registry.UploadOptions{Activate: activate, ApproveCapabilities: approve, DevBuild: dev})
	if err != nil {
		s.metrics.add("plugboard_uploads_total", labels("outcome", toProblem(err).Code), 1)
		note := ""
		if res.Version.Version != "" {
			note = fmt.Sprintf("; %s %s is stored, not active", res.Version.Name, res.Version.Version)
		}
		return s.swapFailed(w, r, err, note)
	}
	s.metrics.add("plugboard_uploads_total", labels("outcome", "ok"), 1)
	// The steps' durations, for a watcher's progress line (plugboard dev).
	w.Header().Set("Server-Timing", fmt.Sprintf("check;dur=%.1f, store;dur=%.1f, activate;dur=%.1f",
		ms(res.Checked), ms(res.Stored), ms(res.Activating)))
	_, isActive, _ := s.reg.Version(r.Context(), res.Version.Name, res.Version.Version)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, toVersionDoc(res.Version, isActive))
	return nil
}

// ms is d in milliseconds, for a Server-Timing header.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// approveQuery reads ?approve=capabilities, the only approval there is.
func approveQuery(r *http.Request) (bool, error) {
	switch a := r.URL.Query().Get("approve"); a {
	case "":
		return false, nil
	case "capabilities":
		return true, nil
	default:
		return false, problemf(http.StatusBadRequest, codeInvalidRequest, "approve must be \"capabilities\", got %q", a)
	}
}

// Problem codes of a refused swap; problem.go maps registry.ErrCapabilitiesChanged and
// registry.ErrActivationFailed to them.
const (
	codeCapabilitiesChanged = "capabilities_changed"
	codeActivationFailed    = "activation_failed"
)

// capabilitiesProblem is the 409 capabilities_changed document: the problem plus the
// machine-readable difference.
type capabilitiesProblem struct {
	*Problem
	Changes registry.Changes `json:"changes"`
}

// swapFailed answers a swap the registry refused (capabilities) or could not do (activation):
// the problem of toProblem with note added to its detail, and for a capability refusal the
// "changes" object. Other errors are returned for the usual mapping.
func (s *Server) swapFailed(w http.ResponseWriter, r *http.Request, err error, note string) error {
	ce, isCaps := errors.AsType[*registry.CapabilitiesError](err)
	if !isCaps && !errors.Is(err, registry.ErrActivationFailed) {
		return err
	}
	p := toProblem(err)
	p.Detail += note
	if !isCaps {
		return p
	}
	p.CorrelationID = correlationID(r.Context())
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(capabilitiesProblem{Problem: p, Changes: ce.Changes})
	return nil
}

func boolQuery(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, problemf(http.StatusBadRequest, codeInvalidRequest, "query parameter %s must be true or false, got %q", name, v)
	}
}

// GET /v1/connectors
func (s *Server) listConnectors(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.reg.Connectors(r.Context())
	if err != nil {
		return err
	}
	type item struct {
		Name          string   `json:"name"`
		Title         string   `json:"title"`
		ActiveVersion string   `json:"active_version"`
		Versions      []string `json:"versions"`
	}
	p := principalFrom(r.Context())
	out := make([]item, 0, len(cs))
	for _, c := range cs {
		if !p.allowsConnector(c.Name) {
			continue
		}
		it := item{Name: c.Name, Title: c.Title, ActiveVersion: c.ActiveVersion, Versions: []string{}}
		for _, v := range c.Versions {
			it.Versions = append(it.Versions, v.Version)
		}
		out = append(out, it)
	}
	writeJSON(w, http.StatusOK, map[string]any{"connectors": out})
	return nil
}

// GET /v1/connectors/{name}: API.md's document plus "canary" (the running canary with both
// sides' statistics) and "last_canary" (how the previous one ended), each present when set.
func (s *Server) getConnector(w http.ResponseWriter, r *http.Request) error {
	c, err := s.reg.Connector(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	docs := make([]versionDoc, 0, len(c.Versions))
	var manifest json.RawMessage
	for _, v := range c.Versions {
		d := toVersionDoc(v, v.Version == c.ActiveVersion)
		d.Canary = c.Canary != nil && c.Canary.Version == v.Version
		docs = append(docs, d)
		if v.Version == c.ActiveVersion {
			manifest = v.Manifest
		}
	}
	out := map[string]any{"name": c.Name, "title": c.Title, "active_version": c.ActiveVersion, "manifest": manifest, "versions": docs}
	if c.Canary != nil {
		out["canary"] = toCanaryDoc(c.Canary)
	}
	if c.LastCanary != nil {
		out["last_canary"] = toOutcomeDoc(c.LastCanary)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /v1/connectors/{name}/versions/{version}
func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	vars := mux.Vars(r)
	v, active, err := s.reg.Version(r.Context(), vars["name"], vars["version"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toVersionDoc(v, active))
	return nil
}

// DELETE /v1/connectors/{name}/versions/{version}
func (s *Server) deleteVersion(w http.ResponseWriter, r *http.Request) error {
	vars := mux.Vars(r)
	if err := s.reg.DeleteVersion(r.Context(), vars["name"], vars["version"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// activateRequest is the body of PUT /v1/connectors/{name}/active.
type activateRequest struct {
	Version string         `json:"version"`
	Canary  *canaryRequest `json:"canary,omitempty"`
}

type canaryRequest struct {
	Version      string  `json:"version"`
	Percent      *int    `json:"percent"`
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	MinCalls     int     `json:"min_calls,omitempty"`
}

// activateResponse is the active version's document, plus the canary and the capability
// changes the request approved, when there are.
type activateResponse struct {
	versionDoc
	Canary   *canaryDoc        `json:"canary,omitempty"`
	Approved *registry.Changes `json:"approved_changes,omitempty"`
}

// PUT /v1/connectors/{name}/active {"version": "1.2.0", "canary": {"version": "1.3.0",
// "percent": 10}}: provision, then swap, then drain (registry.SetActive). Answers once the
// version serves; a refused or failed swap leaves the previous one serving.
func (s *Server) activate(w http.ResponseWriter, r *http.Request) error {
	var body activateRequest
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &body); err != nil {
		return err
	}
	if body.Version == "" {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "version: required, e.g. {\"version\": \"1.2.0\"}")
	}
	approve, err := approveQuery(r)
	if err != nil {
		return err
	}
	ro := registry.Rollout{Version: body.Version, ApproveCapabilities: approve}
	if c := body.Canary; c != nil {
		if c.Percent == nil {
			return newProblem(http.StatusBadRequest, codeInvalidRequest, "canary.percent: required, e.g. {\"version\": \"1.4.0\", \"percent\": 10}")
		}
		ro.Canary = &registry.CanarySpec{Version: c.Version, Percent: *c.Percent, MaxErrorRate: c.MaxErrorRate, MinCalls: c.MinCalls}
	}
	name := mux.Vars(r)["name"]
	res, err := s.reg.SetActive(r.Context(), name, ro)
	if err != nil {
		return s.swapFailed(w, r, err, "")
	}
	out := activateResponse{versionDoc: toVersionDoc(res.Active, true), Approved: res.Approved}
	if res.Canary != nil {
		out.Canary = toCanaryDoc(res.Canary)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// trafficDoc is one side's statistics.
type trafficDoc struct {
	Version   string  `json:"version"`
	Calls     uint64  `json:"calls"`
	Errors    uint64  `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
}

func toTrafficDoc(t registry.TrafficStats) trafficDoc {
	return trafficDoc{Version: t.Version, Calls: t.Calls, Errors: t.Errors, ErrorRate: t.ErrorRate,
		P50MS: float64(t.P50.Microseconds()) / 1000, P99MS: float64(t.P99.Microseconds()) / 1000}
}

// canaryDoc is a running canary.
type canaryDoc struct {
	Version      string    `json:"version"`
	Percent      int       `json:"percent"`
	MaxErrorRate float64   `json:"max_error_rate,omitempty"`
	MinCalls     int       `json:"min_calls,omitempty"`
	Since        time.Time `json:"since"`
	Stats        sidesDoc  `json:"stats"`
}

type sidesDoc struct {
	Active trafficDoc `json:"active"`
	Canary trafficDoc `json:"canary"`
}

func toCanaryDoc(c *registry.CanaryStatus) *canaryDoc {
	return &canaryDoc{Version: c.Version, Percent: c.Percent, MaxErrorRate: c.MaxErrorRate, MinCalls: c.MinCalls,
		Since: c.Since, Stats: sidesDoc{toTrafficDoc(c.Active), toTrafficDoc(c.Canary)}}
}

// outcomeDoc is how the last canary ended.
type outcomeDoc struct {
	Version string    `json:"version"`
	Percent int       `json:"percent"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason,omitempty"`
	Since   time.Time `json:"since"`
	Ended   time.Time `json:"ended"`
	Stats   sidesDoc  `json:"stats"`
}

func toOutcomeDoc(o *registry.CanaryOutcome) *outcomeDoc {
	return &outcomeDoc{Version: o.Version, Percent: o.Percent, Outcome: o.Outcome, Reason: o.Reason,
		Since: o.Since, Ended: o.Ended, Stats: sidesDoc{toTrafficDoc(o.Active), toTrafficDoc(o.Canary)}}
}

// canaryGauges are the /metrics gauges of the running canaries.
func (s *Server) canaryGauges(ctx context.Context) []gauge {
	var out []gauge
	for name, c := range s.reg.Canaries(ctx) {
		out = append(out, gauge{"plugboard_canary_percent", labels("connector", name, "version", c.Version), float64(c.Percent)})
		for _, side := range []struct {
			name string
			t    registry.TrafficStats
		}{{"active", c.Active}, {"canary", c.Canary}} {
			l := labels("connector", name, "version", side.t.Version, "side", side.name)
			out = append(out,
				gauge{"plugboard_canary_calls", l, float64(side.t.Calls)},
				gauge{"plugboard_canary_errors", l, float64(side.t.Errors)},
				gauge{"plugboard_canary_latency_seconds", l + `,quantile="0.5"`, side.t.P50.Seconds()},
				gauge{"plugboard_canary_latency_seconds", l + `,quantile="0.99"`, side.t.P99.Seconds()})
		}
	}
	return out
}

// GET /v1/connectors/{name}/actions
func (s *Server) listActions(w http.ResponseWriter, r *http.Request) error {
	v, err := s.reg.Resolve(r.Context(), mux.Vars(r)["name"], r.URL.Query().Get("version"))
	if err != nil {
		return err
	}
	actions := v.Manifest().Actions
	if actions == nil {
		actions = []abi.Action{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"connector": v.Info.Name, "version": v.Info.Version, "actions": actions})
	return nil
}
