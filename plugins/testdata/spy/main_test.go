package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
)

const secret = "spy-secret-value"

func harness(t *testing.T, base string, approved ...string) *pdktest.Harness {
	return pdktest.New(t, pdktest.Options{
		Connection:     &abi.Connection{ID: "spy", Params: map[string]any{"base_url": base}},
		Credential:     pdktest.Credential{APIKey: secret, Secrets: map[string]string{"signing_secret": "shh"}},
		ApprovedReveal: approved,
	})
}

func TestWhoamiSeesNoSecret(t *testing.T) {
	out, err := harness(t, "https://x.example").Invoke("whoami", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secret) || !strings.Contains(string(out), `"base_url":"https://x.example"`) {
		t.Errorf("whoami = %s", out)
	}
}

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Key", r.Header.Get("X-Api-Key"))
		io.WriteString(w, "hello")
	}))
	t.Cleanup(srv.Close)
	h := harness(t, srv.URL)
	var out FetchOutput
	if err := h.InvokeInto("fetch", FetchInput{URL: srv.URL + "/p"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Status != 200 || out.Body != "hello" || out.Headers["X-Seen-Key"] != secret || out.Error != nil {
		t.Errorf("fetch = %+v", out)
	}
	no := false
	if err := h.InvokeInto("fetch", FetchInput{URL: srv.URL + "/p", Auth: &no}, &out); err != nil || out.Headers["X-Seen-Key"] != "" {
		t.Errorf("fetch without auth = %+v %v", out, err)
	}
	if err := h.InvokeInto("fetch", FetchInput{URL: "https://elsewhere.example/"}, &out); err != nil || out.Error == nil || out.Error.Code != abi.CodeHostNotAllowed {
		t.Errorf("fetch elsewhere = %+v %v", out, err)
	}
}

func TestCredentialKVAndTimer(t *testing.T) {
	h := harness(t, "https://x.example")
	var rev RevealOutput
	if err := h.InvokeInto("reveal", FieldInput{Field: "api_key"}, &rev); err != nil || rev.Error == nil || rev.Error.Code != abi.CodeDenied {
		t.Errorf("reveal = %+v %v", rev, err)
	}
	if err := harness(t, "https://x.example", "api_key").InvokeInto("reveal", FieldInput{Field: "api_key"}, &rev); err != nil || rev.Value != secret {
		t.Errorf("approved reveal = %+v %v", rev, err)
	}
	var mac HMACOutput
	if err := h.InvokeInto("hmac", HMACInput{Field: "signing_secret", Data: "x"}, &mac); err != nil || mac.MACBase64 == "" || mac.Error != nil {
		t.Errorf("hmac = %+v %v", mac, err)
	}
	var kv KVOutput
	h.InvokeInto("kv", KVInput{Op: "set", Key: "k", Value: json.RawMessage(`[1]`)}, &kv)
	if err := h.InvokeInto("kv", KVInput{Op: "get", Key: "k"}, &kv); err != nil || !kv.Found || string(kv.Value) != `[1]` {
		t.Errorf("kv get = %+v %v", kv, err)
	}
	var tm TimerOutput
	if err := h.InvokeInto("timer", TimerInput{Op: "set", Name: "wake", DelayMS: 1000, Payload: json.RawMessage(`{"a":1}`)}, &tm); err != nil || tm.ID == "" {
		t.Fatalf("timer = %+v %v", tm, err)
	}
	if err := h.FireTimer(tm.ID); err != nil {
		t.Fatal(err)
	}
	if last := h.KV()["spy:last_timer"]; !strings.Contains(string(last), `"name":"wake"`) || !strings.Contains(string(last), `"payload":{"a":1}`) {
		t.Errorf("last timer = %s", last)
	}
	var sl SleepOutput
	if err := h.InvokeInto("sleep", SleepInput{MS: 10}, &sl); err != nil || sl.Error != nil {
		t.Errorf("sleep = %+v %v", sl, err)
	}
}
