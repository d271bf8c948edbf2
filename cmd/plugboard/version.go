package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
var version string

// buildVersion is the release version, else the module version the binary was built from.
func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// revision is the VCS commit the binary was built from, shortened, with "+dirty" for local
// changes; "" when unknown.
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(len(s.Value), 12)]
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

func (c *cli) versionCommand() *command {
	var output outputFormat
	return &command{
		name:  "version",
		short: "Print the plugboard version",
		long: "Print the version of this plugboard binary, the commit it was built from and its Go toolchain.\n" +
			"-o json prints {\"version\", \"revision\", \"go\", \"os\", \"arch\"}.",
		example: "plugboard version\nplugboard version -o json | jq -r .version",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			if output == outputJSON {
				return printJSONValue(c.stdout, map[string]string{"version": buildVersion(), "revision": revision(),
					"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH})
			}
			line := "plugboard " + buildVersion()
			if rev := revision(); rev != "" {
				line += " (" + rev + ")"
			}
			fmt.Fprintf(c.stdout, "%s %s %s/%s\n", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
