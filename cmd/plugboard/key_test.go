package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/server"
)

// TestKeyAndAuditCommands drives API keys and the audit log from the CLI against a real
// server: create (secret once), list, get, use, revoke, then read the audit log.
func TestKeyAndAuditCommands(t *testing.T) {
	srv, err := server.New(context.Background(), &server.Options{DataDir: t.TempDir(), AdminToken: "pba_keys",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close(context.Background()) }()
	admin := env{"PLUGBOARD_URL": hs.URL, "PLUGBOARD_TOKEN": "pba_keys"}

	r := plugboard(t, admin, "", "key", "create", "app-a", "--role", "reader", "--connection", "gh-main", "--connection", "gh-b", "--expires", "720h").ok(t)
	if !strings.Contains(r.stdout, "role reader, connections gh-main,gh-b") || !strings.Contains(r.stderr, "shown only this once") {
		t.Fatalf("create:\n%s\n%s", r.stdout, r.stderr)
	}
	var id, secret string
	for line := range strings.Lines(r.stdout) {
		if s, ok := strings.CutPrefix(line, "Secret: "); ok {
			secret = strings.TrimSpace(s)
		}
		if s, ok := strings.CutPrefix(line, "Created key "); ok {
			id, _, _ = strings.Cut(s, " ")
		}
	}
	if !strings.HasPrefix(secret, "pbk_") || !strings.HasPrefix(id, "key_") {
		t.Fatalf("id %q secret %q", id, secret)
	}

	r = plugboard(t, admin, "", "key", "list").ok(t)
	for _, want := range []string{"key_admin", id, "app-a", "reader", "gh-main,gh-b"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("key list lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, secret) {
		t.Error("key list shows the secret")
	}
	plugboard(t, admin, "", "keys", "get", id, "-o", "json").ok(t) // the plural works too

	// The key works as a token, within its role.
	app := env{"PLUGBOARD_URL": hs.URL, "PLUGBOARD_TOKEN": secret}
	plugboard(t, app, "", "connection", "list").ok(t)
	if r := plugboard(t, app, "", "key", "list"); r.code != exitError || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("a reader listing keys: %d\n%s", r.code, r.stderr)
	}

	plugboard(t, admin, "", "key", "revoke", id).want(t, exitOK, []string{"Revoked key " + id}, nil)
	if r := plugboard(t, app, "", "connection", "list"); r.code != exitError {
		t.Errorf("the revoked key still works:\n%s", r.stdout)
	}
	if r := plugboard(t, admin, "", "key", "revoke", "key_admin"); r.code != exitError || !strings.Contains(r.stderr, "admin.token") {
		t.Errorf("revoking key_admin: %d\n%s", r.code, r.stderr)
	}
	plugboard(t, admin, "", "key", "create", "x", "--expires", "1h").want(t, exitUsage, nil, []string{"--role is required"})
	plugboard(t, admin, "", "key", "create", "x", "--role", "reader", "--expires", "soon").want(t, exitUsage, nil, []string{"--expires"})

	// The audit log: the denial and the revocation, newest first; paging up to --limit.
	r = plugboard(t, admin, "", "audit", "--actor", id, "--since", "1h").ok(t)
	if !strings.Contains(r.stdout, "GET /v1/keys") || !strings.Contains(r.stdout, "denied") {
		t.Errorf("audit --actor:\n%s", r.stdout)
	}
	r = plugboard(t, admin, "", "audit", "--target", "key:"+id, "-o", "json").ok(t)
	var doc struct {
		Entries []map[string]any `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Entries) != 2 || doc.Entries[0]["action"] != "DELETE /v1/keys/{id}" {
		t.Errorf("audit --target: %v %s", err, r.stdout)
	}
	for range 3 {
		plugboard(t, admin, "", "key", "create", "more", "--role", "invoker").ok(t)
	}
	r = plugboard(t, admin, "", "audit", "--limit", "2", "-o", "json").ok(t)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Entries) != 2 {
		t.Errorf("audit --limit 2: %s", r.stdout)
	}
	// The master key commands moved to master-key; the old spelling still works.
	plugboard(t, admin, "", "master-key", "show").want(t, exitOK, []string{"Active master key:"}, nil)
	plugboard(t, admin, "", "keys", "show").want(t, exitOK, []string{"Active master key:"}, nil)
	if r := plugboard(t, admin, "", "key", "-h"); strings.Contains(r.stdout, "rotate") {
		t.Errorf("key help lists the hidden master-key aliases:\n%s", r.stdout)
	}
}

// TestManagementOverUnixSocket: with --admin-listen unix:..., PLUGBOARD_URL=unix:/path reaches it.
func TestManagementOverUnixSocket(t *testing.T) {
	srv, err := server.New(context.Background(), &server.Options{DataDir: t.TempDir(), AdminToken: "pba_sock",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SeparateAdmin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	sock := filepath.Join(t.TempDir(), "admin.sock")
	adm, err := server.Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, server.ServeConfig{Public: pub, Admin: adm}) }()
	defer func() { cancel(); <-done }()

	plugboard(t, env{"PLUGBOARD_URL": "unix:" + sock, "PLUGBOARD_TOKEN": "pba_sock"}, "", "key", "list").
		want(t, exitOK, []string{"key_admin"}, nil)
	if r := plugboard(t, env{"PLUGBOARD_URL": "http://" + pub.Addr().String(), "PLUGBOARD_TOKEN": "pba_sock"}, "", "key", "list"); r.code != exitError {
		t.Errorf("key list on the public listener: %d %s", r.code, r.stdout)
	}
}
