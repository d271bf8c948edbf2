package server

import (
	"net/url"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

// graphEnv is a server with the named Microsoft 365 connectors uploaded (their real .wasm), the
// real OAuth server, and a Graph fake that accepts that server's tokens.
type graphEnv struct {
	*oauthEnv
	fake *graphfake.Fake
}

func newGraphEnv(t *testing.T, edit func(*Options), connectors ...string) *graphEnv {
	t.Helper()
	oa := startOAuthServer(t)
	fake := graphfake.New(t, graphfake.Options{ValidToken: oa.Valid})
	env := &graphEnv{oauthEnv: &oauthEnv{testServer: startPublicServer(t, edit), oa: oa}, fake: fake}
	for _, c := range connectors {
		env.must(201, env.upload(c))
	}
	return env
}

// One OAuth2 connection serves both Microsoft 365 connectors: the identity platform's
// endpoints are built from the tenant param (default common), the consent asks for the union
// of both connectors' scopes, and once consent is done both connectors call Graph with it.
func TestMicrosoft365SharedConnection(t *testing.T) {
	both := []string{"outlook", "sharepoint"}
	g := newGraphEnv(t, nil, both...)
	e, oa, fake := g.oauthEnv, g.oa, g.fake
	auth := map[string]any{"type": "oauth2", "client_id": oauthClientID, "client_secret": oauthClientSecret}

	for _, c := range []struct{ id, tenant, want string }{
		{"m365-default", "", "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?"},
		{"m365-contoso", "contoso.onmicrosoft.com", "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"},
	} {
		params := map[string]any{"base_url": fake.URL}
		if c.tenant != "" {
			params["tenant"] = c.tenant
		}
		doc := e.must(201, e.do("POST", "/v1/connections", map[string]any{"id": c.id, "connectors": both, "params": params, "auth": auth})).json(t)
		consent, _ := doc["consent_url"].(string)
		if !strings.HasPrefix(consent, c.want) {
			t.Fatalf("%s: consent_url %q, want the tenant's endpoint %s", c.id, consent, c.want)
		}
		u, _ := url.Parse(consent)
		if got := u.Query().Get("scope"); got != "offline_access Mail.ReadWrite Mail.Send Files.ReadWrite.All Sites.Read.All" {
			t.Errorf("%s: scope %q, want both connectors' scopes once each", c.id, got)
		}
		if u.Query().Get("code_challenge_method") != "S256" {
			t.Errorf("%s: no PKCE in %s", c.id, consent)
		}
	}
	bad := e.do("POST", "/v1/connections", map[string]any{"id": "m365-bad", "connectors": both,
		"params": map[string]any{"base_url": fake.URL, "tenant": "../evil"}, "auth": auth})
	if bad.Status != 400 || !strings.Contains(string(bad.Body), "tenant") {
		t.Errorf("a tenant that is not a tenant name: %d %s", bad.Status, bad.Body)
	}

	// The same connection, with the test authorization server's endpoints, serves both.
	withOA := map[string]any{"type": "oauth2", "client_id": oauthClientID, "client_secret": oauthClientSecret,
		"authorization_url": oa.Issuer + "/authorize", "token_url": oa.Issuer + "/token"}
	doc := e.must(201, e.do("POST", "/v1/connections", map[string]any{"id": "m365", "connectors": both,
		"params": map[string]any{"base_url": fake.URL, "download_origin": fake.DownloadURL}, "auth": withOA})).json(t)
	if _, page := e.consent(doc["consent_url"].(string)); page.Status != 200 {
		t.Fatalf("consent: %d %s", page.Status, page.Body)
	}
	msg := fake.Deliver("inbox", graphfake.NewMessage{Subject: "quarterly report"})
	out := e.must(200, e.invoke("outlook", "get_message", map[string]any{"connection": "m365", "input": map[string]any{"id": msg.ID}})).json(t)
	if out["output"].(map[string]any)["subject"] != "quarterly report" {
		t.Fatalf("outlook get_message = %v", out)
	}
	drives := e.must(200, e.invoke("sharepoint", "list_drives", map[string]any{"connection": "m365", "input": map[string]any{}})).json(t)
	if ds, _ := drives["output"].(map[string]any)["drives"].([]any); len(ds) == 0 {
		t.Fatalf("sharepoint list_drives = %v", drives)
	}

	// App-only: client credentials and the user param, so the calls name the mailbox.
	app := e.must(201, e.do("POST", "/v1/connections", map[string]any{"id": "m365-app", "connectors": both,
		"params": map[string]any{"base_url": fake.URL, "tenant": "contoso.onmicrosoft.com", "user": graphfake.UserPrincipalName},
		"auth": map[string]any{"type": "oauth2", "grant": "client_credentials", "client_id": oauthClientID, "client_secret": oauthClientSecret,
			"token_url": oa.Issuer + "/token", "scopes": []string{"https://graph.microsoft.com/.default"}}})).json(t)
	if app["status"] != "ready" {
		t.Fatalf("client_credentials connection = %v", app)
	}
	before := len(fake.Requests())
	list := e.must(200, e.invoke("outlook", "list_messages", map[string]any{"connection": "m365-app", "input": map[string]any{"top": 5}})).json(t)
	if ms, _ := list["output"].(map[string]any)["messages"].([]any); len(ms) != 1 {
		t.Fatalf("app-only list_messages = %v", list)
	}
	for _, r := range fake.Requests()[before:] {
		if !strings.HasPrefix(r.Path, "/v1.0/users/"+graphfake.UserPrincipalName+"/") {
			t.Errorf("app-only request to %s, want the user's mailbox (users/{user}), not me", r.Path)
		}
	}
}
