package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/plugboard/internal/scaffold"
)

func TestConnectorInitRefusals(t *testing.T) {
	tmp := t.TempDir()
	full := filepath.Join(tmp, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o644)
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, []byte("x"), 0o644)

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"upper-case name", []string{"My-API", "--lang", "go"}, exitUsage, []string{"invalid connector name", `"My-API"`, "lower-case letters"}},
		{"underscore in the name", []string{"my_api", "--lang", "go"}, exitUsage, []string{"invalid connector name"}},
		{"one-letter name", []string{"a", "--lang", "go"}, exitUsage, []string{"invalid connector name"}},
		{"name starting with a digit", []string{"1api", "--lang", "c"}, exitUsage, []string{"invalid connector name"}},
		{"unknown language", []string{"my-api", "--lang", "python"}, exitUsage, []string{`unknown language "python"`, "go, assemblyscript, c, rust"}},
		{"no language", []string{"my-api"}, exitUsage, []string{"--lang is required", "go, assemblyscript, c, rust"}},
		{"no name", []string{"--lang", "go"}, exitUsage, []string{"missing NAME"}},
		{"folder not empty", []string{"my-api", "--lang", "go", "--dir", full}, exitUsage, []string{"folder is not empty", "notes.txt", "--force"}},
		{"a file in the way", []string{"my-api", "--lang", "rust", "--dir", file}, exitError, []string{"is not a folder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"connector", "init"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "--dir") {
				args = append(args, "--dir", filepath.Join(tmp, "new-"+strings.ReplaceAll(tc.name, " ", "-")))
			}
			plugboard(t, nil, "", args...).want(t, tc.code, nil, tc.stderr)
		})
	}
	entries, _ := os.ReadDir(tmp)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"file", "full"}) {
		t.Errorf("a refused init wrote into %s: %v", tmp, names)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "notes.txt")); string(b) != "mine" {
		t.Errorf("a refused init changed a file")
	}

	// --force writes the scaffold over a folder that is not empty, and leaves other files.
	r := plugboard(t, nil, "", "connector", "init", "my-api", "--lang", "c", "--dir", full, "--force").ok(t)
	if !strings.Contains(r.stdout, "plugboard invoke my-api ping") {
		t.Errorf("init does not say what to do next:\n%s", r.stdout)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "notes.txt")); string(b) != "mine" {
		t.Errorf("--force changed a file the scaffold does not own")
	}
	if _, err := os.Stat(filepath.Join(full, "connector.c")); err != nil {
		t.Errorf("--force wrote no connector: %v", err)
	}
}

