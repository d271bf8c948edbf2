package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry/storage"
)

// connMeta is the non-secret state of a connection that the store keeps for the registry
// (storage.Connection.Meta): OAuth2 settings and token times, reveal approvals, the rate limit.
type connMeta struct {
	OAuth          *oauthMeta `json:"oauth,omitempty"`
	RevealApproved []string   `json:"reveal_approved,omitempty"`
	RateLimit      *RateLimit `json:"rate_limit,omitempty"`
}

func readMeta(sc storage.Connection) connMeta {
	var m connMeta
	if len(sc.Meta) > 0 {
		_ = json.Unmarshal(sc.Meta, &m)
	}
	return m
}

// encode returns the meta as JSON, nil when there is nothing to keep.
func (m connMeta) encode() json.RawMessage {
	if m.OAuth == nil && len(m.RevealApproved) == 0 && m.RateLimit == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	return b
}

// readCredentials opens the secret document of a stored connection.
func readCredentials(sc storage.Connection) (Credentials, error) {
	var cred Credentials
	if len(sc.Secret) == 0 {
		return cred, nil
	}
	if err := json.Unmarshal(sc.Secret, &cred); err != nil {
		return Credentials{}, fmt.Errorf("connection %s: decoding credentials: %w", sc.ID, err)
	}
	return cred, nil
}

func (c Credentials) encode() ([]byte, error) {
	if c.empty() {
		return nil, nil
	}
	return json.Marshal(c)
}

func (c Credentials) empty() bool {
	return c.APIKey == "" && c.Username == "" && c.Password == "" && c.AccessToken == "" && c.RefreshToken == "" &&
		c.ClientSecret == "" && len(c.Secrets) == 0 && c.PKCEVerifier == "" && c.ConsentURL == ""
}

// RateLimit is a connection's limit on outbound requests: a token bucket refilled at PerSecond
// and holding at most Burst tokens (0: PerSecond rounded up). Every request a plugin sends with
// the connection takes one, whichever action, trigger or MCP tool sends it; a request that finds
// the bucket empty is not sent and the plugin gets a 429 with Retry-After from the host.
type RateLimit struct {
	// PerSecond is the sustained rate, above 0.
	PerSecond float64 `json:"per_second"`
	// Burst is the bucket's size; 0 means PerSecond rounded up.
	Burst int `json:"burst,omitempty"`
}

// maxRate bounds a rate limit's fields: beyond it a limit means nothing.
const maxRate = 1_000_000

// checkRateLimit validates a rate limit; nil (no limit) is valid.
func checkRateLimit(l *RateLimit) error {
	if l == nil {
		return nil
	}
	if !(l.PerSecond > 0 && l.PerSecond <= maxRate) {
		return invalidf("rate_limit.per_second: must be above 0 and at most %d, got %g", maxRate, l.PerSecond)
	}
	if l.Burst < 0 || l.Burst > maxRate {
		return invalidf("rate_limit.burst: must be between 0 (PerSecond rounded up) and %d, got %d", maxRate, l.Burst)
	}
	return nil
}

// checkRevealApproved validates an operator's reveal approvals: each field must be one that a
// connector of the connection declares under capabilities.reveal.
func (r *Registry) checkRevealApproved(connectors, fields []string) error {
	for i, f := range fields {
		if f == "" || slices.Contains(fields[:i], f) {
			return invalidf("reveal_approved[%d]: field names must be distinct and non-empty", i)
		}
		declared := false
		for _, name := range connectors {
			if v := r.activeVersion(name); v != nil {
				if c := v.Manifest().Capabilities; c != nil && slices.Contains(c.Reveal, f) {
					declared = true
				}
			}
		}
		if !declared {
			return invalidf("reveal_approved[%d]: no connector of the connection (%v) declares %q under capabilities.reveal", i, connectors, f)
		}
	}
	return nil
}

// RotateMasterKey re-seals every connection secret under a new master key and drops the old
// keys from the key file once nothing uses them (storage.Store.RotateMasterKey: crash-safe, and
// old key ids stay readable until it completes). It returns how many secrets were re-sealed and
// the id of the new key.
func (r *Registry) RotateMasterKey(ctx context.Context) (rotated int, keyID string, err error) {
	rotated, err = r.st.RotateMasterKey(ctx)
	return rotated, r.st.MasterKeyID(), err
}

// MasterKeyID returns the id of the master key new secrets are sealed with.
func (r *Registry) MasterKeyID() string { return r.st.MasterKeyID() }

// authTypeKnown reports whether t is an auth type of ABI.md section 3.
func authTypeKnown(t string) bool {
	switch t {
	case abi.AuthNone, abi.AuthAPIKey, abi.AuthBasic, abi.AuthOAuth2:
		return true
	}
	return false
}
