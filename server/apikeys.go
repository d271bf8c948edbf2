package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/registry/storage"
)

// Problem codes of key operations.
const (
	codeKeyNotFound = "key_not_found"
	codeKeyBuiltin  = "key_builtin"
)

// keyScopes narrows a key; a nil list means no narrowing.
type keyScopes struct {
	Connectors  []string `json:"connectors,omitempty"`
	Connections []string `json:"connections,omitempty"`
}

// keyRequest is the body of POST /v1/keys.
type keyRequest struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Scopes    *keyScopes `json:"scopes,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// keyDoc is a key as the API shows it; Secret only in the answer to its creation.
type keyDoc struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Scopes    keyScopes  `json:"scopes"`
	Secret    string     `json:"secret,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at"`
	// Builtin marks key_admin, the admin token from the server's configuration: it cannot be
	// revoked through the API (change PLUGBOARD_ADMIN_TOKEN or DataDir/admin.token instead).
	Builtin bool `json:"builtin,omitempty"`
}

func toKeyDoc(k storage.APIKey, secret string) keyDoc {
	d := keyDoc{ID: k.ID, Name: k.Name, Role: k.Role, Scopes: keyScopes{Connectors: k.Connectors, Connections: k.Connections},
		Secret: secret, CreatedAt: &k.CreatedAt}
	if !k.ExpiresAt.IsZero() {
		d.ExpiresAt = &k.ExpiresAt
	}
	return d
}

var adminKeyDoc = keyDoc{ID: adminKeyID, Name: adminPrincipal.Name, Role: roleAdmin, Builtin: true}

// newKeySecret returns a new key id and its secret (see secretPrefix).
func newKeySecret() (id, secret string) {
	var idb [8]byte
	var sb [32]byte
	_, _ = rand.Read(idb[:])
	_, _ = rand.Read(sb[:])
	idPart := strings.ToLower(b32.EncodeToString(idb[:]))[:12]
	return "key_" + idPart, secretPrefix + idPart + "_" + base64.RawURLEncoding.EncodeToString(sb[:])
}

// checkScopeList rejects empty lists and empty names: omitting a list is how a key is left
// unnarrowed, so [] would be a key that reaches nothing.
func checkScopeList(field string, l []string) error {
	if l == nil {
		return nil
	}
	if len(l) == 0 {
		return problemf(http.StatusBadRequest, codeInvalidRequest, "scopes.%s: omit it for no narrowing; an empty list would allow nothing", field)
	}
	for _, v := range l {
		if v == "" {
			return problemf(http.StatusBadRequest, codeInvalidRequest, "scopes.%s: names must not be empty", field)
		}
	}
	return nil
}

// POST /v1/keys
func (s *Server) createKey(w http.ResponseWriter, r *http.Request) error {
	var req keyRequest
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 100 {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "name: required, up to 100 bytes, e.g. \"app-a\"")
	}
	if !slices.Contains(roles, req.Role) {
		return problemf(http.StatusBadRequest, codeInvalidRequest, "role: %q is not one of %s", req.Role, strings.Join(roles, ", "))
	}
	k := storage.APIKey{Name: req.Name, Role: req.Role, CreatedAt: time.Now().UTC().Round(0)}
	if sc := req.Scopes; sc != nil {
		if err := checkScopeList("connectors", sc.Connectors); err != nil {
			return err
		}
		if err := checkScopeList("connections", sc.Connections); err != nil {
			return err
		}
		k.Connectors, k.Connections = sc.Connectors, sc.Connections
	}
	if req.ExpiresAt != nil {
		if !req.ExpiresAt.After(time.Now()) {
			return problemf(http.StatusBadRequest, codeInvalidRequest, "expires_at: %s is not in the future", req.ExpiresAt.Format(time.RFC3339))
		}
		k.ExpiresAt = req.ExpiresAt.UTC().Round(0)
	}
	var secret string
	for range 3 { // a taken id (60 random bits) is only conceivable, not expected
		k.ID, secret = newKeySecret()
		k.SecretHash = hashSecret(secret)
		err := s.st.CreateAPIKey(r.Context(), k)
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrExists) {
			return err
		}
		secret = ""
	}
	if secret == "" {
		return newProblem(http.StatusInternalServerError, codeInternal, "could not draw a free key id")
	}
	setAuditTarget(r.Context(), "key:"+k.ID)
	w.Header().Set("Location", "/v1/keys/"+k.ID)
	writeJSON(w, http.StatusCreated, toKeyDoc(k, secret))
	return nil
}

// GET /v1/keys: the built-in admin key first, then the stored keys in id order.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	ks, err := s.st.APIKeys(r.Context())
	if err != nil {
		return err
	}
	docs := []keyDoc{adminKeyDoc}
	for _, k := range ks {
		docs = append(docs, toKeyDoc(k, ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": docs})
	return nil
}

// GET /v1/keys/{id}
func (s *Server) getKey(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if id == adminKeyID {
		writeJSON(w, http.StatusOK, adminKeyDoc)
		return nil
	}
	k, err := s.st.APIKey(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return problemf(http.StatusNotFound, codeKeyNotFound, "no key %s (revoked keys are gone)", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toKeyDoc(k, ""))
	return nil
}

// DELETE /v1/keys/{id}: revokes the key; its next request is a 401.
func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if id == adminKeyID {
		return newProblem(http.StatusConflict, codeKeyBuiltin, "key_admin is the admin token from the server's configuration (PLUGBOARD_ADMIN_TOKEN or admin.token in the data directory); change it there and restart")
	}
	err := s.st.DeleteAPIKey(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return problemf(http.StatusNotFound, codeKeyNotFound, "no key %s", id)
	}
	if err != nil {
		return err
	}
	s.limits.forget(id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
