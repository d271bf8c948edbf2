package plugboard

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/plugboard/plugboard/abi"
)

// Action is one action of a connector as GET /v1/connectors/{name}/actions lists it: the
// manifest's action with its schemas and annotations.
type Action struct {
	abi.Action

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the document and keeps it in Raw.
func (a *Action) UnmarshalJSON(b []byte) error {
	type plain Action
	return keepRaw(b, (*plain)(a), &a.Raw)
}

// ListActions lists a connector's actions with their schemas, from its active version, with
// GET /v1/connectors/{name}/actions. Errors: 404 connector_not_found.
func (c *Client) ListActions(ctx context.Context, connector string) ([]Action, error) {
	p, err := pathf("/v1/connectors/%s/actions", connector)
	if err != nil {
		return nil, err
	}
	return list[Action](ctx, c, p, "actions")
}

// InvokeRequest is the body of an action call.
type InvokeRequest struct {
	// Connection is the ID of the connection whose credentials the call uses; required unless
	// the connector's auth type is "none".
	Connection string `json:"connection,omitempty"`
	// Input is the action's input object. Nil sends {}.
	Input json.RawMessage `json:"input"`
	// Version pins a stored version; empty means the active one.
	Version string `json:"version,omitempty"`
}

// InvokeResponse is the answer of a successful action call.
type InvokeResponse struct {
	// Output is the action's output object.
	Output json.RawMessage `json:"output"`
	// Connector and Version name the version that served the call.
	Connector string `json:"connector"`
	Version   string `json:"version"`
	// CorrelationID identifies the call in GET /v1/invocations/{correlation_id}.
	CorrelationID string `json:"correlation_id"`

	// Raw is the document as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the document and keeps it in Raw.
func (r *InvokeResponse) UnmarshalJSON(b []byte) error {
	type plain InvokeResponse
	return keepRaw(b, (*plain)(r), &r.Raw)
}

// Invoke calls an action with POST /v1/connectors/{connector}/actions/{action}.
//
// Errors: 400 invalid_input with the schema failures in Problem.Errors; 404 connector_not_found,
// action_not_found or connection_not_found; 403 connection_not_allowed; guest error codes with
// Source "plugin"; 502 plugin_failed; 504 timeout; 429 rate_limited with Problem.RetryAfter;
// 409 needs_reauth.
func (c *Client) Invoke(ctx context.Context, connector, action string, req InvokeRequest) (InvokeResponse, error) {
	var out InvokeResponse
	p, err := pathf("/v1/connectors/%s/actions/%s", connector, action)
	if err != nil {
		return out, err
	}
	if req.Input == nil {
		req.Input = json.RawMessage("{}")
	}
	resp, err := c.call(ctx, http.MethodPost, p, nil, req, &out)
	if err != nil {
		return out, err
	}
	if out.CorrelationID == "" {
		out.CorrelationID = resp.header.Get("X-Correlation-ID")
	}
	return out, nil
}
