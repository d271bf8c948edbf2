package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
	"github.com/plugboard/plugboard/server"
)

// jsonExempt are the leaves that print no document of their own: the server (its output is
// its log), help (the help text, as -h), the completion scripts and their helper.
var jsonExempt = map[string]string{
	"plugboard serve":      "the server: it prints its log, not a result",
	"plugboard help":       "prints help text, as -h does",
	"plugboard __complete": "the completion scripts' protocol",
}

// jsonLines are the leaves whose -o json is JSON lines: one document a line, as they stream.
var jsonLines = map[string]bool{"plugboard events pull": true, "plugboard dev": true}

// oneJSON returns out as a JSON object, or why it is not exactly one.
func oneJSON(out string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(out))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("stdout is not a JSON object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("stdout holds more than one JSON document")
	}
	return doc, nil
}

// oneJSONDocument fails unless out is exactly one JSON object, and returns it.
func oneJSONDocument(t *testing.T, what, out string) map[string]any {
	t.Helper()
	doc, err := oneJSON(out)
	if err != nil {
		t.Fatalf("%s -o json: %v:\n%s", what, err, out)
	}
	return doc
}

// jsonLinesOf fails unless out is one or more lines, each a JSON object, and returns them.
func jsonLinesOf(t *testing.T, what, out string) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for line := range strings.Lines(out) {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("%s -o json: line %q is not a JSON object: %v", what, line, err)
		}
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		t.Fatalf("%s -o json printed nothing", what)
	}
	return docs
}

// leafName is the full name of the leaf a command line runs.
func leafName(root *command, args []string) string {
	cmd := root
	for _, a := range args {
		next := cmd.lookup(a)
		if cmd.sub == nil || next == nil {
			break
		}
		cmd = next
	}
	return cmd.fullName()
}

// feedUpstream is the paged feed of the trig test plugin's poll trigger, and an OAuth2 token
// endpoint for a client_credentials connection.
type feedUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	items []map[string]any
}

func newFeedUpstream(t *testing.T) *feedUpstream {
	f := &feedUpstream{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/token" {
			io.WriteString(w, `{"access_token": "at_json", "token_type": "Bearer", "expires_in": 3600}`)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.URL.Query().Get("latest") == "1" {
			fmt.Fprintf(w, `{"latest": %d}`, len(f.items))
			return
		}
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		page := []map[string]any{}
		if after < len(f.items) {
			page = f.items[after:]
		}
		json.NewEncoder(w).Encode(map[string]any{"items": page, "more": false})
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *feedUpstream) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.items) + 1
	f.items = append(f.items, map[string]any{"n": n, "id": fmt.Sprintf("item-%d", n), "type": "created",
		"time": time.Now().UTC().Format(time.RFC3339), "data": map[string]any{"n": n}})
}

