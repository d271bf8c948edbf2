package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// asKey returns the header arguments of ts.do that send secret instead of the admin token.
func asKey(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

// createKey creates a key with the admin token and returns its id and secret.
func (ts *testServer) createKey(name, role string, scopes map[string]any) (id, secret string) {
	ts.t.Helper()
	body := map[string]any{"name": name, "role": role}
	if scopes != nil {
		body["scopes"] = scopes
	}
	k := ts.must(201, ts.do("POST", "/v1/keys", body)).json(ts.t)
	return k["id"].(string), k["secret"].(string)
}

// auditEntries returns the audit entries the query selects, following "next".
func (ts *testServer) auditEntries(query url.Values) []map[string]any {
	ts.t.Helper()
	var out []map[string]any
	for range 100 {
		var page struct {
			Entries []map[string]any `json:"entries"`
			Next    *string          `json:"next"`
		}
		r := ts.must(200, ts.do("GET", "/v1/audit?"+query.Encode(), nil))
		if err := json.Unmarshal(r.Body, &page); err != nil {
			ts.t.Fatal(err)
		}
		out = append(out, page.Entries...)
		if page.Next == nil {
			return out
		}
		query.Set("cursor", *page.Next)
	}
	ts.t.Fatal("audit paging did not end")
	return nil
}

// spyFixture uploads spy with connections spy-a and spy-b and an MCP server on spy-a.
func spyFixture(t *testing.T, ts *testServer) (version string) {
	t.Helper()
	version = ts.must(201, ts.upload("spy")).json(t)["version"].(string)
	for _, id := range []string{"spy-a", "spy-b"} {
		ts.must(201, ts.do("POST", "/v1/connections", map[string]any{"id": id, "connectors": []string{"spy"},
			"params": map[string]any{"base_url": "http://127.0.0.1:9"}, "auth": map[string]any{"type": "api_key", "api_key": "k-" + id}}))
	}
	ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{"name": "spy-mcp", "connector": "spy", "connection": "spy-a", "tools": []string{"count"}}))
	return version
}

