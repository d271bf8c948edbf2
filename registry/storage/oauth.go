package storage

import "time"

// OAuthState is a pending OAuth2 consent: the connection it completes and when it lapses. The
// store keeps it under a key the caller derives from the state parameter (a hash), so the data
// file never holds a usable state.
type OAuthState struct {
	// Connection is the id of the connection the consent completes.
	Connection string `json:"connection"`
	// ExpiresAt is when the consent lapses.
	ExpiresAt time.Time `json:"expires_at"`
}
