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
	return &command{
		name:    "version",
		short:   "Print the plugboard version",
		long:    "Print the version of this plugboard binary, the commit it was built from and its Go toolchain.",
		example: "plugboard version",
		run: func(ctx context.Context, args []string) error {
			line := "plugboard " + buildVersion()
			if rev := revision(); rev != "" {
				line += " (" + rev + ")"
			}
			fmt.Fprintf(c.stdout, "%s %s %s/%s\n", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
