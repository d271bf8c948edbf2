// Package scaffold writes the folder of a new connector, for `plugboard connector init`: the
// connector's source with its manifest and one action, ping, that answers {"ok": true} without
// calling out; a Makefile whose default target builds NAME.wasm and whose test target runs the
// connector's unit test; and a README saying how to build, test, upload and invoke it.
//
// Each language is a tree of text/template files under templates/LANG, after the files of
// templates/common (the README) that every language shares; every file ends in .tmpl, which
// is dropped, and the data is [Data]:
//
//   - go: the connector on the Go PDK, tested with pdktest. The PDK's own sources (packages
//     abi, abi/check, pdk and pdk/pdktest, taken from this binary: [abi.Source], [pdk.Source])
//     are written to internal/plugboard/ as the module github.com/plugboard/plugboard, which the
//     connector's go.mod replaces, because that module is not published.
//   - assemblyscript: the Extism AssemblyScript PDK and the compiler from npm at pinned
//     versions (package-lock.json), tested by running the built module under Node.js with a
//     fake host (test/host.mjs).
//   - c: clang for wasm32-wasi with wasi-libc; the glue to the Extism kernel and the Plugboard
//     host functions is plugboard.h/plugboard.c, written against ABI.md (no third-party header).
//     The test compiles the same sources natively against a fake host (test/fake_host.c).
//   - rust: plain rustc for wasm32-unknown-unknown (no cargo, no crates); the glue is
//     src/plugboard.rs. The test is `rustc --test` natively against a fake host in the same
//     file.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/pdk"
)

//go:embed all:templates
var templates embed.FS

// Languages are the values --lang accepts, in the order help lists them.
var Languages = []string{"go", "assemblyscript", "c", "rust"}

// Version is the version the new connector's manifest starts at.
const Version = "0.1.0"

// GoDirective is the go line of the Go scaffold's go.mod files: the Go release the PDK needs.
const GoDirective = "1.26.0"

// Module is one module requirement of the vendored PDK.
type Module struct {
	Path, Version string
}

// GoRequires are the third-party modules the vendored PDK imports, at the versions of this
// repository's go.mod (a test holds them equal). They come from the Go module proxy; the
// scaffold's go.sum (templates/go/go.sum.tmpl) pins their hashes.
var GoRequires = []Module{
	{"github.com/extism/go-pdk", "v1.1.3"},
	{"github.com/santhosh-tekuri/jsonschema/v6", "v6.0.3"},
	{"golang.org/x/text", "v0.43.0"},
}

// PDKDir is where the Go scaffold puts the vendored PDK module, relative to the connector's
// folder.
const PDKDir = "internal/plugboard"

// Options say what to write.
type Options struct {
	// Name is the connector's name, as its manifest gives it (ABI.md section 3).
	Name string
	// Lang is one of Languages.
	Lang string
	// Dir is the folder to write. It must be absent or empty unless Force is set.
	Dir string
	// Force writes into a folder that is not empty, replacing the files the scaffold writes and
	// leaving the others alone.
	Force bool
	// PlugboardVersion is the version of the binary writing the scaffold, named in its README
	// and in the vendored PDK's README. Empty means "dev".
	PlugboardVersion string
}

// Data is what the templates see.
type Data struct {
	Name             string   // connector name: "my-api"
	Ident            string   // the name as a C or Rust identifier: "my_api"
	Title            string   // a title made from the name: "My api"
	Version          string   // the manifest's version: Version
	Lang             string   // one of Languages
	PlugboardVersion string   // the binary's version
	GoDirective      string   // GoDirective
	GoRequires       []Module // GoRequires
	PDKDir           string   // PDKDir
}

// Sentinel errors of Write, for callers that tell the cases apart.
var (
	// ErrInvalidName: the name is not a valid connector name.
	ErrInvalidName = errors.New("invalid connector name")
	// ErrUnknownLang: the language is not one of Languages.
	ErrUnknownLang = errors.New("unknown language")
	// ErrNotEmpty: the folder exists and holds files, and Force is not set.
	ErrNotEmpty = errors.New("folder is not empty")
)

