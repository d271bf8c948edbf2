package msgraph

import (
	"encoding/json"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

func TestErrorKeepsGraphsCodeAndRequestID(t *testing.T) {
	body := `{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store.",` +
		`"innerError":{"date":"2026-12-03T10:00:00","request-id":"0f1e2d3c-aaaa-bbbb-cccc-000000000001","client-request-id":"x"}}}`
	err := Error(&pdk.Response{Status: 404, Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(body)})
	e, ok := err.(*abi.Error)
	if !ok || e.Code != abi.CodeNotFound || e.Message != "The specified object was not found in the store. (ErrorItemNotFound)" {
		t.Fatalf("Error = %#v", err)
	}
	var d map[string]any
	json.Unmarshal(e.Details, &d)
	if d["graph_code"] != "ErrorItemNotFound" || d["request_id"] != "0f1e2d3c-aaaa-bbbb-cccc-000000000001" || d["status"] != 404.0 {
		t.Errorf("details = %v", d)
	}

	throttled := Error(&pdk.Response{Status: 429, Headers: map[string]string{"Retry-After": "7"},
		Body: []byte(`{"error":{"code":"TooManyRequests","message":"Too many requests."}}`)}).(*abi.Error)
	json.Unmarshal(throttled.Details, &d)
	if throttled.Code != abi.CodeRateLimited || !throttled.Retryable || d["retry_after_s"] != 7.0 || d["graph_code"] != "TooManyRequests" {
		t.Errorf("429 = %+v %v", throttled, d)
	}
	// A body that is not Graph's keeps the generic mapping.
	if e := Error(&pdk.Response{Status: 502, Body: []byte("bad gateway")}).(*abi.Error); e.Code != abi.CodeUpstreamError || !e.Retryable {
		t.Errorf("502 = %+v", e)
	}
	if Error(&pdk.Response{Status: 202}) != nil {
		t.Error("a 202 is an error")
	}
	if got := RetryAfterSeconds(&pdk.Response{Headers: map[string]string{"Retry-After": "0"}}); got != 1 {
		t.Errorf("Retry-After 0 = %d s, want at least 1", got)
	}
	if got := RetryAfterSeconds(&pdk.Response{Headers: map[string]string{}}); got != 0 {
		t.Errorf("no Retry-After = %d, want 0", got)
	}
}

func TestClientOwnsOnlyItsGraphOrigin(t *testing.T) {
	c := &Client{Base: "https://graph.microsoft.com/v1.0", User: "me"}
	for u, want := range map[string]bool{
		"https://graph.microsoft.com/v1.0/me/messages?$skip=10":  true,
		"https://GRAPH.microsoft.com:443/v1.0/me/messages":       true,
		"http://graph.microsoft.com/v1.0/me/messages":            false,
		"https://graph.microsoft.com.evil.example/v1.0/messages": false,
		"https://contoso.sharepoint.com/download":                false,
		"not a url": false,
	} {
		if got := c.Owns(u); got != want {
			t.Errorf("Owns(%q) = %v, want %v", u, got, want)
		}
	}
	if err := c.CheckLink("the cursor", "https://evil.example/x"); err == nil {
		t.Error("CheckLink accepted a foreign link")
	}
	if c.UserURL("/messages") != "https://graph.microsoft.com/v1.0/me/messages" || c.URL("/subscriptions") != "https://graph.microsoft.com/v1.0/subscriptions" {
		t.Errorf("URLs: %s %s", c.UserURL("/messages"), c.URL("/subscriptions"))
	}
}
