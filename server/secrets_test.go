package server

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// TestSecretsStayInTheHost: the secrets of every auth type (API key, password, extra secrets,
// OAuth2 client secret, access and refresh tokens) appear in no API response, no log line (all
// levels captured), no error message and not in clear in the bbolt file, before and after
// rotations of credentials and of the master key.
func TestSecretsStayInTheHost(t *testing.T) {
	e := newOAuthEnv(t, nil)
	const (
		apiKey   = "ak-LEAK-CANARY-1111"
		apiKey2  = "ak-LEAK-CANARY-2222"
		password = "pw-LEAK-CANARY-3333"
		signing  = "ss-LEAK-CANARY-4444"
		wrongCS  = "cs-LEAK-CANARY-5555"
	)
	var bodies []string
	keep := func(r response) response { bodies = append(bodies, string(r.Body)); return r }

	keep(e.must(201, e.do("POST", "/v1/connections", map[string]any{
		"id": "key", "connectors": []string{"spy"}, "params": map[string]any{"base_url": e.api.URL},
		"auth": map[string]any{"type": "api_key", "api_key": apiKey}, "secrets": map[string]any{"signing": signing},
	})))
	keep(e.must(201, e.do("POST", "/v1/connections", map[string]any{
		"id": "basic", "connectors": []string{"spy"}, "params": map[string]any{"base_url": e.api.URL},
		"auth": map[string]any{"type": "basic", "username": "bot", "password": password},
	})))
	doc := keep(e.must(201, e.do("POST", "/v1/connections", map[string]any{
		"id": "oa", "connectors": []string{"spy"}, "params": map[string]any{"base_url": e.api.URL},
		"auth": map[string]any{"type": "oauth2", "client_id": oauthClientID, "client_secret": oauthClientSecret,
			"authorization_url": e.oa.Issuer + "/authorize", "token_url": e.oa.Issuer + "/token"},
	}))).json(t)
	_, page := e.consent(doc["consent_url"].(string))
	keep(page)
	e.fetchMe("oa")
	e.clock.Advance(time.Hour)
	e.oa.Expire()
	e.fetchMe("oa") // refreshed
	// Errors that involve secrets: a refused client secret, a refused refresh.
	keep(e.do("POST", "/v1/connections", map[string]any{
		"id": "cc", "connectors": []string{"spy"}, "params": map[string]any{"base_url": e.api.URL},
		"auth": map[string]any{"type": "oauth2", "grant": "client_credentials", "client_id": oauthClientID,
			"client_secret": wrongCS, "token_url": e.oa.Issuer + "/token"},
	}))
	keep(e.invoke("spy", "fetch", map[string]any{"connection": "key", "input": map[string]any{"url": e.api.URL + "/me"}}))
	keep(e.invoke("spy", "hmac", map[string]any{"connection": "key", "input": map[string]any{"field": "signing", "data": "x"}}))
	keep(e.invoke("spy", "reveal", map[string]any{"connection": "key", "input": map[string]any{"field": "api_key"}}))
	keep(e.invoke("spy", "fetch", map[string]any{"connection": "basic", "input": map[string]any{"url": "https://example.com/"}}))
	keep(e.must(200, e.do("PUT", "/v1/connections/key/credentials", map[string]any{"auth": map[string]any{"type": "api_key", "api_key": apiKey2}, "secrets": map[string]any{"signing": signing}})))
	keep(e.must(200, e.do("PATCH", "/v1/connections/key", map[string]any{"rate_limit": map[string]any{"per_second": 5}})))
	keep(e.must(200, e.do("POST", "/v1/master-key/rotate", nil)))
	e.oa.Revoke()
	e.clock.Advance(time.Hour)
	e.oa.Expire()
	keep(e.invoke("spy", "fetch", map[string]any{"connection": "oa", "input": map[string]any{"url": e.api.URL + "/me"}}))
	keep(e.must(200, e.do("POST", "/v1/connections/oa/reauthorize", nil)))
	keep(e.do("GET", "/v1/connections/oa", nil))

	secrets := []string{apiKey, apiKey2, password, signing, wrongCS}
	for _, b := range bodies {
		for _, s := range append(secrets, oauthClientSecret) {
			if strings.Contains(b, s) {
				t.Errorf("a response holds %q: %s", s, b)
			}
		}
	}
	e.checkNoSecrets(secrets...)
	// What does appear: names of the extra secrets, never values.
	if got := e.must(200, e.do("GET", "/v1/connections/key", nil)).json(t); !slices.Equal(toStrings(got["secret_fields"]), []string{"signing"}) {
		t.Errorf("secret_fields = %v", got["secret_fields"])
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestMasterKeyRotationAPI: POST /v1/master-key/rotate re-seals every secret under a new key
// while calls keep working, the key file ends with that key alone, and a restart reads it.
func TestMasterKeyRotationAPI(t *testing.T) {
	up := newRecorder(t, nil)
	ts := startServer(t, nil)
	ts.must(201, ts.upload("spy"))
	for _, id := range []string{"a", "b", "c"} {
		ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
			"id": id, "connectors": []string{"spy"}, "params": map[string]any{"base_url": up.URL},
			"auth": map[string]any{"type": "api_key", "api_key": "key-" + id},
		}))
	}
	if got := ts.must(200, ts.do("GET", "/v1/master-key", nil)).json(t); got["key_id"] != "k1" {
		t.Errorf("GET /v1/master-key = %v", got)
	}
	got := ts.must(200, ts.do("POST", "/v1/master-key/rotate", nil)).json(t)
	if got["key_id"] != "k2" || got["rotated"] != 3.0 {
		t.Errorf("rotation = %v, want k2 and 3 secrets re-sealed", got)
	}
	check := func(ts *testServer) {
		t.Helper()
		for _, id := range []string{"a", "b", "c"} {
			ts.must(200, ts.invoke("spy", "fetch", map[string]any{"connection": id, "input": map[string]any{"url": up.URL + "/ok"}}))
			if seen := up.seen(); seen[len(seen)-1] != "key-"+id {
				t.Errorf("%s: the upstream saw %q", id, seen[len(seen)-1])
			}
		}
	}
	check(ts)
	raw, err := os.ReadFile(ts.dir + "/master.key")
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		Active string
		Keys   map[string]json.RawMessage
	}
	if json.Unmarshal(raw, &kf) != nil || kf.Active != "k2" || len(kf.Keys) != 1 {
		t.Errorf("key file after rotation: active %q, %d keys", kf.Active, len(kf.Keys))
	}
	sealer, err := storage.LoadKeyFile(ts.dir + "/master.key")
	if err != nil || !slices.Equal(sealer.KeyIDs(), []string{"k2"}) {
		t.Errorf("key file: %v %v", sealer, err)
	}
	check(ts.restart())
}

