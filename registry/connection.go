package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/store"
)

// Connection statuses.
const (
	StatusReady          = "ready"
	StatusPendingConsent = "pending_consent"
	StatusNeedsReauth    = "needs_reauth"
)

// Credentials are a connection's secrets. They are sealed at rest and only ever read by the
// host to inject them or to compute an HMAC.
type Credentials struct {
	APIKey       string            `json:"api_key,omitempty"`
	Username     string            `json:"username,omitempty"`
	Password     string            `json:"password,omitempty"`
	AccessToken  string            `json:"access_token,omitempty"`
	RefreshToken string            `json:"refresh_token,omitempty"`
	ClientSecret string            `json:"client_secret,omitempty"`
	Secrets      map[string]string `json:"secrets,omitempty"`
}

// fields returns the credential fields by the names plugboard_credential uses.
func (c Credentials) fields() map[string]string {
	out := map[string]string{}
	for k, v := range c.Secrets {
		out[k] = v
	}
	for k, v := range map[string]string{"api_key": c.APIKey, "username": c.Username, "password": c.Password, "access_token": c.AccessToken} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// Auth is the auth object of a connection request: the type and its secrets.
type Auth struct {
	Type        string
	Credentials Credentials
}

// ConnectionSpec is what creating a connection needs.
type ConnectionSpec struct {
	ID         string
	Connectors []string
	Params     map[string]any
	Auth       Auth
}

// Connection is the non-secret view of a connection.
type Connection struct {
	ID         string
	Connectors []string
	Params     map[string]any
	AuthType   string
	Hosts      []string
	Status     string
	// SecretFields names the extra secret fields the connection holds (never their values).
	SecretFields []string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Errors of connection operations, mapped to problem codes by the server.
var (
	ErrConnectionNotFound = errors.New("connection not found")
	ErrConnectionExists   = errors.New("connection already exists")
	ErrConnectorNotFound  = errors.New("connector not found")
	ErrVersionNotFound    = errors.New("version not found")
	// ErrInvalid wraps every validation failure of a request; the message names the field.
	ErrInvalid = errors.New("invalid request")
)

var connIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// CreateConnection validates spec against the active manifests of its connectors and stores
// it with its credentials sealed. The connection's hosts are the expanded hosts of its
// connectors at creation.
func (r *Registry) CreateConnection(ctx context.Context, spec ConnectionSpec) (Connection, error) {
	if !connIDRE.MatchString(spec.ID) {
		return Connection{}, invalidf("id %q must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit", spec.ID)
	}
	params, hosts, err := r.checkConnection(spec.Connectors, spec.Params, spec.Auth)
	if err != nil {
		return Connection{}, err
	}
	secret, err := json.Marshal(spec.Auth.Credentials)
	if err != nil {
		return Connection{}, err
	}
	now := r.now()
	pj, _ := json.Marshal(params)
	sc := store.Connection{ID: spec.ID, Connectors: spec.Connectors, Params: pj, AuthType: spec.Auth.Type,
		Hosts: hosts, Status: StatusReady, CreatedAt: now, UpdatedAt: now, Secret: secret}
	if err := r.st.CreateConnection(ctx, sc); err != nil {
		if errors.Is(err, store.ErrExists) {
			return Connection{}, fmt.Errorf("%w: %s", ErrConnectionExists, spec.ID)
		}
		return Connection{}, err
	}
	return toConnection(sc), nil
}

// checkConnection validates connectors, auth type and params, and returns the params with
// defaults applied and the expanded hosts.
func (r *Registry) checkConnection(connectors []string, params map[string]any, auth Auth) (map[string]any, []string, error) {
	if len(connectors) == 0 {
		return nil, nil, invalidf("connectors: name at least one connector that may use this connection")
	}
	switch auth.Type {
	case abi.AuthNone, abi.AuthAPIKey, abi.AuthBasic:
	case abi.AuthOAuth2:
		return nil, nil, invalidf("auth.type: oauth2 connections are not supported by this server yet; use api_key or basic")
	default:
		return nil, nil, invalidf("auth.type: %q is not one of none, api_key, basic, oauth2", auth.Type)
	}
	c := auth.Credentials
	switch {
	case auth.Type == abi.AuthAPIKey && c.APIKey == "":
		return nil, nil, invalidf("auth.api_key: required for an api_key connection")
	case auth.Type == abi.AuthBasic && (c.Username == "" || c.Password == ""):
		return nil, nil, invalidf("auth.username, auth.password: both required for a basic connection")
	}
	if params == nil {
		params = map[string]any{}
	}
	merged := map[string]any{}
	for k, v := range params {
		merged[k] = v
	}
	var hosts []string
	for i, name := range connectors {
		if slices.Contains(connectors[:i], name) {
			return nil, nil, invalidf("connectors: %q is listed twice", name)
		}
		lv := r.activeVersion(name)
		if lv == nil {
			return nil, nil, fmt.Errorf("%w: %s", ErrConnectorNotFound, name)
		}
		man := lv.Manifest()
		if !man.HasAuthType(auth.Type) {
			return nil, nil, invalidf("auth.type: connector %s accepts %v, not %q", name, man.Auth.Types, auth.Type)
		}
		applyDefaults(man.ConnectionParams, merged)
		if lv.params != nil {
			pj, _ := json.Marshal(merged)
			if errs := lv.params.Validate(pj); errs != nil {
				return nil, nil, &SchemaError{Field: "params", Connector: name, Errors: errs}
			}
		}
		h, err := abi.ExpandHosts(man.Hosts, merged)
		if err != nil {
			return nil, nil, invalidf("params: %v (connector %s uses it as a host)", err, name)
		}
		for _, o := range h {
			if !slices.Contains(hosts, o) {
				hosts = append(hosts, o)
			}
		}
	}
	return merged, hosts, nil
}

// SchemaError is a request value that failed its JSON Schema.
type SchemaError struct {
	Field     string
	Connector string
	Errors    []check.SchemaError
}

// Error implements the error interface.
func (e *SchemaError) Error() string {
	msg := e.Field + " do not match the connection_params schema of " + e.Connector
	if len(e.Errors) > 0 {
		msg += ": " + e.Field + e.Errors[0].Path + ": " + e.Errors[0].Message
	}
	return msg
}

// applyDefaults fills absent top-level params from the schema's property defaults.
func applyDefaults(schema json.RawMessage, params map[string]any) {
	var s struct {
		Properties map[string]struct {
			Default any `json:"default"`
		} `json:"properties"`
	}
	if json.Unmarshal(schema, &s) != nil {
		return
	}
	for k, p := range s.Properties {
		if _, ok := params[k]; !ok && p.Default != nil {
			params[k] = p.Default
		}
	}
}

func toConnection(sc store.Connection) Connection {
	c := Connection{ID: sc.ID, Connectors: sc.Connectors, AuthType: sc.AuthType, Hosts: sc.Hosts,
		Status: sc.Status, CreatedAt: sc.CreatedAt, UpdatedAt: sc.UpdatedAt, Params: map[string]any{}}
	_ = json.Unmarshal(sc.Params, &c.Params)
	var cred Credentials
	if json.Unmarshal(sc.Secret, &cred) == nil {
		for k := range cred.Secrets {
			c.SecretFields = append(c.SecretFields, k)
		}
		slices.Sort(c.SecretFields)
	}
	if c.Hosts == nil {
		c.Hosts = []string{}
	}
	return c
}

// GetConnection returns a connection without its secrets.
func (r *Registry) GetConnection(ctx context.Context, id string) (Connection, error) {
	sc, err := r.st.Connection(ctx, id)
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	return toConnection(sc), nil
}

// ListConnections returns every connection without secrets, sorted by id.
func (r *Registry) ListConnections(ctx context.Context) ([]Connection, error) {
	all, err := r.st.Connections(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Connection, len(all))
	for i, sc := range all {
		out[i] = toConnection(sc)
	}
	return out, nil
}

// ConnectionPatch changes a connection's non-secret fields; nil fields stay as they are.
type ConnectionPatch struct {
	Params     map[string]any
	Connectors []string
	Hosts      []string
}

// PatchConnection applies p after validating the result against the connectors' manifests.
// Hosts given explicitly are an operator's approval and replace the connection's hosts; they
// must be origins.
func (r *Registry) PatchConnection(ctx context.Context, id string, p ConnectionPatch) (Connection, error) {
	var out store.Connection
	_, err := r.st.UpdateConnection(ctx, id, func(sc *store.Connection) error {
		cur := toConnection(*sc)
		connectors := cur.Connectors
		if p.Connectors != nil {
			connectors = p.Connectors
		}
		params := cur.Params
		if p.Params != nil {
			params = p.Params
		}
		var cred Credentials
		_ = json.Unmarshal(sc.Secret, &cred)
		merged, hosts, err := r.checkConnection(connectors, params, Auth{Type: sc.AuthType, Credentials: cred})
		if err != nil {
			return err
		}
		if p.Hosts != nil {
			hosts = make([]string, 0, len(p.Hosts))
			for i, h := range p.Hosts {
				o, err := abi.NormalizeOrigin(h, true)
				if err != nil {
					return invalidf("hosts[%d]: %v", i, err)
				}
				hosts = append(hosts, o)
			}
		} else if p.Params == nil && p.Connectors == nil {
			hosts = sc.Hosts
		}
		pj, _ := json.Marshal(merged)
		sc.Connectors, sc.Params, sc.Hosts, sc.UpdatedAt = connectors, pj, hosts, r.now()
		out = *sc
		return nil
	})
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	return toConnection(out), nil
}

// RotateCredentials replaces a connection's auth atomically: calls already running keep the
// binding they started with; calls after it use the new secret.
func (r *Registry) RotateCredentials(ctx context.Context, id string, auth Auth) (Connection, error) {
	var out store.Connection
	_, err := r.st.UpdateConnection(ctx, id, func(sc *store.Connection) error {
		cur := toConnection(*sc)
		if _, _, err := r.checkConnection(cur.Connectors, cur.Params, auth); err != nil {
			return err
		}
		secret, err := json.Marshal(auth.Credentials)
		if err != nil {
			return err
		}
		sc.AuthType, sc.Secret, sc.UpdatedAt = auth.Type, secret, r.now()
		out = *sc
		return nil
	})
	if err != nil {
		return Connection{}, mapConnErr(err, id)
	}
	return toConnection(out), nil
}

// DeleteConnection removes a connection, its kv state and its timers.
func (r *Registry) DeleteConnection(ctx context.Context, id string) error {
	return mapConnErr(r.st.DeleteConnection(ctx, id), id)
}

func mapConnErr(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrConnectionNotFound, id)
	}
	return err
}

// Binding opens a connection's credentials for one call. The binding is a snapshot: a rotation
// during the call does not change it.
func (r *Registry) Binding(ctx context.Context, id string) (*host.Binding, Connection, error) {
	sc, err := r.st.Connection(ctx, id)
	if err != nil {
		return nil, Connection{}, mapConnErr(err, id)
	}
	var cred Credentials
	if err := json.Unmarshal(sc.Secret, &cred); err != nil {
		return nil, Connection{}, fmt.Errorf("connection %s: decoding credentials: %w", id, err)
	}
	c := toConnection(sc)
	return &host.Binding{ID: c.ID, Params: c.Params, AuthType: c.AuthType, Origins: c.Hosts, Secrets: cred.fields()}, c, nil
}