// TestPermissionMatrix calls one route of every endpoint family with a key of every role:
// the roles the README's table allows get past access control (anything but 401 and 403),
// the others get 403 forbidden, and each denial is in the audit log. Rows for routes that
// arrive later (subscriptions, events, invocations) go into the table as they land.
func TestPermissionMatrix(t *testing.T) {
	ts := startServer(t, nil)
	version := spyFixture(t, ts)
	secrets := map[string]string{roleAdmin: testToken}
	keyIDs := map[string]string{roleAdmin: adminKeyID}
	for _, role := range roles[1:] {
		keyIDs[role], secrets[role] = ts.createKey("matrix-"+role, role, nil)
	}
	all := roles
	readers := []string{roleAdmin, roleAuthor, roleConnections, roleInvoker, roleReader}
	for _, tc := range []struct {
		family, method, path string
		body                 any
		allowed              []string
	}{
		{"connectors", "GET", "/v1/connectors", nil, readers},
		{"connectors", "GET", "/v1/connectors/spy", nil, readers},
		{"connectors", "GET", "/v1/connectors/spy/actions", nil, readers},
		{"versions", "GET", "/v1/connectors/spy/versions/" + version, nil, readers},
		{"versions", "POST", "/v1/connectors", []byte("not wasm"), []string{roleAdmin, roleAuthor}},
		{"versions", "PUT", "/v1/connectors/spy/active", map[string]any{"version": "9.9.9"}, []string{roleAdmin, roleAuthor}},
		{"versions", "DELETE", "/v1/connectors/spy/versions/9.9.9", nil, []string{roleAdmin, roleAuthor}},
		{"connections", "GET", "/v1/connections", nil, []string{roleAdmin, roleAuthor, roleConnections, roleReader}},
		{"connections", "GET", "/v1/connections/spy-a", nil, []string{roleAdmin, roleAuthor, roleConnections, roleReader}},
		{"connections", "POST", "/v1/connections", map[string]any{"id": "nope"}, []string{roleAdmin, roleConnections}},
		{"connections", "PATCH", "/v1/connections/nope", map[string]any{}, []string{roleAdmin, roleConnections}},
		{"connections", "PUT", "/v1/connections/nope/credentials", map[string]any{"type": "api_key", "api_key": "x"}, []string{roleAdmin, roleConnections}},
		{"connections", "POST", "/v1/connections/nope/reauthorize", map[string]any{}, []string{roleAdmin, roleConnections}},
		{"connections", "DELETE", "/v1/connections/nope", nil, []string{roleAdmin, roleConnections}},
		{"actions", "POST", "/v1/connectors/spy/actions/count", map[string]any{"connection": "spy-a"}, []string{roleAdmin, roleInvoker}},
		{"mcp servers", "GET", "/v1/mcp-servers", nil, []string{roleAdmin, roleAuthor}},
		{"mcp servers", "GET", "/v1/mcp-servers/spy-mcp", nil, []string{roleAdmin, roleAuthor}},
		{"mcp servers", "POST", "/v1/mcp-servers", map[string]any{"name": "x"}, []string{roleAdmin, roleAuthor}},
		{"mcp servers", "PATCH", "/v1/mcp-servers/nope", map[string]any{}, []string{roleAdmin, roleAuthor}},
		{"mcp servers", "POST", "/v1/mcp-servers/nope/rotate-token", nil, []string{roleAdmin, roleAuthor}},
		{"mcp servers", "DELETE", "/v1/mcp-servers/nope", nil, []string{roleAdmin, roleAuthor}},
		{"keys", "GET", "/v1/keys", nil, []string{roleAdmin}},
		{"keys", "GET", "/v1/keys/key_admin", nil, []string{roleAdmin}},
		{"keys", "POST", "/v1/keys", map[string]any{"name": "x"}, []string{roleAdmin}},
		{"keys", "DELETE", "/v1/keys/key_nope", nil, []string{roleAdmin}},
		{"audit", "GET", "/v1/audit", nil, []string{roleAdmin}},
		{"master key", "GET", "/v1/master-key", nil, []string{roleAdmin}},
		{"subscriptions", "POST", "/v1/subscriptions", map[string]any{"connector": "spy", "trigger": "nope", "connection": "spy-a", "delivery": map[string]any{"type": "queue"}}, []string{roleAdmin, roleInvoker}},
		{"subscriptions", "GET", "/v1/subscriptions", nil, []string{roleAdmin, roleInvoker, roleReader}},
		{"subscriptions", "GET", "/v1/subscriptions/sub_nope", nil, []string{roleAdmin, roleInvoker, roleReader}},
		{"subscriptions", "PATCH", "/v1/subscriptions/sub_nope", map[string]any{"interval_s": 5}, []string{roleAdmin, roleInvoker}},
		{"subscriptions", "DELETE", "/v1/subscriptions/sub_nope", nil, []string{roleAdmin, roleInvoker}},
		{"subscriptions", "POST", "/v1/subscriptions/sub_nope/replay", map[string]any{"since": "2026-01-01T00:00:00Z"}, []string{roleAdmin, roleInvoker}},
		{"events", "GET", "/v1/subscriptions/sub_nope/events", nil, []string{roleAdmin, roleInvoker}},
		{"events", "POST", "/v1/subscriptions/sub_nope/events/ack", map[string]any{"ids": []string{"evt_x"}}, []string{roleAdmin, roleInvoker}},
		{"invocations", "GET", "/v1/invocations/c_nope", nil, []string{roleAdmin, roleAuthor, roleInvoker, roleReader}},
	} {
		for _, role := range all {
			t.Run(tc.family+"/"+tc.method+" "+tc.path+"/"+role, func(t *testing.T) {
				r := ts.do(tc.method, tc.path, tc.body, asKey(secrets[role])...)
				if slices.Contains(tc.allowed, role) {
					if r.Status == 401 || r.Status == 403 {
						t.Fatalf("%s may, but got %d %s", role, r.Status, r.Body)
					}
					return
				}
				if r.Status != 403 || r.code(t) != codeForbidden {
					t.Fatalf("%s may not, but got %d %s", role, r.Status, r.Body)
				}
				cid := r.Header.Get("X-Correlation-ID")
				entries := ts.auditEntries(url.Values{"actor": {keyIDs[role]}, "limit": {"1000"}})
				for _, e := range entries {
					if e["correlation_id"] == cid {
						if e["outcome"] != "denied" || e["status"] != 403.0 || e["role"] != role || e["action"] != tc.method+" "+strings.Split(routeOf(t, tc.path), "?")[0] {
							t.Errorf("audit entry %v", e)
						}
						return
					}
				}
				t.Errorf("denial %s is not in the audit log", cid)
			})
		}
	}

	// MCP endpoints: admin keys and keys that may invoke open them; others are a 401, as for
	// any token the endpoint does not accept (API.md "MCP servers").
	for _, role := range all {
		r := ts.initialize("/mcp/spy-mcp", secrets[role])
		want := 401
		if role == roleAdmin || role == roleInvoker {
			want = 200
		}
		if r.Status != want {
			t.Errorf("MCP with a %s key: %d %s, want %d", role, r.Status, r.Body, want)
		}
	}
}

