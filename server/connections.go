package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/registry"
)

// authBody is the "auth" object of API.md "Connections". Secrets are write-only.
type authBody struct {
	Type             string            `json:"type"`
	APIKey           string            `json:"api_key,omitempty"`
	Username         string            `json:"username,omitempty"`
	Password         string            `json:"password,omitempty"`
	Grant            string            `json:"grant,omitempty"`
	ClientID         string            `json:"client_id,omitempty"`
	ClientSecret     string            `json:"client_secret,omitempty"`
	Scopes           []string          `json:"scopes,omitempty"`
	AuthorizationURL string            `json:"authorization_url,omitempty"`
	TokenURL         string            `json:"token_url,omitempty"`
	Secrets          map[string]string `json:"secrets,omitempty"`
}

func (a *authBody) toAuth(extra map[string]string) registry.Auth {
	secrets := map[string]string{}
	for k, v := range a.Secrets {
		secrets[k] = v
	}
	for k, v := range extra {
		secrets[k] = v
	}
	if len(secrets) == 0 {
		secrets = nil
	}
	return registry.Auth{Type: a.Type, Credentials: registry.Credentials{
		APIKey: a.APIKey, Username: a.Username, Password: a.Password, ClientSecret: a.ClientSecret, Secrets: secrets,
	}}
}

type connectionDoc struct {
	ID         string         `json:"id"`
	Connectors []string       `json:"connectors"`
	Params     map[string]any `json:"params"`
	Auth       struct {
		Type string `json:"type"`
	} `json:"auth"`
	Hosts        []string  `json:"hosts"`
	Status       string    `json:"status"`
	ConsentURL   string    `json:"consent_url,omitempty"`
	SecretFields []string  `json:"secret_fields,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func toConnectionDoc(c registry.Connection) connectionDoc {
	d := connectionDoc{ID: c.ID, Connectors: c.Connectors, Params: c.Params, Hosts: c.Hosts, Status: c.Status,
		SecretFields: c.SecretFields, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	d.Auth.Type = c.AuthType
	return d
}

// POST /v1/connections
func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ID         string            `json:"id"`
		Connectors []string          `json:"connectors"`
		Params     map[string]any    `json:"params,omitempty"`
		Auth       *authBody         `json:"auth"`
		Secrets    map[string]string `json:"secrets,omitempty"`
	}
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &body); err != nil {
		return err
	}
	if body.Auth == nil {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "auth: required, e.g. {\"type\": \"api_key\", \"api_key\": \"...\"} or {\"type\": \"none\"}")
	}
	c, err := s.reg.CreateConnection(r.Context(), registry.ConnectionSpec{ID: body.ID, Connectors: body.Connectors, Params: body.Params, Auth: body.Auth.toAuth(body.Secrets)})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toConnectionDoc(c))
	return nil
}

// GET /v1/connections
func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.reg.ListConnections(r.Context())
	if err != nil {
		return err
	}
	docs := make([]connectionDoc, len(cs))
	for i, c := range cs {
		docs[i] = toConnectionDoc(c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": docs})
	return nil
}

// GET /v1/connections/{id}
func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) error {
	c, err := s.reg.GetConnection(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toConnectionDoc(c))
	return nil
}

// PATCH /v1/connections/{id} {"params", "connectors", "hosts"}
func (s *Server) patchConnection(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Params     map[string]any `json:"params,omitempty"`
		Connectors []string       `json:"connectors,omitempty"`
		Hosts      []string       `json:"hosts,omitempty"`
	}
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &body); err != nil {
		return err
	}
	c, err := s.reg.PatchConnection(r.Context(), mux.Vars(r)["id"], registry.ConnectionPatch{Params: body.Params, Connectors: body.Connectors, Hosts: body.Hosts})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toConnectionDoc(c))
	return nil
}

// PUT /v1/connections/{id}/credentials: the body is a new auth object (optionally with
// "secrets"), or {"auth": {...}, "secrets": {...}}.
func (s *Server) rotateCredentials(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	var wrapped struct {
		Auth    *authBody         `json:"auth"`
		Secrets map[string]string `json:"secrets,omitempty"`
	}
	var auth authBody
	var extra map[string]string
	if json.Unmarshal(b, &wrapped) == nil && wrapped.Auth != nil {
		if err := decodeStrictProblem(b, &wrapped); err != nil {
			return err
		}
		auth, extra = *wrapped.Auth, wrapped.Secrets
	} else if err := decodeStrictProblem(b, &auth); err != nil {
		return err
	}
	c, err := s.reg.RotateCredentials(r.Context(), mux.Vars(r)["id"], auth.toAuth(extra))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toConnectionDoc(c))
	return nil
}

// DELETE /v1/connections/{id}
func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) error {
	if err := s.reg.DeleteConnection(r.Context(), mux.Vars(r)["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
