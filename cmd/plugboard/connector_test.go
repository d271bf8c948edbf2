package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

func TestConnectorPush(t *testing.T) {
	s := plugboardtest.New(t)
	e := serverEnv(s)
	v1 := writeWasm(t, testManifest("github", "1.0.0", "https://api.github.com"))
	v2 := writeWasm(t, testManifest("github", "1.1.0", "https://api.github.com"))
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	os.WriteFile(bad, []byte("not wasm"), 0o644)

	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "first version is uploaded and active", args: []string{v1},
			stdout: []string{"Uploaded github 1.0.0.", "Digest:  sha256:", "Active:  yes\n"}},
		{name: "same bytes again", args: []string{v1},
			stdout: []string{"github 1.0.0 is already stored with the same bytes.", "Active:  yes"}},
		{name: "later version is stored inactive", args: []string{v2},
			stdout: []string{"Uploaded github 1.1.0.", "Active:  no; activate it with `plugboard connector activate github 1.1.0`"}},
		{name: "--activate after the file activates an already stored version", args: []string{v2, "--activate"},
			stdout: []string{"already stored", "Active:  yes (activated now)"}},
		{name: "standard input", args: []string{"-"}, stdin: string(plugboardtest.Wasm(testManifest("slack", "0.1.0"))),
			stdout: []string{"Uploaded slack 0.1.0."}},
		{name: "rejected plugin", args: []string{bad}, code: exitError,
			stderr: []string{"error: invalid_wasm:", "(HTTP 400)", "correlation id: c_", "hint: the plugin failed the upload checks"}},
		{name: "missing file", args: []string{"/nonexistent.wasm"}, code: exitError,
			stderr: []string{"no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := plugboard(t, e, tt.stdin, append([]string{"connector", "push"}, tt.args...)...)
			r.want(t, tt.code, tt.stdout, tt.stderr)
		})
	}

	t.Run("-o json prints the version document", func(t *testing.T) {
		r := plugboard(t, e, "", "connector", "push", v1, "-o", "json").ok(t)
		var doc map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if doc["name"] != "github" || !strings.HasPrefix(doc["digest"].(string), "sha256:") || doc["manifest"] == nil {
			t.Errorf("doc = %v", doc)
		}
	})
	t.Run("over the upload cap", func(t *testing.T) {
		s.MaxUpload = 64
		defer func() { s.MaxUpload = 64 << 20 }()
		plugboard(t, e, "", "connector", "push", v1).want(t, exitError, nil, []string{
			"error: too_large:", "(HTTP 413)", "raise it with `plugboard serve --max-upload-mib N`",
		})
	})
}

