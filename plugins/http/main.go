// Command http is the generic REST connector: one action, request, that sends any HTTP request
// to the connection's base_url and returns the answer.
//
// Auth: none, api_key (sent as "Authorization: Bearer <key>", the most common REST
// convention; for other header names or query keys write a dedicated connector, since the
// manifest is static) or basic.
//
// Upstream statuses, including 4xx and 5xx, are returned as output rather than errors: a
// generic client cannot know what a status means for an arbitrary API, and the caller wants to
// see the body either way. Only failures to get an answer at all (refused host, timeout,
// network) are errors.
//
// Trigger poll_json (poll.go, params path, items_pointer, id_field, time_field, headers) watches
// a JSON array at base_url+path and fires once per item whose id was not in the array at the
// previous poll; its cursor holds the ids of the last answer (at most 1000) and its ETag.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o http.wasm ./plugins/http
package main

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

func main() {}

func init() {
	pdk.Connector(pdk.Info{
		Name:        "http",
		Version:     "1.0.0",
		Title:       "HTTP",
		Description: "Generic REST connector: send HTTP requests to one base URL.",
		Auth: abi.Auth{
			Types:  []string{abi.AuthNone, abi.AuthAPIKey, abi.AuthBasic},
			APIKey: &abi.APIKeyAuth{In: "header", Name: "Authorization", Prefix: "Bearer "},
		},
		ConnectionParams: `{"type":"object","properties":{"base_url":{"type":"string","format":"uri","description":"Base URL of the API, e.g. https://api.example.com/v1; request paths are appended to it."}},"required":["base_url"],"additionalProperties":false}`,
		Hosts:            []string{"{base_url}"},
	})
	pdk.Action("request", request,
		pdk.Title("Send an HTTP request"),
		pdk.Description("Sends an HTTP request to the connection's base URL and returns the status, headers and body. "+
			"Error statuses (4xx, 5xx) are returned as output, not as errors."),
	)
}

// RequestInput is the input of the request action.
type RequestInput struct {
	Method  string            `json:"method,omitempty" jsonschema:"HTTP method; GET when absent" enum:"GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS" default:"GET"`
	Path    string            `json:"path,omitempty" jsonschema:"Path appended to the base URL, e.g. /users/42; may carry a query string" pattern:"^(/|\\?|$)"`
	Query   map[string]string `json:"query,omitempty" jsonschema:"Query parameters added to the URL"`
	Headers map[string]string `json:"headers,omitempty" jsonschema:"Request headers; credentials are added by Plugboard"`
	Body    json.RawMessage   `json:"body,omitempty" jsonschema:"Request body: a string is sent as it is, any other JSON value is sent as JSON"`
}

// RequestOutput is the output of the request action.
type RequestOutput struct {
	Status  int               `json:"status" jsonschema:"HTTP status code"`
	Headers map[string]string `json:"headers" jsonschema:"Response headers by canonical name"`
	Body    any               `json:"body,omitempty" jsonschema:"Response body: parsed JSON when the response is JSON, else text"`
	// BodyBase64 holds a body that is not UTF-8 text.
	BodyBase64 string `json:"body_base64,omitempty" jsonschema:"Response body in base64 when it is not UTF-8 text"`
}

func request(ctx *pdk.Context, in RequestInput) (RequestOutput, error) {
	base := ctx.Param("base_url")
	if base == "" {
		return RequestOutput{}, pdk.Errorf(abi.CodeInvalidInput, "the connection has no base_url; create a connection with params.base_url")
	}
	target, err := buildURL(base, in.Path, in.Query)
	if err != nil {
		return RequestOutput{}, err
	}
	req := pdk.Request{Method: in.Method, URL: target, Headers: in.Headers}
	if len(in.Body) > 0 && string(in.Body) != "null" {
		var text string
		if json.Unmarshal(in.Body, &text) == nil {
			req.Body = []byte(text)
		} else {
			req.Body = in.Body
			if !hasHeader(in.Headers, "Content-Type") {
				req.Headers = withHeader(in.Headers, "Content-Type", "application/json")
			}
		}
	}
	resp, err := ctx.HTTP().Do(req)
	if err != nil {
		return RequestOutput{}, err
	}
	out := RequestOutput{Status: resp.Status, Headers: resp.Headers}
	switch {
	case len(resp.Body) == 0:
	case resp.IsJSON() && json.Valid(resp.Body):
		out.Body = json.RawMessage(resp.Body)
	case utf8.Valid(resp.Body):
		out.Body = string(resp.Body)
	default:
		out.BodyBase64 = base64.StdEncoding.EncodeToString(resp.Body)
	}
	return out, nil
}

// buildURL appends path to base and adds query, keeping base's own path and query.
func buildURL(base, path string, query map[string]string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", pdk.Errorf(abi.CodeInvalidInput, "the connection's base_url %q is not an absolute URL", base)
	}
	p, rawQuery, _ := strings.Cut(path, "?")
	if p != "" && !strings.HasPrefix(p, "/") {
		return "", pdk.Errorf(abi.CodeInvalidInput, "path %q must start with /", path)
	}
	rel, err := url.Parse(p)
	if err != nil || rel.Scheme != "" || rel.Host != "" {
		return "", pdk.Errorf(abi.CodeInvalidInput, "path %q is not a URL path", path)
	}
	joined, err := url.Parse(strings.TrimSuffix(u.EscapedPath(), "/") + rel.EscapedPath())
	if err != nil {
		return "", pdk.Errorf(abi.CodeInvalidInput, "path %q is not a URL path", path)
	}
	u.Path, u.RawPath = joined.Path, joined.RawPath
	q := u.Query()
	extra, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", pdk.Errorf(abi.CodeInvalidInput, "the query string of path %q is malformed: %v", path, err)
	}
	for k, vs := range extra {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	for k, v := range query {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func hasHeader(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func withHeader(h map[string]string, name, value string) map[string]string {
	out := make(map[string]string, len(h)+1)
	for k, v := range h {
		out[k] = v
	}
	out[name] = value
	return out
}
