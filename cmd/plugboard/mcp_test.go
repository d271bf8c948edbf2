package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/plugboard/plugboard/server"
)

// mcpBearer adds an Authorization header to every request.
type mcpBearer string

func (b mcpBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// TestMCPInstallFromCatalog: `plugboard mcp install` puts a hosted MCP server from the catalog
// (the fetch-mcp plugin built from plugins/fetch-mcp) into a real server with one command, and
// the URL and token it prints serve tools/call. The other mcp commands act on it.
func TestMCPInstallFromCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin; run without -short")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	tmp := t.TempDir()
	wasm := filepath.Join(root, "bin", "plugins", "fetch-mcp.wasm")
	if !fresh(root, wasm) {
		wasm = filepath.Join(tmp, "fetch-mcp.wasm")
		goBuild(t, root, []string{"GOOS=wasip1", "GOARCH=wasm"}, "-buildmode=c-shared", "-o", wasm, "./plugins/fetch-mcp")
	}
	catalog := filepath.Join(tmp, "catalog.json")
	doc, _ := json.Marshal(map[string]any{"catalog": 1, "servers": []map[string]any{{"name": "fetch-mcp", "description": "Fetch", "version": "1.0.0",
		"wasm": wasm, "digest": "", "connection_type": "none", "connection_params": map[string]string{"base_url": "the site"}}}})
	os.WriteFile(catalog, doc, 0o644)

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<p>Installed &amp; serving</p>")
	}))
	defer site.Close()
	srv, err := server.New(context.Background(), &server.Options{DataDir: tmp, AdminToken: "pba_mcp",
		EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close(context.Background()) }()
	e := env{"PLUGBOARD_URL": hs.URL, "PLUGBOARD_TOKEN": "pba_mcp", "PLUGBOARD_CATALOG": catalog}

	plugboard(t, e, "", "catalog", "list").want(t, 0, []string{"fetch-mcp", "1.0.0", "sha256:"}, nil)
	plugboard(t, e, "", "mcp", "install", "fetch-mcp").want(t, 2, nil, []string{"fetch-mcp"})
	// The connection needs the plugin's manifest, so it comes after the upload that install
	// does; a first install without it fails and leaves the plugin uploaded.
	plugboard(t, e, "", "mcp", "install", "fetch-mcp", "--connection", "site").want(t, 1, nil, []string{"connection"})
	plugboard(t, e, "", "connection", "create", "site", "--connector", "fetch-mcp", "--param", "base_url="+site.URL, "--auth", "none").ok(t)
	out := plugboard(t, e, "", "mcp", "install", "fetch-mcp", "--connection", "site").ok(t).stdout
	url := regexp.MustCompile(`URL:\s+(\S+)`).FindStringSubmatch(out)
	tok := regexp.MustCompile(`(?m)^(mcp_[0-9a-f]+)$`).FindStringSubmatch(out)
	if url == nil || tok == nil || url[1] != hs.URL+"/mcp/fetch-mcp" {
		t.Fatalf("install printed:\n%s", out)
	}

	c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	sess, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url[1], HTTPClient: &http.Client{Transport: mcpBearer(tok[1])}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	res, err := sess.CallTool(context.Background(), &mcp.CallToolParams{Name: "fetch", Arguments: map[string]any{"url": "/"}})
	if err != nil || res.IsError || res.StructuredContent.(map[string]any)["text"] != "Installed & serving" {
		t.Fatalf("fetch: %v %+v", err, res)
	}

	plugboard(t, e, "", "mcp", "list").want(t, 0, []string{"fetch-mcp", "site", "yes", "fetch"}, nil)
	plugboard(t, e, "", "mcp", "disable", "fetch-mcp").ok(t)
	plugboard(t, e, "", "mcp", "enable", "fetch-mcp").ok(t)
	rot := plugboard(t, e, "", "mcp", "rotate-token", "fetch-mcp").ok(t).stdout
	if !regexp.MustCompile(`(?m)^mcp_[0-9a-f]+$`).MatchString(rot) || strings.Contains(rot, tok[1]) {
		t.Errorf("rotate-token printed %s", rot)
	}
	plugboard(t, e, "", "mcp", "delete", "fetch-mcp").ok(t)
	plugboard(t, e, "", "mcp", "list").want(t, 0, nil, []string{"No MCP servers"})
}