// TestRevealApproval: plugboard_credential reveal needs the manifest capability and the
// operator's approval on the connection ("reveal_approved"); approvals must name declared
// fields and can be withdrawn.
func TestRevealApproval(t *testing.T) {
	up := newRecorder(t, nil)
	ts := startServer(t, nil)
	ts.must(201, ts.upload("spy"))
	reveal := func() map[string]any {
		r := ts.must(200, ts.invoke("spy", "reveal", map[string]any{"connection": "rv", "input": map[string]any{"field": "api_key"}}))
		return r.json(t)["output"].(map[string]any)
	}
	body := map[string]any{
		"id": "rv", "connectors": []string{"spy"}, "params": map[string]any{"base_url": up.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "reveal-me"}, "reveal_approved": []string{"nope"},
	}
	if r := ts.do("POST", "/v1/connections", body); r.Status != 400 || !strings.Contains(string(r.Body), "capabilities.reveal") {
		t.Errorf("approving an undeclared field: %d %s", r.Status, r.Body)
	}
	body["reveal_approved"] = []string{"api_key"}
	doc := ts.must(201, ts.do("POST", "/v1/connections", body)).json(t)
	if !slices.Equal(toStrings(doc["reveal_approved"]), []string{"api_key"}) {
		t.Errorf("reveal_approved = %v", doc["reveal_approved"])
	}
	if out := reveal(); out["value"] != "reveal-me" {
		t.Errorf("approved reveal = %v", out)
	}
	ts.must(200, ts.do("PATCH", "/v1/connections/rv", map[string]any{"reveal_approved": []string{}}))
	if out := reveal(); out["error"].(map[string]any)["code"] != "denied" {
		t.Errorf("withdrawn reveal = %v", out)
	}
}
