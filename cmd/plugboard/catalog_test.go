package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
)

// TestCatalogMatchesPlugins keeps plugins/catalog.json honest: every connector entry says what
// the manifest of the plugin built from plugins/<name> declares (title, version, auth types,
// connection params, actions and triggers with their titles and kinds), every server entry is
// a plugin of kind mcp, and every plugin under plugins/ with a main.go is in the catalog, a
// connector among the connectors and an MCP server among the servers.
func TestCatalogMatchesPlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every plugin; run without -short")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	idx, err := loadCatalog(filepath.Join(root, "plugins", "catalog.json"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())

	mains, _ := filepath.Glob(filepath.Join(root, "plugins", "*", "main.go"))
	if len(mains) == 0 {
		t.Fatal("no plugins/*/main.go")
	}
	manifests := map[string]*abi.Manifest{}
	for _, m := range mains {
		dir := filepath.Base(filepath.Dir(m))
		b, err := os.ReadFile(wasmPlugin(t, root, "plugins/"+dir, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		man, err := h.Inspect(t.Context(), b)
		if err != nil {
			t.Fatalf("plugins/%s: %v", dir, err)
		}
		if man.Name != dir {
			t.Errorf("plugins/%s builds a plugin named %q; the catalog finds plugins by their directory", dir, man.Name)
		}
		manifests[dir] = man
	}

	listed := map[string]bool{}
	for _, e := range idx.Servers {
		listed[e.Name] = true
		t.Run("server "+e.Name, func(t *testing.T) {
			m := manifests[e.Name]
			switch {
			case m == nil:
				t.Fatalf("the catalog lists server %s but there is no plugins/%s/main.go", e.Name, e.Name)
			case m.Kind != abi.KindMCP:
				t.Fatalf("plugins/%s is a connector (kind %q); list it under connectors, not servers", e.Name, m.Kind)
			}
			if e.Wasm != "../bin/plugins/"+e.Name+".wasm" {
				t.Errorf("wasm = %q, want ../bin/plugins/%s.wasm (where make puts it)", e.Wasm, e.Name)
			}
			if e.Version != m.Version || e.Title != m.Title {
				t.Errorf("catalog version %q title %q, manifest %q %q", e.Version, e.Title, m.Version, m.Title)
			}
			if !slices.Contains(m.Auth.Types, e.ConnectionType) {
				t.Errorf("connection_type %q is not one of the manifest's auth types %v", e.ConnectionType, m.Auth.Types)
			}
		})
	}
	for _, e := range idx.Connectors {
		if listed[e.Name] {
			t.Errorf("%s is listed twice", e.Name)
		}
		listed[e.Name] = true
		t.Run("connector "+e.Name, func(t *testing.T) {
			m := manifests[e.Name]
			switch {
			case m == nil:
				t.Fatalf("the catalog lists connector %s but there is no plugins/%s/main.go", e.Name, e.Name)
			case m.Kind != "":
				t.Fatalf("plugins/%s is of kind %q; list it under servers, not connectors", e.Name, m.Kind)
			}
			if e.Wasm != "../bin/plugins/"+e.Name+".wasm" || e.Digest != "" {
				t.Errorf("wasm %q digest %q, want ../bin/plugins/%s.wasm (where make puts it) and \"\" (built from source, not pinned)", e.Wasm, e.Digest, e.Name)
			}
			if e.Version != m.Version || e.Title != m.Title {
				t.Errorf("catalog version %q title %q, manifest %q %q", e.Version, e.Title, m.Version, m.Title)
			}
			if e.Description == "" {
				t.Error("no description")
			}
			if !slices.Equal(e.AuthTypes, m.Auth.Types) {
				t.Errorf("auth_types %v, manifest %v", e.AuthTypes, m.Auth.Types)
			}
			var params struct {
				Properties map[string]json.RawMessage `json:"properties"`
			}
			if len(m.ConnectionParams) > 0 {
				if err := json.Unmarshal(m.ConnectionParams, &params); err != nil {
					t.Fatalf("manifest connection_params: %v", err)
				}
			}
			if got, want := slices.Sorted(maps.Keys(e.ConnectionParams)), slices.Sorted(maps.Keys(params.Properties)); !slices.Equal(got, want) {
				t.Errorf("connection_params %v, manifest %v", got, want)
			}
			var actions []catalogAction
			for _, a := range m.Actions {
				actions = append(actions, catalogAction{Name: a.Name, Title: a.Title})
			}
			if !slices.Equal(e.Actions, actions) {
				t.Errorf("actions\n%v\nmanifest\n%v", e.Actions, actions)
			}
			var triggers []catalogTrigger
			for _, tr := range m.Triggers {
				triggers = append(triggers, catalogTrigger{Name: tr.Name, Kind: tr.Kind, Title: tr.Title})
			}
			if !slices.Equal(e.Triggers, triggers) {
				t.Errorf("triggers\n%v\nmanifest\n%v", e.Triggers, triggers)
			}
		})
	}
	for _, dir := range slices.Sorted(maps.Keys(manifests)) {
		if !listed[dir] {
			where := "connectors"
			if manifests[dir].Kind == abi.KindMCP {
				where = "servers"
			}
			t.Errorf("plugins/%s is not in plugins/catalog.json: add it to %q", dir, where)
		}
	}
}

// TestCatalogListConnectors: `plugboard catalog list` shows the servers, then under a heading
// the connectors with their auth types, actions and triggers; -o json has both lists; an
// index without connectors (as before they were listed) still reads, and shows no heading.
func TestCatalogListConnectors(t *testing.T) {
	tmp := t.TempDir()
	os.MkdirAll(filepath.Join(tmp, "bin", "plugins"), 0o755)
	os.WriteFile(filepath.Join(tmp, "bin", "plugins", "mail.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	write := func(name string, doc map[string]any) string {
		p := filepath.Join(tmp, "plugins", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := json.Marshal(doc)
		os.WriteFile(p, b, 0o644)
		return p
	}
	server := map[string]any{"name": "fetch-mcp", "description": "Fetch", "version": "1.0.0",
		"wasm": "../bin/plugins/fetch-mcp.wasm", "digest": "", "connection_type": "none"}
	connector := func(name string) map[string]any {
		return map[string]any{"name": name, "title": "Mail", "description": "Mail", "version": "2.1.0",
			"wasm": "../bin/plugins/" + name + ".wasm", "digest": "", "auth_types": []string{"oauth2", "api_key"},
			"connection_params": map[string]string{"tenant": "the tenant"},
			"actions":           []map[string]string{{"name": "list_messages", "title": "List"}, {"name": "send_mail", "title": "Send"}},
			"triggers":          []map[string]string{{"name": "new_message", "kind": "poll", "title": "New"}, {"name": "message_received", "kind": "webhook", "title": "Received"}}}
	}
	both := write("catalog.json", map[string]any{"catalog": 1, "servers": []any{server}, "connectors": []any{connector("mail"), connector("files")}})
	old := write("old.json", map[string]any{"catalog": 1, "servers": []any{server}})
	unknown := connector("mail")
	unknown["scopes"] = []string{"Mail.Read"}
	strict := write("strict.json", map[string]any{"catalog": 1, "servers": []any{server}, "connectors": []any{unknown}})

	r := plugboard(t, env{"PLUGBOARD_CATALOG": both}, "", "catalog", "list").ok(t)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("catalog list printed %d lines, want servers header and row, a blank line, a heading, connectors header and two rows:\n%s", len(lines), r.stdout)
	}
	wantFields := [][]string{
		{"NAME", "VERSION", "CONNECTION", "DESCRIPTION", "DIGEST"},
		{"fetch-mcp", "1.0.0", "none", "Fetch", "(not", "built)"},
		nil,
		{"Connectors", "(upload", "one", "with", "`plugboard", "connector", "push", filepath.Join(tmp, "bin", "plugins", "NAME.wasm") + "`):"},
		{"NAME", "VERSION", "AUTH", "ACTIONS", "TRIGGERS", "DIGEST"},
		{"mail", "2.1.0", "oauth2,api_key", "list_messages,send_mail", "new_message(poll),message_received(webhook)", "sha256:93a44bbb96c7"},
		{"files", "2.1.0", "oauth2,api_key", "list_messages,send_mail", "new_message(poll),message_received(webhook)", "(not", "built)"},
	}
	for i, want := range wantFields {
		if got := strings.Fields(lines[i]); !slices.Equal(got, want) {
			t.Errorf("line %d = %q, want fields %q", i+1, lines[i], want)
		}
	}

	r = plugboard(t, env{"PLUGBOARD_CATALOG": both}, "", "catalog", "list", "-o", "json").ok(t)
	var doc struct {
		Servers    []catalogEntry     `json:"servers"`
		Connectors []catalogConnector `json:"connectors"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(doc.Servers) != 1 || len(doc.Connectors) != 2 || doc.Connectors[0].Triggers[1].Kind != "webhook" ||
		!strings.HasPrefix(doc.Connectors[0].Digest, "sha256:") || doc.Connectors[1].Digest != "" {
		t.Errorf("catalog list -o json:\n%s", r.stdout)
	}

	r = plugboard(t, env{"PLUGBOARD_CATALOG": old}, "", "catalog", "list").ok(t)
	if strings.Contains(r.stdout, "Connectors") || !strings.Contains(r.stdout, "fetch-mcp") {
		t.Errorf("an index without connectors printed:\n%s", r.stdout)
	}
	r = plugboard(t, env{"PLUGBOARD_CATALOG": old}, "", "catalog", "list", "-o", "json").ok(t)
	if !strings.Contains(r.stdout, `"connectors": []`) {
		t.Errorf("an index without connectors printed, in JSON:\n%s", r.stdout)
	}

	plugboard(t, env{"PLUGBOARD_CATALOG": strict}, "", "catalog", "list").want(t, 1, nil, []string{"unknown field", "scopes"})
	// mcp install names the command that does install a connector.
	plugboard(t, env{"PLUGBOARD_CATALOG": both}, "", "mcp", "install", "mail", "--connection", "m").
		want(t, 1, nil, []string{"mail is a connector", "plugboard connector push " + filepath.Join(tmp, "bin", "plugins", "mail.wasm")})
}