func TestConnectorReadCommands(t *testing.T) {
	s := plugboardtest.New(t)
	e := serverEnv(s)
	t.Run("empty list says so on stderr", func(t *testing.T) {
		r := plugboard(t, e, "", "connector", "list").ok(t)
		if r.stdout != "" || !strings.Contains(r.stderr, "No connectors.") {
			t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
		}
		r = plugboard(t, e, "", "connector", "list", "-o", "json").ok(t)
		if r.stdout != "{\n  \"connectors\": []\n}\n" {
			t.Errorf("json = %q", r.stdout)
		}
	})

	s.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("github", "1.0.0", "https://api.github.com"))).ok(t)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("github", "1.1.0", "https://api.github.com", "https://uploads.github.com"))).ok(t)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("slack", "0.1.0"))).ok(t)

	t.Run("list is a table", func(t *testing.T) {
		r := plugboard(t, e, "", "connector", "list").ok(t)
		want := "NAME     TITLE         ACTIVE   VERSIONS\n" +
			"github   Test github   1.0.0    2\n" +
			"slack    Test slack    0.1.0    1\n"
		if r.stdout != want {
			t.Errorf("table =\n%s\nwant\n%s", r.stdout, want)
		}
	})
	t.Run("list -o json keeps the API documents", func(t *testing.T) {
		r := plugboard(t, e, "", "connector", "list", "-o", "json").ok(t)
		var doc struct {
			Connectors []map[string]any `json:"connectors"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Connectors) != 2 || doc.Connectors[0]["active_version"] != "1.0.0" {
			t.Errorf("json = %s (%v)", r.stdout, err)
		}
	})
	t.Run("get", func(t *testing.T) {
		plugboard(t, e, "", "connector", "get", "github").want(t, exitOK, []string{
			"Name:            github\n", "Active version:  1.0.0\n", "Hosts:           https://api.github.com\n",
			"Actions:         create_issue, get_repo\n", "Versions:        1.0.0 (active), 1.1.0\n",
		}, nil)
	})
	t.Run("get unknown", func(t *testing.T) {
		plugboard(t, e, "", "connector", "get", "nope").want(t, exitError, nil, []string{
			`error: connector_not_found: no connector "nope" (HTTP 404)`, "hint: list the connectors with `plugboard connector list`",
		})
	})
	t.Run("a hint names the connector of the command", func(t *testing.T) {
		r := plugboard(t, e, "", "connector", "activate", "github", "9.9.9")
		if r.code != exitError || !strings.Contains(r.stderr, "`plugboard connector versions github`") || strings.Contains(r.stderr, "versions NAME") {
			t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
	t.Run("versions", func(t *testing.T) {
		r := plugboard(t, e, "", "connector", "versions", "github").ok(t)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "VERSION   ACTIVE   DIGEST") ||
			!strings.Contains(lines[1], "1.0.0     yes") || !strings.Contains(lines[2], "3h") {
			t.Errorf("versions =\n%s", r.stdout)
		}
		if f := strings.Fields(lines[1]); len(f[2]) != len("sha256:")+12 {
			t.Errorf("digest column %q is not shortened", f[2])
		}
		r = plugboard(t, e, "", "connector", "versions", "github", "-o", "json").ok(t)
		if !strings.Contains(r.stdout, `"versions": [`) || strings.Count(r.stdout, `"digest"`) != 2 {
			t.Errorf("json =\n%s", r.stdout)
		}
	})
	t.Run("actions", func(t *testing.T) {
		r := plugboard(t, e, "", "connector", "actions", "github").ok(t)
		want := "NAME           TITLE               READ-ONLY   IDEMPOTENT   DESTRUCTIVE\n" +
			"create_issue   Create an issue     no          no           yes\n" +
			"get_repo       Read a repository   yes         yes          no\n"
		if r.stdout != want {
			t.Errorf("actions =\n%s\nwant\n%s", r.stdout, want)
		}
		r = plugboard(t, e, "", "connector", "actions", "github", "-o", "json").ok(t)
		if !strings.Contains(r.stdout, `"input_schema"`) {
			t.Errorf("json lacks schemas:\n%s", r.stdout)
		}
	})
	t.Run("activate asks for approval of new capabilities", func(t *testing.T) {
		plugboard(t, e, "", "connector", "activate", "github", "1.1.0").want(t, exitError, nil, []string{
			"error: capabilities_changed: the new version asks for more: hosts +https://uploads.github.com (HTTP 409)",
			"hint: review the difference above; to accept it run `plugboard connector activate github 1.1.0 --approve-capabilities`",
		})
		plugboard(t, e, "", "connector", "activate", "github", "1.1.0", "--approve-capabilities").
			want(t, exitOK, []string{"github 1.1.0 is now active.\n"}, nil)
		if q := s.LastRequest().Query; q != "approve=capabilities" {
			t.Errorf("query = %q", q)
		}
	})
	t.Run("delete-version", func(t *testing.T) {
		plugboard(t, e, "", "connector", "delete-version", "github", "1.1.0").want(t, exitError, nil, []string{
			"(HTTP 409)", "hint: the active version cannot be removed: activate another one first with `plugboard connector activate github VERSION`",
		})
		plugboard(t, e, "", "connector", "delete-version", "github", "1.0.0").want(t, exitOK, []string{"Deleted github 1.0.0.\n"}, nil)
	})
}

func TestUploadProgressLine(t *testing.T) {
	var stderr strings.Builder
	c := &cli{stderr: &stderr}
	report, done := c.progress("big.wasm")
	for _, sent := range []int64{512 << 10, 512<<10 + 1, 2 << 20} {
		report(sent, 2<<20)
	}
	done()
	want := "\r\033[KUploading big.wasm: 512.0 KiB / 2.0 MiB (25%)" +
		"\r\033[KUploaded big.wasm (2.0 MiB); the server is checking it..." +
		"\r\033[K"
	if stderr.String() != want {
		t.Errorf("progress = %q, want %q", stderr.String(), want)
	}
}