// routeOf maps the matrix paths back to their route templates (the audit action).
func routeOf(t *testing.T, path string) string {
	t.Helper()
	for _, pair := range [][2]string{
		{"/v1/connectors/spy/versions/", "/v1/connectors/{name}/versions/{version}"},
		{"/v1/connectors/spy/actions/count", "/v1/connectors/{name}/actions/{action}"},
		{"/v1/connectors/spy/actions", "/v1/connectors/{name}/actions"},
		{"/v1/connectors/spy/active", "/v1/connectors/{name}/active"},
		{"/v1/connectors/spy", "/v1/connectors/{name}"},
		{"/v1/connections/nope/credentials", "/v1/connections/{id}/credentials"},
		{"/v1/connections/nope/reauthorize", "/v1/connections/{id}/reauthorize"},
		{"/v1/connections/", "/v1/connections/{id}"},
		{"/v1/mcp-servers/nope/rotate-token", "/v1/mcp-servers/{name}/rotate-token"},
		{"/v1/mcp-servers/", "/v1/mcp-servers/{name}"},
		{"/v1/keys/", "/v1/keys/{id}"},
		{"/v1/subscriptions/sub_nope/events/ack", "/v1/subscriptions/{id}/events/ack"},
		{"/v1/subscriptions/sub_nope/events", "/v1/subscriptions/{id}/events"},
		{"/v1/subscriptions/sub_nope/replay", "/v1/subscriptions/{id}/replay"},
		{"/v1/subscriptions/", "/v1/subscriptions/{id}"},
		{"/v1/invocations/", "/v1/invocations/{correlation_id}"},
	} {
		if strings.HasPrefix(path, pair[0]) {
			return pair[1]
		}
	}
	return path
}

// TestRolePermissionTable pins the permissions of the routes that other work registers
// (subscriptions, events, invocation logs), whose handlers are not in this package yet.
func TestRolePermissionTable(t *testing.T) {
	for _, tc := range []struct {
		perm    permission
		allowed []string
	}{
		{permSubscriptionsRead, []string{roleAdmin, roleInvoker, roleReader}},
		{permSubscriptionsManage, []string{roleAdmin, roleInvoker}},
		{permEventsConsume, []string{roleAdmin, roleInvoker}},
		{permInvocationsRead, []string{roleAdmin, roleAuthor, roleInvoker, roleReader}},
		{permKeysManage, []string{roleAdmin}},
		{permAuditRead, []string{roleAdmin}},
	} {
		for _, role := range roles {
			p := &principal{Role: role}
			if got, want := p.can(tc.perm), slices.Contains(tc.allowed, role); got != want {
				t.Errorf("%s can %s: %v, want %v", role, tc.perm, got, want)
			}
		}
	}
	for _, perm := range []permission{"", "subscriptions.write"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("a route with permission %q was accepted", perm)
				}
			}()
			mustPermission("GET", "/x", perm)
		}()
	}
	for _, role := range roles {
		if rolePermissions[role] == nil {
			t.Errorf("role %s has no row", role)
		}
	}
	inv := &principal{KeyID: "key_a", Role: roleInvoker}
	if !inv.owns("key_a") || inv.owns("key_b") || inv.mayRead("key_b") || !adminPrincipal.owns("key_b") ||
		!(&principal{KeyID: "key_r", Role: roleReader}).mayRead("key_b") || (&principal{KeyID: "key_r", Role: roleReader}).owns("key_b") {
		t.Error("owns or mayRead is wrong")
	}
}

