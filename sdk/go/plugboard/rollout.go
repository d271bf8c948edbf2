package plugboard

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// UploadOptions are the query parameters of an upload beyond ?activate.
type UploadOptions struct {
	// Activate asks for the version to become active once stored (?activate=true); the call
	// then returns once the version serves.
	Activate bool
	// ApproveCapabilities accepts the origins, auth types and reveal capabilities the version
	// asks for beyond the active one (?approve=capabilities).
	ApproveCapabilities bool
	// Dev stores a rebuild of a stored version as VERSION+dev.<digest> instead of failing with
	// version_exists (?dev=true), and lets the server delete the previous dev build once the new
	// one is active.
	Dev bool
}

// UploadConnectorWith uploads a plugin with POST /v1/connectors like [Client.UploadConnector],
// with the options of o; [Version.Timing] says how long the server's steps took. An activation refused for new capabilities is a 409
// capabilities_changed whose detail lists the difference; the version stays stored.
func (c *Client) UploadConnectorWith(ctx context.Context, wasm []byte, o UploadOptions) (v Version, created bool, err error) {
	query := url.Values{}
	if o.Activate {
		query.Set("activate", "true")
	}
	if o.ApproveCapabilities {
		query.Set("approve", "capabilities")
	}
	if o.Dev {
		query.Set("dev", "true")
	}
	if wasm == nil {
		wasm = []byte{}
	}
	resp, err := c.send(ctx, request{
		method: http.MethodPost, path: "/v1/connectors", query: query,
		body: wasm, contentType: "application/wasm", progress: c.UploadProgress,
	})
	if err != nil {
		return Version{}, false, err
	}
	if err := decodeDocument(resp, &v); err != nil {
		return Version{}, false, err
	}
	v.Timing = parseUploadTiming(resp.header.Get("Server-Timing"))
	return v, resp.status == http.StatusCreated, nil
}

// UploadTiming is how long the server's steps of an upload took, from the Server-Timing header
// of its answer ("check;dur=612.3, store;dur=4.1, activate;dur=35.0", milliseconds). A step the
// server did not report is zero.
type UploadTiming struct {
	// Check is the upload checks, compilation included.
	Check time.Duration
	// Store is storing the plugin and its version.
	Store time.Duration
	// Activate is the activation, until the version served.
	Activate time.Duration
}

func parseUploadTiming(h string) UploadTiming {
	var t UploadTiming
	for _, metric := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(metric), ";")
		var d time.Duration
		for _, p := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "dur="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
					d = time.Duration(f * float64(time.Millisecond))
				}
			}
		}
		switch name {
		case "check":
			t.Check = d
		case "store":
			t.Store = d
		case "activate":
			t.Activate = d
		}
	}
	return t
}

// Canary is the canary of an activation: a second version taking a share of the calls.
type Canary struct {
	// Version is the canary version; it must differ from the active one.
	Version string `json:"version"`
	// Percent of the calls that name no version go to the canary, 0 to 100.
	Percent int `json:"percent"`
	// MaxErrorRate, between 0 and 1, has the server abort the canary once its error rate
	// passes it; 0 disables the automatic abort.
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	// MinCalls is how many canary calls the automatic abort waits for; 0 means the server's
	// default (20).
	MinCalls int `json:"min_calls,omitempty"`
}

// ActivateWithCanary sets the active version and a canary with PUT
// /v1/connectors/{name}/active, and returns the active version once both serve. Promote the
// canary by activating its version without a canary; abort it by activating the active version
// again without one ([Client.Activate]).
func (c *Client) ActivateWithCanary(ctx context.Context, name, version string, canary Canary, approveCapabilities bool) (Version, error) {
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
		Canary  Canary `json:"canary"`
	}{version, canary}
	_, err = c.call(ctx, http.MethodPut, p, query, body, &out)
	return out, err
}
