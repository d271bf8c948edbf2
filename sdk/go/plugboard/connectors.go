package plugboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// Version is one stored version of a connector.
type Version struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Digest is the content address of the plugin, "sha256:<hex>".
	Digest string `json:"digest"`
	// Size is the plugin's size in bytes.
	Size int64 `json:"size"`
	// Active says this version serves calls.
	Active bool `json:"active"`
	// UploadedAt is when the version was first stored; zero when the server does not say.
	UploadedAt time.Time `json:"uploaded_at,omitzero"`
	// Manifest is what the plugin's plugboard_describe returned.
	Manifest *abi.Manifest `json:"manifest,omitempty"`

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
	// Timing is how long the server's steps of the upload that answered this took; only
	// [Client.UploadConnectorWith] sets it.
	Timing UploadTiming `json:"-"`
}

// UnmarshalJSON decodes the document and keeps it in Raw.
func (v *Version) UnmarshalJSON(b []byte) error {
	type plain Version
	return keepRaw(b, (*plain)(v), &v.Raw)
}

// ConnectorSummary is one entry of the connector list.
type ConnectorSummary struct {
	Name          string   `json:"name"`
	Title         string   `json:"title,omitempty"`
	ActiveVersion string   `json:"active_version,omitempty"`
	Versions      []string `json:"versions"`

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the document and keeps it in Raw.
func (s *ConnectorSummary) UnmarshalJSON(b []byte) error {
	type plain ConnectorSummary
	return keepRaw(b, (*plain)(s), &s.Raw)
}

// Connector is a connector with its active manifest and every stored version.
type Connector struct {
	Name          string        `json:"name"`
	Title         string        `json:"title,omitempty"`
	ActiveVersion string        `json:"active_version,omitempty"`
	Manifest      *abi.Manifest `json:"manifest,omitempty"`
	Versions      []Version     `json:"versions"`

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the document and keeps it in Raw.
func (c *Connector) UnmarshalJSON(b []byte) error {
	type plain Connector
	return keepRaw(b, (*plain)(c), &c.Raw)
}

// UploadConnector uploads a plugin (the bytes of a .wasm file) with POST /v1/connectors. created
// is true when the version is new (201) and false when the same bytes were already stored (200).
// activate asks for the version to become active; the first version of a connector always does,
// and then the call returns once the version serves.
//
// Errors: 400 with code invalid_wasm, import_not_allowed, missing_export, describe_failed or
// invalid_manifest; 413 too_large; 409 version_exists when the name and version exist with other
// bytes.
func (c *Client) UploadConnector(ctx context.Context, wasm []byte, activate bool) (v Version, created bool, err error) {
	return c.UploadConnectorWith(ctx, wasm, UploadOptions{Activate: activate})
}

// ListConnectors lists every connector with GET /v1/connectors.
func (c *Client) ListConnectors(ctx context.Context) ([]ConnectorSummary, error) {
	return list[ConnectorSummary](ctx, c, "/v1/connectors", "connectors")
}

// GetConnector reads a connector with GET /v1/connectors/{name}: its active manifest and every
// stored version. Errors: 404 connector_not_found.
func (c *Client) GetConnector(ctx context.Context, name string) (Connector, error) {
	var out Connector
	p, err := pathf("/v1/connectors/%s", name)
	if err == nil {
		_, err = c.call(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}

// GetVersion reads one stored version with GET /v1/connectors/{name}/versions/{version}.
func (c *Client) GetVersion(ctx context.Context, name, version string) (Version, error) {
	var out Version
	p, err := pathf("/v1/connectors/%s/versions/%s", name, version)
	if err == nil {
		_, err = c.call(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}

// Activate makes a stored version the active one with PUT /v1/connectors/{name}/active (a hot
// swap or a roll back) and returns it once it serves; calls in flight finish on the old version.
// approveCapabilities accepts the origins, auth types or reveal capabilities the version asks for
// beyond the active one; without it such a version is refused with 409 capabilities_changed,
// whose detail lists the difference.
func (c *Client) Activate(ctx context.Context, name, version string, approveCapabilities bool) (Version, error) {
	var out Version
	p, err := pathf("/v1/connectors/%s/active", name)
	if err != nil {
		return out, err
	}
	var query url.Values
	if approveCapabilities {
		query = url.Values{"approve": {"capabilities"}}
	}
	body := struct {
		Version string `json:"version"`
	}{version}
	_, err = c.call(ctx, http.MethodPut, p, query, body, &out)
	return out, err
}

// DeleteVersion removes an inactive version with DELETE
// /v1/connectors/{name}/versions/{version}. Errors: 409 when the version is active.
func (c *Client) DeleteVersion(ctx context.Context, name, version string) error {
	p, err := pathf("/v1/connectors/%s/versions/%s", name, version)
	if err == nil {
		_, err = c.call(ctx, http.MethodDelete, p, nil, nil, nil)
	}
	return err
}

// progressReader reports how much of a body has been read.
type progressReader struct {
	r      io.Reader
	sent   int64
	total  int64
	report func(sent, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.sent += int64(n)
		p.report(p.sent, p.total)
	}
	return n, err
}