// TestScopedInvokerKey: an app's key scoped to its connection invokes with it and nothing
// else, sees only it, and opens only the MCP servers on it.
func TestScopedInvokerKey(t *testing.T) {
	ts := startServer(t, nil)
	spyFixture(t, ts)
	ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{"name": "spy-mcp-b", "connector": "spy", "connection": "spy-b", "tools": []string{"count"}}))
	id, secret := ts.createKey("app-a", roleInvoker, map[string]any{"connectors": []string{"spy"}, "connections": []string{"spy-a"}})
	as := asKey(secret)

	ts.must(200, ts.do("POST", "/v1/connectors/spy/actions/count", map[string]any{"connection": "spy-a"}, as...))
	if e := ts.auditEntries(url.Values{"actor": {id}}); len(e) != 0 {
		t.Errorf("an allowed action call is in the audit log: %v", e)
	}
	r := ts.must(403, ts.do("POST", "/v1/connectors/spy/actions/count", map[string]any{"connection": "spy-b"}, as...))
	if r.code(t) != codeForbidden {
		t.Fatalf("another connection: %s", r.Body)
	}
	denied := ts.auditEntries(url.Values{"actor": {id}, "target": {"connection:spy-b"}})
	if len(denied) != 1 || denied[0]["outcome"] != "denied" || denied[0]["correlation_id"] != r.Header.Get("X-Correlation-ID") {
		t.Fatalf("audit of the denial: %v", denied)
	}
	// The invocation log of a call is visible within the key's scopes only (404 outside).
	own := ts.must(200, ts.do("POST", "/v1/connectors/spy/actions/count", map[string]any{"connection": "spy-a"}, as...)).Header.Get("X-Correlation-ID")
	other := ts.must(200, ts.do("POST", "/v1/connectors/spy/actions/count", map[string]any{"connection": "spy-b"})).Header.Get("X-Correlation-ID")
	ts.must(200, ts.do("GET", "/v1/invocations/"+own, nil, as...))
	ts.must(404, ts.do("GET", "/v1/invocations/"+other, nil, as...))
	ts.must(200, ts.do("GET", "/v1/invocations/"+other, nil))
	if r := ts.initialize("/mcp/spy-mcp", secret); r.Status != 200 {
		t.Errorf("own MCP server: %d %s", r.Status, r.Body)
	}
	if r := ts.initialize("/mcp/spy-mcp-b", secret); r.Status != 401 {
		t.Errorf("another connection's MCP server: %d %s", r.Status, r.Body)
	}
	if r := ts.initialize("/mcp", secret); r.Status != 401 {
		t.Errorf("namespace endpoint: %d %s", r.Status, r.Body)
	}

	// A reader narrowed to spy-a lists only spy-a and cannot read spy-b.
	_, rsecret := ts.createKey("ops", roleReader, map[string]any{"connections": []string{"spy-a"}})
	list := ts.must(200, ts.do("GET", "/v1/connections", nil, asKey(rsecret)...)).json(t)["connections"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != "spy-a" {
		t.Errorf("scoped list: %v", list)
	}
	ts.must(403, ts.do("GET", "/v1/connections/spy-b", nil, asKey(rsecret)...))
	// A reader narrowed to another connector sees no connector spy.
	_, osecret := ts.createKey("other", roleReader, map[string]any{"connectors": []string{"github"}})
	if l := ts.must(200, ts.do("GET", "/v1/connectors", nil, asKey(osecret)...)).json(t)["connectors"].([]any); len(l) != 0 {
		t.Errorf("connectors outside the scope listed: %v", l)
	}
	ts.must(403, ts.do("GET", "/v1/connectors/spy", nil, asKey(osecret)...))
	// An author narrowed to connectors cannot upload (the name is known only after the checks).
	_, asecret := ts.createKey("author-spy", roleAuthor, map[string]any{"connectors": []string{"spy"}})
	ts.must(403, ts.do("POST", "/v1/connectors", pluginWasm(t, "spy"), asKey(asecret)...))
	ts.must(200, ts.do("PUT", "/v1/connectors/spy/active", map[string]any{"version": "1.0.0"}, asKey(asecret)...))
}

