package server

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/server/openapi"
)

// GET /v1/openapi.json and /v1/openapi.yaml: the API's OpenAPI 3.1 document (server/openapi),
// with no token, as a contract is public. It changes only with the binary, so it may be cached.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	body, ct := openapi.JSON(), "application/json"
	if strings.HasSuffix(r.URL.Path, ".yaml") {
		body, ct = openapi.YAML(), "application/yaml"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(body)
}

// GET /v1/connectors/{name}/openapi.json[?version=]: the connector's actions as typed
// operations, generated from the version's manifest (openapi.Connector).
func (s *Server) connectorOpenAPI(w http.ResponseWriter, r *http.Request) error {
	v, err := s.reg.Resolve(r.Context(), mux.Vars(r)["name"], r.URL.Query().Get("version"))
	if err != nil {
		return err
	}
	body, err := openapi.Connector(*v.Manifest())
	if err != nil {
		return problemf(http.StatusInternalServerError, codeInternal, "building the OpenAPI document of %s %s: %v", v.Info.Name, v.Info.Version, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
	return nil
}