// TestConnectorInitScaffoldsBuildUploadAndRun scaffolds a connector in each language into a
// folder outside the repository, runs its `make` and `make test`, uploads the built NAME.wasm to
// a real server and invokes ping. Then it breaks ping in the source and expects `make test` to
// fail, so the scaffold's test is seen to test something. A language whose toolchain is missing
// is skipped naming the tool and its Debian package; under CI, where .ci/run installs all four,
// it fails instead.
func TestConnectorInitScaffoldsBuildUploadAndRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and four connectors; run without -short")
	}
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("make is missing (Debian package make); .ci/run installs it")
		}
		t.Skip("make is missing (Debian package make)")
	}
	_, bin := plugboardBinary(t)
	tmp := t.TempDir()
	server := env{"PLUGBOARD_URL": startServe(t, bin, filepath.Join(tmp, "var"), "pba_init").url, "PLUGBOARD_TOKEN": "pba_init"}

	// broken turns ping's true into false in each language's connector source.
	broken := map[string][2]string{
		"go":             {"main.go", "PingOutput{OK: true}"},
		"assemblyscript": {"assembly/index.ts", `'{"output":{"ok":true}}'`},
		"c":              {"connector.c", `"{\"output\":{\"ok\":true}}"`},
		"rust":           {"src/lib.rs", `Value::Bool(true)`},
	}
	for _, lang := range scaffold.Languages {
		t.Run(lang, func(t *testing.T) {
			if missing := missingToolchain(lang); missing != "" {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s; .ci/run installs it, so CI skips no language", missing)
				}
				t.Skip(missing)
			}
			name := "hello-" + map[string]string{"go": "go", "assemblyscript": "as", "c": "c", "rust": "rs"}[lang]
			dir := filepath.Join(tmp, name)
			plugboard(t, nil, "", "connector", "init", name, "--lang", lang, "--dir", dir).ok(t)
			makeIn(t, dir, "test")
			makeIn(t, dir)
			wasm := filepath.Join(dir, name+".wasm")
			if fi, err := os.Stat(wasm); err != nil || fi.Size() == 0 {
				t.Fatalf("make built no %s: %v", wasm, err)
			}
			plugboard(t, server, "", "connector", "push", wasm).want(t, exitOK, []string{"Uploaded " + name + " " + scaffold.Version}, nil)
			r := plugboard(t, server, "", "invoke", name, "ping").ok(t)
			var out map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !reflect.DeepEqual(out, map[string]any{"ok": true}) {
				t.Errorf("invoke %s ping printed %q (%v), want {\"ok\": true}", name, r.stdout, err)
			}

			file, old := broken[lang][0], broken[lang][1]
			src, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil || !strings.Contains(string(src), old) {
				t.Fatalf("%s has no %s to break (%v)", file, old, err)
			}
			os.WriteFile(filepath.Join(dir, file), []byte(strings.Replace(string(src), old, strings.Replace(old, "true", "false", 1), 1)), 0o644)
			if out, err := makeCmd(dir, "test").CombinedOutput(); err == nil {
				t.Errorf("make test passed with ping answering false:\n%s", out)
			}
		})
	}
}

// missingToolchain names what `make` and `make test` need for lang and is not installed, with
// the Debian package that provides it, or returns "".
func missingToolchain(lang string) string {
	need := map[string][][2]string{
		"go":             {{"go", "golang (or go.dev/dl)"}},
		"assemblyscript": {{"node", "nodejs"}, {"npm", "npm"}},
		"c":              {{"clang", "clang"}, {"wasm-ld", "lld"}, {"cc", "gcc"}},
		"rust":           {{"rustc", "rustc"}},
	}[lang]
	for _, n := range need {
		if _, err := exec.LookPath(n[0]); err != nil {
			return n[0] + " is missing (Debian package " + n[1] + ")"
		}
	}
	switch lang {
	case "c":
		probe := exec.Command("clang", "--target=wasm32-wasi", "-mexec-model=reactor", "-x", "c", "-o", os.DevNull, "-")
		probe.Stdin = strings.NewReader("#include <stdlib.h>\nint f(void) { return abs(-1); }\n")
		if out, err := probe.CombinedOutput(); err != nil {
			return "clang cannot build for wasm32-wasi (Debian packages wasi-libc and libclang-rt-dev-wasm32): " + firstLineOf(string(out))
		}
	case "rust":
		for _, rustc := range []string{"rustc", "/usr/bin/rustc"} {
			sysroot, err := exec.Command(rustc, "--print", "sysroot").Output()
			if err != nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(sysroot)), "lib", "rustlib", "wasm32-unknown-unknown", "lib")); err == nil {
				return ""
			}
		}
		return "no rustc has the wasm32-unknown-unknown standard library (Debian package libstd-rust-dev-wasm32)"
	}
	return ""
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func makeCmd(dir string, args ...string) *exec.Cmd {
	c := exec.Command("make", append([]string{"-C", dir}, args...)...)
	// The scaffold builds outside this module: the test's own GOFLAGS (say -mod=vendor) are not
	// its business.
	c.Env = append(os.Environ(), "GOFLAGS=")
	return c
}

func makeIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	if out, err := makeCmd(dir, args...).CombinedOutput(); err != nil {
		t.Fatalf("make %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
}
