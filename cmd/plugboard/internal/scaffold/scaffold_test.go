package scaffold

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoFile reads a file at the root of this repository.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The Go scaffold's go.mod and go.sum pin the versions and hashes of this repository's go.mod
// and go.sum: a dependency bump there must reach the scaffold.
func TestGoRequirementsMatchTheRepository(t *testing.T) {
	gomod := repoFile(t, "go.mod")
	if !strings.Contains(gomod, "\ngo "+GoDirective+"\n") {
		t.Errorf("the repository's go.mod has no line go %s: update GoDirective", GoDirective)
	}
	for _, m := range GoRequires {
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(m.Path+" "+m.Version) + `\b`).MatchString(gomod) {
			t.Errorf("the repository's go.mod does not require %s %s: update GoRequires and templates/go/go.sum.tmpl", m.Path, m.Version)
		}
	}
	gosum := repoFile(t, "go.sum")
	ours, err := templates.ReadFile("templates/go/go.sum.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(ours)), "\n") {
		if !strings.Contains(gosum, line+"\n") {
			t.Errorf("the repository's go.sum lacks %q", line)
		}
	}
	for _, m := range GoRequires {
		if !strings.Contains(string(ours), m.Path+" "+m.Version+" h1:") {
			t.Errorf("templates/go/go.sum.tmpl has no hash of %s %s", m.Path, m.Version)
		}
	}
}

func TestRenderEveryLanguage(t *testing.T) {
	for _, lang := range Languages {
		t.Run(lang, func(t *testing.T) {
			files, err := Render(Options{Name: "my-api", Lang: lang, PlugboardVersion: "v9.9.9"})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Makefile", "README.md", ".gitignore"} {
				if _, ok := files[want]; !ok {
					t.Errorf("no %s", want)
				}
			}
			readme := string(files["README.md"])
			for _, want := range []string{"plugboard connector push my-api.wasm", "plugboard invoke my-api ping", "docs/ABI.md", "v9.9.9"} {
				if !strings.Contains(readme, want) {
					t.Errorf("README.md lacks %q", want)
				}
			}
			if !strings.Contains(string(files["Makefile"]), "my-api.wasm:") {
				t.Errorf("the Makefile has no rule for my-api.wasm")
			}
			for name, b := range files {
				if strings.Contains(string(b), "<no value>") {
					t.Errorf("%s holds <no value>", name)
				}
			}
		})
	}
}

func TestGoScaffoldVendorsThePDK(t *testing.T) {
	files, err := Render(Options{Name: "my-api", Lang: "go"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pdk/connector.go", "pdk/wasm.go", "pdk/pdktest/pdktest.go", "abi/manifest.go", "abi/check/manifest.go", "go.mod"} {
		if _, ok := files[PDKDir+"/"+want]; !ok {
			t.Errorf("no %s/%s", PDKDir, want)
		}
	}
	for name := range files {
		if strings.HasSuffix(name, "_test.go") && strings.HasPrefix(name, PDKDir) || strings.HasSuffix(name, "/source.go") {
			t.Errorf("vendored %s", name)
		}
	}
	if !strings.Contains(string(files["go.mod"]), "replace github.com/plugboard/plugboard => ./"+PDKDir) {
		t.Errorf("go.mod:\n%s", files["go.mod"])
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		opts Options
		want error
	}{
		{Options{Name: "Bad", Lang: "go", Dir: filepath.Join(dir, "a")}, ErrInvalidName},
		{Options{Name: "ok-name", Lang: "cobol", Dir: filepath.Join(dir, "b")}, ErrUnknownLang},
		{Options{Name: "ok-name", Lang: "go", Dir: dir}, nil}, // empty: allowed
		{Options{Name: "ok-name", Lang: "c", Dir: dir}, ErrNotEmpty},
		{Options{Name: "ok-name", Lang: "c", Dir: dir, Force: true}, nil},
	} {
		_, err := Write(tc.opts)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("Write(%+v) = %v, want %v", tc.opts, err, tc.want)
		}
	}
}