// CheckName returns nil when name is a valid connector name, or an error wrapping
// ErrInvalidName that gives the rule. The rule is the one the server applies at upload
// (package check).
func CheckName(name string) error {
	m := &abi.Manifest{ABI: abi.Version, Name: name, Version: Version, Auth: abi.Auth{Types: []string{abi.AuthNone}}}
	if err := check.Manifest(m); err != nil {
		if me, ok := errors.AsType[*check.ManifestError](err); ok {
			for _, p := range me.Problems {
				if p.Field == "name" {
					return fmt.Errorf("%w: %s (lower-case letters, digits and dashes, starting with a letter, 2 to 63 characters, e.g. my-api)", ErrInvalidName, p.Message)
				}
			}
		}
		return fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	return nil
}

// CheckLang returns nil when lang is one of Languages, or an error wrapping ErrUnknownLang
// that lists them.
func CheckLang(lang string) error {
	if slices.Contains(Languages, lang) {
		return nil
	}
	return fmt.Errorf("%w %q: choose one of %s", ErrUnknownLang, lang, strings.Join(Languages, ", "))
}

// Write renders the scaffold of opts.Lang into opts.Dir and returns the paths it wrote,
// relative to opts.Dir, sorted. It checks the name, the language and the folder before writing
// anything, and renders every file before writing the first.
func Write(opts Options) ([]string, error) {
	if err := CheckName(opts.Name); err != nil {
		return nil, err
	}
	if err := CheckLang(opts.Lang); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("scaffold: no folder given")
	}
	if err := checkFolder(opts.Dir, opts.Force); err != nil {
		return nil, err
	}
	files, err := Render(opts)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := filepath.Join(opts.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// checkFolder refuses a folder that exists and is not empty (unless force), or a path that is
// not a folder.
func checkFolder(dir string, force bool) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a folder: choose another NAME or --dir", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 && !force {
		return fmt.Errorf("%w: %s holds %d entries (e.g. %s); choose another --dir, or pass --force to write the scaffold's files over it",
			ErrNotEmpty, dir, len(entries), entries[0].Name())
	}
	return nil
}

// Render returns the files of the scaffold, by slash-separated path relative to the
// connector's folder, without writing them. opts.Dir and opts.Force are ignored.
func Render(opts Options) (map[string][]byte, error) {
	if err := CheckName(opts.Name); err != nil {
		return nil, err
	}
	if err := CheckLang(opts.Lang); err != nil {
		return nil, err
	}
	d := Data{
		Name:             opts.Name,
		Ident:            strings.ReplaceAll(opts.Name, "-", "_"),
		Title:            title(opts.Name),
		Version:          Version,
		Lang:             opts.Lang,
		PlugboardVersion: opts.PlugboardVersion,
		GoDirective:      GoDirective,
		GoRequires:       GoRequires,
		PDKDir:           PDKDir,
	}
	if d.PlugboardVersion == "" {
		d.PlugboardVersion = "dev"
	}
	files := map[string][]byte{}
	for _, root := range []string{"templates/common", "templates/" + opts.Lang} {
		if err := render(files, root, d); err != nil {
			return nil, err
		}
	}
	if opts.Lang == "go" {
		for _, src := range []struct {
			fsys fs.FS
			dir  string
		}{{abi.Source, "abi"}, {pdk.Source, "pdk"}} {
			if err := vendor(files, src.fsys, PDKDir+"/"+src.dir); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

// render adds the templates under root, executed with d, to files.
func render(files map[string][]byte, root string, d Data) error {
	return fs.WalkDir(templates, root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, ok := strings.CutSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		if !ok {
			return fmt.Errorf("scaffold: template %s does not end in .tmpl", p)
		}
		text, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := template.New(rel).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return fmt.Errorf("scaffold: %w", err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return fmt.Errorf("scaffold: %w", err)
		}
		files[rel] = b.Bytes()
		return nil
	})
}

// vendor adds the non-test Go files of fsys under dir, leaving out the file that embeds the
// sources (source.go): the vendored copy has no use for it.
func vendor(files map[string][]byte, fsys fs.FS, dir string) error {
	return fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || p == "source.go" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files[path.Join(dir, p)] = b
		return nil
	})
}

// title makes a manifest title from a connector name: "my-api" becomes "My api".
func title(name string) string {
	s := strings.ReplaceAll(name, "-", " ")
	return strings.ToUpper(s[:1]) + s[1:]
}
