package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/store"
)

// versionDoc is the version document of API.md.
type versionDoc struct {
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Digest     string          `json:"digest"`
	Size       int64           `json:"size"`
	Active     bool            `json:"active"`
	UploadedAt time.Time       `json:"uploaded_at"`
	Manifest   json.RawMessage `json:"manifest"`
}

func toVersionDoc(v store.Version, active bool) versionDoc {
	return versionDoc{Name: v.Name, Version: v.Version, Digest: v.Digest, Size: v.Size, Active: active, UploadedAt: v.UploadedAt, Manifest: v.Manifest}
}

// POST /v1/connectors[?activate=true]: body is the .wasm.
func (s *Server) uploadConnector(w http.ResponseWriter, r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct != "" && ct != "application/wasm" && ct != "application/octet-stream" {
		return problemf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "upload the plugin as application/wasm, not %s", ct)
	}
	activate, err := boolQuery(r, "activate")
	if err != nil {
		return err
	}
	wasm, err := readBody(r, s.opts.MaxUploadBytes)
	if err != nil {
		s.metrics.add("plugboard_uploads_total", labels("outcome", codeTooLarge), 1)
		return err
	}
	res, err := s.reg.Upload(r.Context(), wasm, activate)
	if err != nil {
		s.metrics.add("plugboard_uploads_total", labels("outcome", toProblem(err).Code), 1)
		return err
	}
	s.metrics.add("plugboard_uploads_total", labels("outcome", "ok"), 1)
	_, isActive, _ := s.reg.Version(r.Context(), res.Version.Name, res.Version.Version)
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, toVersionDoc(res.Version, isActive))
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
	out := make([]item, 0, len(cs))
	for _, c := range cs {
		it := item{Name: c.Name, Title: c.Title, ActiveVersion: c.ActiveVersion, Versions: []string{}}
		for _, v := range c.Versions {
			it.Versions = append(it.Versions, v.Version)
		}
		out = append(out, it)
	}
	writeJSON(w, http.StatusOK, map[string]any{"connectors": out})
	return nil
}

// GET /v1/connectors/{name}
func (s *Server) getConnector(w http.ResponseWriter, r *http.Request) error {
	c, err := s.reg.Connector(r.Context(), mux.Vars(r)["name"])
	if err != nil {
		return err
	}
	docs := make([]versionDoc, 0, len(c.Versions))
	var manifest json.RawMessage
	for _, v := range c.Versions {
		docs = append(docs, toVersionDoc(v, v.Version == c.ActiveVersion))
		if v.Version == c.ActiveVersion {
			manifest = v.Manifest
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": c.Name, "title": c.Title, "active_version": c.ActiveVersion, "manifest": manifest, "versions": docs})
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

// PUT /v1/connectors/{name}/active {"version": "1.2.0"}
func (s *Server) activate(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Version string          `json:"version"`
		Canary  json.RawMessage `json:"canary,omitempty"`
	}
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &body); err != nil {
		return err
	}
	if body.Version == "" {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "version: required, e.g. {\"version\": \"1.2.0\"}")
	}
	if len(body.Canary) > 0 && string(body.Canary) != "null" {
		return newProblem(http.StatusNotImplemented, "not_implemented", "canary releases are not available on this server yet; activate the version directly")
	}
	if a := r.URL.Query().Get("approve"); a != "" && a != "capabilities" {
		return problemf(http.StatusBadRequest, codeInvalidRequest, "approve must be \"capabilities\", got %q", a)
	}
	name := mux.Vars(r)["name"]
	if _, _, err := s.reg.Version(r.Context(), name, body.Version); err != nil {
		return err
	}
	v, err := s.reg.Activate(r.Context(), name, body.Version)
	if errors.Is(err, registry.ErrVersionNotFound) {
		return err
	}
	if err != nil {
		return problemf(http.StatusUnprocessableEntity, "activation_failed", "%s %s did not start, so the previous version keeps serving: %v", name, body.Version, err)
	}
	writeJSON(w, http.StatusOK, toVersionDoc(v, true))
	return nil
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
