// Command guesterr is a test plugin that fails on request with any guest error document: the
// action fail returns {"error": {"code", "message", "retryable", "details"}} exactly as its input
// gives them, details included byte for byte, so server tests can show what Plugboard does with
// whatever a plugin reports (for example a rate_limited error whose details.retry_after_s is
// absurd, negative or not a number).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o guesterr.wasm ./plugins/testdata/guesterr
package main

import (
	"encoding/json"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

func main() {}

func init() {
	pdk.Connector(pdk.Info{
		Name:        "guesterr",
		Version:     "1.0.0",
		Title:       "Guest error",
		Description: "Test plugin that returns the guest error document its input describes.",
		Auth:        abi.Auth{Types: []string{abi.AuthNone}},
	})
	pdk.Action("fail", fail, pdk.Description("Returns the error document given as input."))
}

// FailInput is the error document fail returns.
type FailInput struct {
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Retryable bool            `json:"retryable,omitempty"`
	Details   json.RawMessage `json:"details,omitempty" jsonschema:"Any JSON value, passed on unchanged"`
}

func fail(ctx *pdk.Context, in FailInput) (struct{}, error) {
	return struct{}{}, &abi.Error{Code: in.Code, Message: in.Message, Retryable: in.Retryable, Details: in.Details}
}
