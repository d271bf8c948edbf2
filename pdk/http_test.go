package pdk

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
)

func testContext(host Host) *Context {
	return newContext(host, abi.Common{CorrelationID: "c_1"}, nil)
}

func TestDoEncodesTheRequestDocument(t *testing.T) {
	tests := []struct {
		name   string
		client func(*Context) *HTTPClient
		req    Request
		want   string
	}{
		{
			name:   "a bare GET",
			client: (*Context).HTTP,
			req:    Request{URL: "https://api.example.com/x"},
			want:   `{"method":"GET","url":"https://api.example.com/x"}`,
		},
		{
			name:   "headers are canonical, a text body is body, auth can be turned off",
			client: (*Context).HTTP,
			req: Request{Method: "post", URL: "https://api.example.com/x", Headers: map[string]string{"content-type": "text/plain", "x-api-thing": "1"},
				Body: []byte("héllo"), Timeout: 1500 * time.Millisecond, NoAuth: true},
			want: `{"method":"POST","url":"https://api.example.com/x","headers":{"Content-Type":"text/plain","X-Api-Thing":"1"},"body":"héllo","timeout_ms":1500,"auth":false}`,
		},
		{
			name:   "a binary body is body_base64",
			client: (*Context).HTTP,
			req:    Request{Method: "PUT", URL: "https://api.example.com/x", Body: []byte{0xff, 0x00, 0x01}},
			want:   `{"method":"PUT","url":"https://api.example.com/x","body_base64":"/wAB"}`,
		},
		{
			name:   "an empty body is still sent",
			client: (*Context).HTTP,
			req:    Request{Method: "POST", URL: "https://api.example.com/x", Body: []byte{}},
			want:   `{"method":"POST","url":"https://api.example.com/x","body":""}`,
		},
		{
			name: "client headers apply, the request's win",
			client: func(c *Context) *HTTPClient {
				return c.HTTP().WithHeaders(map[string]string{"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"})
			},
			req:  Request{URL: "https://api.github.com/", Headers: map[string]string{"Accept": "text/plain"}},
			want: `{"method":"GET","url":"https://api.github.com/","headers":{"Accept":"text/plain","X-Github-Api-Version":"2022-11-28"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := &recordingHost{reply: map[string]string{abi.ImportHTTP: `{"status":204,"headers":{}}`}}
			resp, err := tt.client(testContext(host)).Do(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != 204 {
				t.Errorf("status %d", resp.Status)
			}
			if got := host.requests[abi.ImportHTTP]; len(got) != 1 || got[0] != tt.want {
				t.Errorf("request\n got %v\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDoDecodesTheReply(t *testing.T) {
	tests := []struct {
		name     string
		reply    string
		status   int
		body     string
		errCode  string
		errIsAbi bool
	}{
		{name: "a text body", reply: `{"status":200,"headers":{"Content-Type":"application/json"},"body":"{\"a\":1}"}`, status: 200, body: `{"a":1}`},
		{name: "a binary body", reply: `{"status":200,"headers":{},"body_base64":"/wAB"}`, status: 200, body: "\xff\x00\x01"},
		{name: "a refusal is an *abi.Error with the host's code", reply: `{"error":{"code":"host_not_allowed","message":"https://evil.example is not allowed"}}`, errCode: abi.CodeHostNotAllowed},
		{name: "a reply that is not JSON is internal", reply: `<html>`, errCode: abi.CodeInternal},
		{name: "bad base64 is internal", reply: `{"status":200,"body_base64":"***"}`, errCode: abi.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := &recordingHost{reply: map[string]string{abi.ImportHTTP: tt.reply}}
			resp, err := testContext(host).HTTP().Do(Request{URL: "https://x.example"})
			if tt.errCode != "" {
				var ae *abi.Error
				if !errors.As(err, &ae) || ae.Code != tt.errCode || resp != nil {
					t.Fatalf("got %v, %v; want an *abi.Error with code %s", resp, err, tt.errCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || string(resp.Body) != tt.body {
				t.Errorf("got %d %q", resp.Status, resp.Body)
			}
		})
	}
}

func TestDoJSON(t *testing.T) {
	type thing struct {
		Name string `json:"name"`
	}
	t.Run("a 2xx answer is decoded and the body encoded", func(t *testing.T) {
		host := &recordingHost{reply: map[string]string{abi.ImportHTTP: `{"status":201,"headers":{"Content-Type":"application/json"},"body":"{\"name\":\"out\"}"}`}}
		var out thing
		resp, err := testContext(host).HTTP().PostJSON("https://x.example/t", thing{Name: "in"}, &out)
		if err != nil || resp.Status != 201 || out.Name != "out" {
			t.Fatalf("got %+v, %v, %+v", resp, err, out)
		}
		want := `{"method":"POST","url":"https://x.example/t","headers":{"Accept":"application/json","Content-Type":"application/json"},"body":"{\"name\":\"in\"}"}`
		if got := host.requests[abi.ImportHTTP][0]; got != want {
			t.Errorf("request\n got %s\nwant %s", got, want)
		}
	})
	t.Run("a non-2xx answer is a StatusError with the response", func(t *testing.T) {
		host := &recordingHost{reply: map[string]string{abi.ImportHTTP: `{"status":404,"headers":{},"body":"{\"message\":\"Not Found\"}"}`}}
		var out thing
		resp, err := testContext(host).HTTP().GetJSON("https://x.example/t", &out)
		var ae *abi.Error
		if !errors.As(err, &ae) || ae.Code != abi.CodeNotFound || ae.Message != "Not Found" || resp == nil || resp.Status != 404 {
			t.Fatalf("got %+v, %v", resp, err)
		}
	})
	t.Run("a custom status mapping", func(t *testing.T) {
		host := &recordingHost{reply: map[string]string{abi.ImportHTTP: `{"status":404,"headers":{},"body":""}`}}
		client := testContext(host).HTTP().WithStatusErrors(func(r *Response) error {
			if r.Status == 404 {
				return nil // absence is fine here
			}
			return StatusError(r)
		})
		resp, err := client.GetJSON("https://x.example/t", &thing{})
		if err != nil || resp.Status != 404 {
			t.Fatalf("got %+v, %v", resp, err)
		}
	})
	t.Run("a 2xx answer that is not JSON is upstream_error", func(t *testing.T) {
		host := &recordingHost{reply: map[string]string{abi.ImportHTTP: `{"status":200,"headers":{},"body":"<html>"}`}}
		_, err := testContext(host).HTTP().GetJSON("https://x.example/t", &thing{})
		var ae *abi.Error
		if !errors.As(err, &ae) || ae.Code != abi.CodeUpstreamError {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a host failure returns no response", func(t *testing.T) {
		host := &recordingHost{reply: map[string]string{abi.ImportHTTP: `{"error":{"code":"timeout","message":"slow"}}`}}
		resp, err := testContext(host).HTTP().GetJSON("https://x.example/t", nil)
		var ae *abi.Error
		if resp != nil || !errors.As(err, &ae) || ae.Code != abi.CodeTimeout {
			t.Fatalf("got %+v, %v", resp, err)
		}
	})
}

func TestResponseHelpers(t *testing.T) {
	r := &Response{Status: 200, Headers: map[string]string{"Content-Type": "application/problem+json; charset=utf-8", "x-odd": "1"}, Body: []byte(`{"a":1}`)}
	if !r.OK() || !r.IsJSON() || r.Header("content-type") == "" || r.Header("X-Odd") != "1" || r.Text() != `{"a":1}` {
		t.Errorf("helpers disagree: %+v", r)
	}
	var v map[string]int
	if err := r.JSON(&v); err != nil || v["a"] != 1 {
		t.Errorf("JSON: %v %v", v, err)
	}
	if (&Response{Status: 302}).OK() || (&Response{Headers: map[string]string{"Content-Type": "text/json-ish"}}).IsJSON() {
		t.Error("OK or IsJSON too lenient")
	}
}

func TestCanonicalHeaderKey(t *testing.T) {
	for in, want := range map[string]string{
		"content-type":         "Content-Type",
		"X-GITHUB-API-VERSION": "X-Github-Api-Version",
		"www-authenticate":     "Www-Authenticate",
		"x_custom":             "X_custom",
		"bad header":           "bad header",
		"":                     "",
	} {
		if got := CanonicalHeaderKey(in); got != want {
			t.Errorf("CanonicalHeaderKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCapabilityWrappers(t *testing.T) {
	host := &recordingHost{reply: map[string]string{
		abi.ImportCredential: `{"mac_base64":"AQID","value":"sekrit"}`,
		abi.ImportTimer:      `{"id":"t_1"}`,
		abi.ImportKV:         `{"found":true,"value":{"n":3}}`,
	}}
	ctx := testContext(host)
	mac, err := ctx.Credential().HMACSHA256("signing_secret", []byte("payload"))
	if err != nil || string(mac) != "\x01\x02\x03" {
		t.Errorf("HMACSHA256 = %v, %v", mac, err)
	}
	if v, err := ctx.Credential().Reveal("api_key"); err != nil || v != "sekrit" {
		t.Errorf("Reveal = %q, %v", v, err)
	}
	if id, err := ctx.Timer().Set("renew", time.Hour, map[string]int{"n": 1}); err != nil || id != "t_1" {
		t.Errorf("Set = %q, %v", id, err)
	}
	if err := ctx.Timer().Cancel("t_1"); err != nil {
		t.Error(err)
	}
	if err := ctx.Timer().Sleep(250 * time.Millisecond); err != nil {
		t.Error(err)
	}
	var v struct{ N int }
	if found, err := ctx.KV().Get("k", &v); !found || err != nil || v.N != 3 {
		t.Errorf("Get = %v, %v, %+v", found, err, v)
	}
	if err := ctx.KV().Set("k", v, 1500*time.Millisecond); err != nil {
		t.Error(err)
	}
	if err := ctx.KV().Delete("k"); err != nil {
		t.Error(err)
	}
	want := map[string][]string{
		abi.ImportCredential: {
			`{"op":"hmac_sha256","field":"signing_secret","data_base64":"cGF5bG9hZA=="}`,
			`{"op":"reveal","field":"api_key"}`,
		},
		abi.ImportTimer: {
			`{"op":"set","name":"renew","delay_ms":3600000,"payload":{"n":1}}`,
			`{"op":"cancel","id":"t_1"}`,
			`{"op":"sleep","ms":250}`,
		},
		abi.ImportKV: {
			`{"op":"get","key":"k"}`,
			`{"op":"set","key":"k","value":{"N":3},"ttl_s":2}`,
			`{"op":"delete","key":"k"}`,
		},
	}
	for fn, reqs := range want {
		got, _ := json.Marshal(host.requests[fn])
		exp, _ := json.Marshal(reqs)
		if string(got) != string(exp) {
			t.Errorf("%s requests\n got %s\nwant %s", fn, got, exp)
		}
	}
}

func TestCapabilityRefusals(t *testing.T) {
	ctx := testContext(&recordingHost{}) // every import answers denied
	var ae *abi.Error
	if _, err := ctx.Credential().Reveal("api_key"); !errors.As(err, &ae) || ae.Code != abi.CodeDenied {
		t.Errorf("Reveal: %v", err)
	}
	if _, err := ctx.Timer().Set("x", time.Second, nil); !errors.As(err, &ae) || ae.Code != abi.CodeDenied {
		t.Errorf("Set: %v", err)
	}
	if found, err := ctx.KV().Get("k", nil); found || !errors.As(err, &ae) || ae.Code != abi.CodeDenied {
		t.Errorf("Get: %v %v", found, err)
	}
	notFound := testContext(&recordingHost{reply: map[string]string{abi.ImportKV: `{"found":false}`}})
	if found, err := notFound.KV().Get("k", nil); found || err != nil {
		t.Errorf("Get of an absent key: %v %v", found, err)
	}
}