// TestEveryCommandPrintsJSON runs every leaf of the command tree with -o json against a real
// server (the real anymanifest and trig plugins, an in-process NATS for store migrate), with
// the server reached through a context alone, and holds each one's standard output to one
// JSON document (JSON lines for the streaming events pull and dev). A leaf that is not run
// here, or that does not register -o, fails the test.
func TestEveryCommandPrintsJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins and runs a real server; run without -short")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	tmp := t.TempDir()
	upstream := newFeedUpstream(t)

	dataDir := filepath.Join(tmp, "var")
	srv, err := server.New(context.Background(), &server.Options{DataDir: dataDir, AdminToken: "pba_json",
		EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close(context.Background()) }()

	manifest := func(name, version string) string {
		return `{"abi":1,"name":"` + name + `","version":"` + version + `","title":"JSON test",` +
			`"auth":{"types":["none","api_key","oauth2"],"api_key":{"in":"header","name":"X-Api-Key"},"oauth2":{"token_url":"` + upstream.URL + `/token"}},` +
			`"actions":[{"name":"echo","title":"Echo","input_schema":{"type":"object"}}]}`
	}
	plugin := func(name, version string) string {
		b, err := patch.Patch(anymanifestWasm(t), []byte(manifest(name, version)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(tmp, name+"-"+version+".wasm")
		os.WriteFile(p, b, 0o644)
		return p
	}
	v1, v2, catalogued := plugin("anyjson", "1.0.0"), plugin("anyjson", "1.1.0"), plugin("catalogued", "1.0.0")
	trig := wasmPlugin(t, root, "plugins/testdata/trig", tmp)
	catalog := filepath.Join(tmp, "catalog.json")
	doc, _ := json.Marshal(map[string]any{"catalog": 1, "servers": []map[string]any{{"name": "catalogued", "description": "A test server",
		"version": "1.0.0", "wasm": catalogued, "digest": "", "connection_type": "none"}}})
	os.WriteFile(catalog, doc, 0o644)
	backup, restored := filepath.Join(tmp, "backup.db"), filepath.Join(tmp, "restored")
	nats := startNATS(t)
	watchDir := filepath.Join(tmp, "watch")
	os.Mkdir(watchDir, 0o755)
	b, _ := os.ReadFile(v1)
	os.WriteFile(filepath.Join(watchDir, "any.wasm"), b, 0o644)

	// No URL or token in the environment: every command finds the server through the context.
	e := env{"PLUGBOARD_CONFIG": filepath.Join(tmp, "config", "config.json"), "PLUGBOARD_CATALOG": catalog}
	tree := (&cli{getenv: func(string) string { return "" }}).root()
	ran := map[string]bool{}
	var sub, event string
	jsonRun := func(stdin string, args ...string) map[string]any {
		t.Helper()
		name := leafName(tree, args)
		ran[name] = true
		r := plugboard(t, e, stdin, append(args, "-o", "json")...)
		if r.code != exitOK {
			t.Fatalf("%s -o json: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		if jsonLines[name] {
			return jsonLinesOf(t, name, r.stdout)[0]
		}
		return oneJSONDocument(t, name, r.stdout)
	}
	want := func(doc map[string]any, key string, value any) {
		t.Helper()
		if fmt.Sprint(doc[key]) != fmt.Sprint(value) {
			t.Errorf("%q = %v, want %v in %v", key, doc[key], value, doc)
		}
	}

	want(jsonRun("", "version"), "go", runtime.Version())
	want(jsonRun("pba_json\n", "context", "add", "json", "--url", hs.URL, "--token-stdin"), "has_token", true)
	want(jsonRun("", "context", "use", "json"), "current", true)
	want(jsonRun("", "context", "current"), "url", hs.URL)
	if l := jsonRun("", "context", "list")["contexts"].([]any); len(l) != 1 {
		t.Errorf("context list: %v", l)
	}

	want(jsonRun("", "connector", "push", v1), "version", "1.0.0")
	want(jsonRun("", "connector", "push", v2), "active", false)
	want(jsonRun("", "connector", "push", trig), "name", "trig")
	jsonRun("", "connector", "list")
	want(jsonRun("", "connector", "get", "anyjson"), "active_version", "1.0.0")
	jsonRun("", "connector", "versions", "anyjson")
	jsonRun("", "connector", "actions", "anyjson")
	want(jsonRun("", "connector", "activate", "anyjson", "1.1.0"), "active", true)
	want(jsonRun("", "connector", "delete-version", "anyjson", "1.0.0"), "deleted", true)
	want(jsonRun("", "connector", "init", "scaffolded", "--lang", "go", "--dir", filepath.Join(tmp, "scaffolded")), "lang", "go")

	// invoke -o json is the API's answer: the version that served and the correlation ID.
	inv := jsonRun("", "invoke", "anyjson", "echo", "--input", `{"a": 1}`, "--correlation-id", "c_json_invoke")
	want(inv, "version", "1.1.0")
	want(inv, "correlation_id", "c_json_invoke")
	want(inv, "connector", "anyjson")
	if out, _ := inv["output"].(map[string]any); fmt.Sprint(out["input"]) != "map[a:1]" {
		t.Errorf("invoke output = %v", inv["output"])
	}
	if id, _ := jsonRun("", "invoke", "anyjson", "echo")["correlation_id"].(string); !strings.HasPrefix(id, "c_") {
		t.Errorf("invoke without --correlation-id: correlation_id %q", id)
	}

	want(jsonRun("", "connection", "create", "feed", "--connector", "trig", "--param", "base_url="+upstream.URL, "--auth", "none"), "id", "feed")
	want(jsonRun("k1\n", "connection", "create", "key", "--connector", "anyjson", "--api-key-stdin"), "status", "ready")
	want(jsonRun("cs\n", "connection", "create", "cc", "--connector", "anyjson", "--auth", "oauth2", "--grant", "client_credentials",
		"--client-id", "cid", "--client-secret-stdin"), "status", "ready")
	jsonRun("", "connection", "list")
	want(jsonRun("", "connection", "get", "feed"), "id", "feed")
	want(jsonRun("", "connection", "update", "key", "--param", "region=eu"), "id", "key")
	want(jsonRun("k2\n", "connection", "rotate", "key", "--api-key-stdin"), "id", "key")
	want(jsonRun("", "connection", "reauthorize", "cc"), "id", "cc")

	s := jsonRun("", "subscribe", "trig", "items", "--connection", "feed", "--queue")
	sub, _ = s["id"].(string)
	jsonRun("", "subscriptions")
	want(jsonRun("", "subscriptions", sub), "id", sub)
	want(jsonRun("", "reschedule", sub, "--interval", "2"), "interval_s", float64(2))
	upstream.add()
	ev := jsonRun("", "events", "pull", sub, "--wait", "30s")
	event, _ = ev["id"].(string)
	want(jsonRun("", "events", "ack", sub, event), "acked", 1)
	jsonRun("", "events", "replay", sub, "--since", "1h")
	want(jsonRun("", "unsubscribe", sub), "deleted", true)

	k := jsonRun("", "key", "create", "json-key", "--role", "reader")
	key, _ := k["id"].(string)
	jsonRun("", "key", "list")
	want(jsonRun("", "key", "get", key), "name", "json-key")
	want(jsonRun("", "key", "revoke", key), "id", key)
	jsonRun("", "audit", "--limit", "5")
	jsonRun("", "master-key", "show")
	jsonRun("", "master-key", "rotate")

	want(jsonRun("", "mcp", "create", "tools", "--connector", "anyjson"), "name", "tools")
	jsonRun("", "mcp", "list")
	want(jsonRun("", "mcp", "disable", "tools"), "enabled", false)
	want(jsonRun("", "mcp", "enable", "tools"), "enabled", true)
	if tok, _ := jsonRun("", "mcp", "rotate-token", "tools")["token"].(string); tok == "" {
		t.Error("mcp rotate-token -o json has no token")
	}
	want(jsonRun("", "mcp", "delete", "tools"), "deleted", true)
	jsonRun("", "catalog", "list")
	want(jsonRun("", "mcp", "install", "catalogued"), "name", "catalogued")

	want(jsonRun("", "store", "backup", backup), "checked", true)
	want(jsonRun("", "store", "check", backup), "ok", true)
	want(jsonRun("", "store", "restore", backup, "--data", restored), "master_key_present", false)
	mk, _ := os.ReadFile(filepath.Join(dataDir, "master.key"))
	os.WriteFile(filepath.Join(restored, "master.key"), mk, 0o600)
	if copied, _ := jsonRun("", "store", "migrate", "--from", restored, "--to", nats.url())["copied"].(map[string]any); copied["versions"] == nil {
		t.Errorf("store migrate copied %v", copied)
	}
	want(jsonRun("", "connection", "delete", "key"), "deleted", true)

	// dev streams: one JSON line a push, until interrupted.
	t.Run("dev", func(t *testing.T) {
		ran["plugboard dev"] = true
		ctx, cancel := context.WithCancel(t.Context())
		out, errOut := &lockedBuffer{}, &lockedBuffer{}
		done := make(chan int)
		go func() {
			done <- run(ctx, []string{"dev", "--watch", watchDir, "--interval", "20ms", "-o", "json"},
				func(k string) string { return e[k] }, strings.NewReader(""), out, errOut)
		}()
		waitOutput(t, out, `"result":"(uploaded|activated)"`)
		cancel()
		if code := <-done; code != exitOK {
			t.Fatalf("dev exited %d: %s", code, errOut.String())
		}
		line := jsonLinesOf(t, "plugboard dev", out.String())[0]
		if line["file"] != "any.wasm" || line["connector"] != "anyjson" || line["version"] != "1.0.0" {
			t.Errorf("dev -o json: %v", line)
		}
		if !strings.Contains(errOut.String(), "Watching "+watchDir) {
			t.Errorf("the watching note is not on stderr: %q", errOut.String())
		}
	})

	want(jsonRun("", "context", "remove", "json"), "deleted", true)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		ran["plugboard completion "+sh] = true // prints its script, checked by the completion tests
	}

	// Every leaf ran here, and registers -o.
	c := &cli{getenv: func(string) string { return "" }}
	walk(c.root(), func(cmd *command) {
		name := cmd.fullName()
		if cmd.sub != nil || jsonExempt[name] != "" {
			return
		}
		if !cmd.ownFlags && c.newFlagSet(cmd).Lookup("output") == nil && !strings.HasPrefix(name, "plugboard completion ") {
			t.Errorf("%s does not register -o / --output", name)
		}
		if !ran[name] && !isHiddenAlias(cmd) {
			t.Errorf("%s was not run with -o json here: add it to TestEveryCommandPrintsJSON (or to jsonExempt, with the reason)", name)
		}
	})
}

// isHiddenAlias reports whether cmd is, or is under, a hidden command: an old name of a command
// that runs here under its own (keys for key, key rotate for master-key rotate).
func isHiddenAlias(cmd *command) bool {
	for ; cmd != nil; cmd = cmd.parent {
		if cmd.hidden {
			return true
		}
	}
	return false
}

// TestJSONOutputIsOneDocument checks the checker: text, two documents, a trailing word and
// nothing are refused.
func TestJSONOutputIsOneDocument(t *testing.T) {
	for _, bad := range []string{"Deleted x.\n", "{}\n{}\n", "{} x", "", "[]"} {
		if _, err := oneJSON(bad); err == nil {
			t.Errorf("%q passed as one JSON document", bad)
		}
	}
	if _, err := oneJSON("{\n  \"a\": 1\n}\n"); err != nil {
		t.Error(err)
	}
}