// TestKeyLifecycle: a key works until revoked or expired, its secret is shown once and never
// stored, and bad requests are refused.
func TestKeyLifecycle(t *testing.T) {
	ts := startServer(t, nil)
	id, secret := ts.createKey("app", roleReader, nil)
	if !strings.HasPrefix(id, "key_") || !strings.HasPrefix(secret, "pbk_") {
		t.Fatalf("id %q secret %q", id, secret)
	}
	ts.must(200, ts.do("GET", "/v1/connectors", nil, asKey(secret)...))

	for _, r := range []response{ts.must(200, ts.do("GET", "/v1/keys", nil)), ts.must(200, ts.do("GET", "/v1/keys/"+id, nil))} {
		if bytes.Contains(r.Body, []byte(secret)) || bytes.Contains(r.Body, []byte(`"secret"`)) {
			t.Fatalf("a read shows the secret: %s", r.Body)
		}
	}
	// The secret is nowhere in the data directory (only its SHA-256).
	_, rest, _ := strings.Cut(strings.TrimPrefix(secret, "pbk_"), "_")
	filepath.WalkDir(ts.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(rest)) {
			t.Errorf("%s holds the key secret in clear", path)
		}
		return nil
	})

	ts.must(204, ts.do("DELETE", "/v1/keys/"+id, nil))
	r := ts.must(401, ts.do("GET", "/v1/connectors", nil, asKey(secret)...))
	if r.code(t) != codeUnauthenticated {
		t.Fatalf("revoked key: %s", r.Body)
	}
	if e := ts.auditEntries(url.Values{"actor": {id}}); len(e) == 0 || e[0]["status"] != 401.0 || e[0]["outcome"] != "denied" {
		t.Errorf("audit of the revoked key's call: %v", e)
	}
	ts.must(404, ts.do("DELETE", "/v1/keys/"+id, nil))
	if r := ts.must(409, ts.do("DELETE", "/v1/keys/key_admin", nil)); r.code(t) != codeKeyBuiltin {
		t.Errorf("deleting key_admin: %s", r.Body)
	}

	// An expiring key works until its time, then fails on its next request.
	exp := time.Now().Add(1500 * time.Millisecond).UTC()
	k := ts.must(201, ts.do("POST", "/v1/keys", map[string]any{"name": "short", "role": "invoker", "expires_at": exp})).json(t)
	esecret := k["secret"].(string)
	ts.must(200, ts.do("GET", "/v1/connectors", nil, asKey(esecret)...))
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := ts.do("GET", "/v1/connectors", nil, asKey(esecret)...)
		if r.Status == 401 {
			if time.Now().Before(exp) {
				t.Fatal("the key failed before it expired")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key still works after it expired: %d", r.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for name, body := range map[string]map[string]any{
		"past expiry":     {"name": "x", "role": "reader", "expires_at": time.Now().Add(-time.Hour)},
		"unknown role":    {"name": "x", "role": "owner"},
		"no name":         {"role": "reader"},
		"empty scope":     {"name": "x", "role": "reader", "scopes": map[string]any{"connections": []string{}}},
		"unknown field":   {"name": "x", "role": "reader", "secret": "mine"},
		"scope not array": {"name": "x", "role": "reader", "scopes": map[string]any{"connections": "a"}},
	} {
		if r := ts.do("POST", "/v1/keys", body); r.Status != 400 {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	// Wrong secrets of a real id and garbage tokens are 401s.
	id2, secret2 := ts.createKey("app2", roleReader, nil)
	for _, tok := range []string{secret2[:len(secret2)-1] + "x", "pbk_", "pbk_zz_zz", "garbage"} {
		if r := ts.do("GET", "/v1/connectors", nil, asKey(tok)...); r.Status != 401 {
			t.Errorf("token %q: %d", tok, r.Status)
		}
	}
	if e := ts.auditEntries(url.Values{"actor": {id2}}); len(e) != 1 || e[0]["status"] != 401.0 {
		t.Errorf("a wrong secret for %s is audited under its id: %v", id2, e)
	}
}

// TestAuditLog: writes are logged with their target, reads are not, paging works, and the
// retention prunes.
func TestAuditLog(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.AuditMaxEntries = 5 })
	id, secret := ts.createKey("c", roleConnections, nil)
	ts.must(201, ts.upload("spy"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{"id": "spy-a", "connectors": []string{"spy"},
		"params": map[string]any{"base_url": "http://127.0.0.1:9"}, "auth": map[string]any{"type": "api_key", "api_key": "sekrit-123"}}, asKey(secret)...))
	ts.must(200, ts.do("GET", "/v1/connections/spy-a", nil, asKey(secret)...))
	e := ts.auditEntries(url.Values{"actor": {id}})
	if len(e) != 1 || e[0]["action"] != "POST /v1/connections" || e[0]["target"] != "connection:spy-a" || e[0]["outcome"] != "allowed" || e[0]["status"] != 201.0 {
		t.Fatalf("audit: %v", e)
	}
	for i := range 7 {
		ts.do("DELETE", "/v1/connections/none-"+strconv.Itoa(i), nil)
	}
	all := ts.auditEntries(url.Values{"limit": {"2"}})
	if len(all) < 9 {
		t.Fatalf("paged %d entries", len(all))
	}
	if all[0]["target"] != "connection:none-6" || all[0]["outcome"] != "error" || all[0]["status"] != 404.0 {
		t.Errorf("newest entry %v", all[0])
	}
	raw, _ := json.Marshal(all)
	if bytes.Contains(raw, []byte("sekrit")) {
		t.Error("the audit log holds a secret")
	}
	if r := ts.do("GET", "/v1/audit?limit=0", nil); r.Status != 400 {
		t.Errorf("limit=0: %d", r.Status)
	}
	n, err := ts.srv.st.PruneAudit(t.Context(), 0, ts.srv.opts.AuditMaxEntries)
	if err != nil || len(ts.auditEntries(url.Values{})) != 5 {
		t.Errorf("pruned %d, %v", n, err)
	}
	ts.must(200, ts.do("GET", fmt.Sprintf("/v1/audit?since=%s", url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339))), nil))
}

