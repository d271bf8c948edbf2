package server

import (
	"net/http"
)

// masterKeyDoc answers the master-key endpoints.
type masterKeyDoc struct {
	// KeyID is the id of the key new secrets are sealed with.
	KeyID string `json:"key_id"`
	// Rotated counts the secrets re-sealed by a rotation.
	Rotated *int `json:"rotated,omitempty"`
}

// GET /v1/master-key: the id of the active master key (never the key).
func (s *Server) getMasterKey(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, masterKeyDoc{KeyID: s.reg.MasterKeyID()})
	return nil
}

// POST /v1/master-key/rotate: re-seal every connection secret under a new master key, then
// drop the old keys from the key file. Secrets sealed with the old key ids stay readable until
// the rotation completes; after a crash or an error half-way every secret still opens, and
// rotating again finishes the job. Calls keep running meanwhile.
func (s *Server) rotateMasterKey(w http.ResponseWriter, r *http.Request) error {
	n, kid, err := s.reg.RotateMasterKey(r.Context())
	if err != nil {
		s.log.Error("master key rotation failed; the key file keeps the old keys, so every secret still opens: rotate again", "err", err, "rotated", n)
		return problemf(http.StatusInternalServerError, codeInternal, "the rotation stopped after re-sealing %d secrets; every secret still opens (the key file keeps the old keys): run it again", n)
	}
	s.log.Info("master key rotated", "key_id", kid, "rotated", n)
	writeJSON(w, http.StatusOK, masterKeyDoc{KeyID: kid, Rotated: &n})
	return nil
}
