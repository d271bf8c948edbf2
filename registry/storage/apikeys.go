package storage

import "time"

// APIKey is a stored API key (API.md "Keys, audit and invocation logs"). Nothing in it is
// secret: the bearer secret is kept only as its SHA-256 hash.
type APIKey struct {
	// ID is the key's id ("key_..."), unique in the store; the secret embeds it, so the key of a
	// presented secret is found without scanning.
	ID string `json:"id"`
	// Name is the human name given at creation.
	Name string `json:"name"`
	// Role is one of the server's roles (admin, author, connections, invoker, reader).
	Role string `json:"role"`
	// Connectors and Connections narrow the key; nil means no narrowing.
	Connectors  []string `json:"connectors,omitempty"`
	Connections []string `json:"connections,omitempty"`
	// SecretHash is "sha256:" and the hex SHA-256 of the secret.
	SecretHash string `json:"secret_hash"`
	// CreatedAt is set to now by [Store.CreateAPIKey] when zero.
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}