// TestKeyRateLimit: a key over its rate gets 429 rate_limited with Retry-After; another key
// is not held up.
func TestKeyRateLimit(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.KeyRateLimit = 0.5; o.KeyRateBurst = 2 })
	ts.must(201, ts.do("POST", "/v1/keys", map[string]any{"name": "r", "role": "reader"}))
	_, secret := ts.createKey("r2", roleReader, nil) // the admin token's burst is now spent
	ts.must(200, ts.do("GET", "/v1/connectors", nil, asKey(secret)...))
	ts.must(200, ts.do("GET", "/v1/connectors", nil, asKey(secret)...))
	r := ts.must(429, ts.do("GET", "/v1/connectors", nil, asKey(secret)...))
	if r.code(t) != codeRateLimited {
		t.Errorf("code %s", r.Body)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	r = ts.must(429, ts.do("GET", "/v1/connectors", nil))
	if r.Header.Get("Retry-After") == "" {
		t.Error("the admin token's 429 has no Retry-After")
	}
	// MCP requests with a key count against the same budget.
	if r := ts.initialize("/mcp", secret); r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Errorf("MCP over the key's rate: %d %s", r.Status, r.Body)
	}
}

// BenchmarkAuthenticateKey measures what authenticating an API key costs per request: one
// bbolt read by the id in the secret and one SHA-256 (the admin token is a constant-time
// compare).
func BenchmarkAuthenticateKey(b *testing.B) {
	ts := startServer(b, nil)
	k := ts.must(201, ts.do("POST", "/v1/keys", map[string]any{"name": "bench", "role": "invoker"})).json(b)
	secret := k["secret"].(string)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, fail := ts.srv.authenticateToken(ctx, secret); fail != nil {
			b.Fatal(fail.detail)
		}
	}
}
