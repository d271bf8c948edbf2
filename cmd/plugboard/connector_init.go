package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/plugboard/plugboard/cmd/plugboard/internal/scaffold"
)

// langHelp describes each --lang value: its toolchain and its test, for the help text.
var langHelp = map[string]string{
	"go":             "Go PDK, vendored into the folder; test with pdktest (go test)",
	"assemblyscript": "Extism AssemblyScript PDK from npm (pinned); test runs the .wasm under Node.js",
	"c":              "clang + lld + wasi-libc; test builds the sources natively against a fake host",
	"rust":           "rustc with the wasm32 std, no cargo or crates; test is rustc --test against a fake host",
}

func (c *cli) connectorInit() *command {
	var lang, dir string
	var force bool
	var output outputFormat
	var langs strings.Builder
	for _, l := range scaffold.Languages {
		fmt.Fprintf(&langs, "\n  %-16s%s", l, langHelp[l])
	}
	return &command{
		name:  "init",
		args:  "NAME --lang " + strings.Join(scaffold.Languages, "|"),
		short: "Write the folder of a new connector: source, Makefile, unit test and README",
		long: "Write a folder NAME/ (or --dir DIR) with a new connector: its source with a manifest and one\n" +
			"action, ping, that answers {\"ok\": true} without calling out; a Makefile where `make` builds\n" +
			"NAME.wasm in that folder and `make test` runs the connector's unit test against a fake host;\n" +
			"and a README saying how to build, test, upload and invoke it. The built plugin passes the\n" +
			"server's upload checks as it is. Nothing talks to a server. Languages:" + langs.String() + "\n\n" +
			"The folder must be absent or empty; --force writes the scaffold's files into a folder that is\n" +
			"not, replacing those and leaving the others alone.",
		example: "# A Go connector, built, tested, uploaded and called\n" +
			"plugboard connector init my-api --lang go\n" +
			"cd my-api && make test && make\n" +
			"plugboard connector push my-api.wasm\n" +
			"plugboard invoke my-api ping\n" +
			"# Another language, into a folder of your choice\n" +
			"plugboard connector init my-api --lang rust --dir ./connectors/my-api",
		nargs: exactArgs("NAME"),
		flags: func(fs *flagSet) {
			fs.StringVar(&lang, "lang", "", "the connector's `LANGUAGE`: "+strings.Join(scaffold.Languages, ", ")+" (required)")
			fs.StringVar(&dir, "dir", "", "write into `DIR` instead of ./NAME")
			fs.BoolVar(&force, "force", false, "write into a folder that is not empty, replacing the scaffold's files")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			name := args[0]
			if err := scaffold.CheckName(name); err != nil {
				return usagef("%v", err)
			}
			if lang == "" {
				return usagef("--lang is required: choose one of %s", strings.Join(scaffold.Languages, ", "))
			}
			if err := scaffold.CheckLang(lang); err != nil {
				return usagef("--lang: %v", err)
			}
			if dir == "" {
				dir = name
			}
			files, err := scaffold.Write(scaffold.Options{Name: name, Lang: lang, Dir: dir, Force: force, PlugboardVersion: buildVersion()})
			if errors.Is(err, scaffold.ErrNotEmpty) {
				return usagef("%v", err)
			}
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONValue(c.stdout, map[string]any{"name": name, "lang": lang, "dir": filepath.Clean(dir), "files": files})
			}
			fmt.Fprintf(c.stdout, "Wrote %s: a %s connector, %d files.\n\nNext:\n", filepath.Clean(dir), lang, len(files))
			fmt.Fprintf(c.stdout, "  cd %s\n", dir)
			fmt.Fprintf(c.stdout, "  make test                           # the unit test\n")
			fmt.Fprintf(c.stdout, "  make                                # builds %s.wasm\n", name)
			fmt.Fprintf(c.stdout, "  plugboard connector push %s.wasm\n", name)
			fmt.Fprintf(c.stdout, "  plugboard invoke %s ping\n", name)
			fmt.Fprintf(c.stdout, "\nREADME.md says what each file is; the contracts are docs/ABI.md and docs/API.md in the Plugboard repository.\n")
			return nil
		},
	}
}
