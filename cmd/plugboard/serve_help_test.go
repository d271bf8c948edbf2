package main

import (
	"flag"
	"strings"
	"testing"
)

// TestServeHelp: `plugboard serve -h` has the help layout of the other commands (description,
// usage, flags under headings with placeholders and defaults, environment, examples) on
// standard output, the same as `plugboard help serve`, and serve's usage errors read like the
// others'.
func TestServeHelp(t *testing.T) {
	r := plugboard(t, nil, "", "serve", "-h")
	r.want(t, exitOK, []string{
		"Run the Plugboard server", "\n\nUSAGE\n  plugboard serve [flags]\n",
		"\nLISTENER FLAGS\n      --listen ADDR ", `address to listen on (default "127.0.0.1:8080")`,
		"\nSTORE FLAGS\n", "--data DIR", "\nEGRESS FLAGS", "--egress-allow CIDR,...", "\nDEVELOPMENT FLAGS\n      --dev ",
		"--audit-retention DURATION", "(default 2160h, 90 days)", "--skip-store-check ",
		"\nENVIRONMENT\n  PLUGBOARD_<FLAG> ", "PLUGBOARD_ADMIN_TOKEN", "\nEXAMPLES\n  # ", "  plugboard serve --dev ",
	}, nil)
	if r.stderr != "" {
		t.Errorf("serve -h wrote to stderr: %q", r.stderr)
	}
	if strings.Contains(r.stdout, "OTHER FLAGS") {
		t.Errorf("a serve flag has no help group (add it to serveFlagGroups):\n%s", r.stdout)
	}
	for line := range strings.Lines(r.stdout) {
		if len(line) > helpWidth+1 && !strings.HasPrefix(line, "  plugboard ") {
			t.Errorf("line over %d columns: %q", helpWidth, line)
		}
	}
	if via := plugboard(t, nil, "", "help", "serve"); via.code != exitOK || via.stdout != r.stdout {
		t.Errorf("plugboard help serve differs from serve -h:\n%s", via.stdout)
	}
	if via := plugboard(t, nil, "", "serve", "--help"); via.stdout != r.stdout {
		t.Error("serve --help differs from serve -h")
	}

	// Every flag has a group and, unless it is a switch, a placeholder.
	fs := serveFlags()
	if fs == nil {
		t.Fatal("serveFlags found no flag set")
	}
	grouped := map[string]bool{}
	for _, g := range serveFlagGroups {
		for _, n := range g.flags {
			grouped[n] = true
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !grouped[f.Name] {
			t.Errorf("--%s is in no group of serveFlagGroups", f.Name)
		}
		if !isBoolFlag(f) && servePlaceholders[f.Name] == "" {
			t.Errorf("--%s has no placeholder in servePlaceholders", f.Name)
		}
	})

	plugboard(t, nil, "", "serve", "--lisen", "x").want(t, exitUsage, nil,
		[]string{"error: flag provided but not defined: -lisen\n", "Run 'plugboard serve --help' for usage."})
	plugboard(t, nil, "", "serve", "extra").want(t, exitUsage, nil,
		[]string{`error: serve takes no arguments, got ["extra"]`, "Run 'plugboard serve --help' for usage."})
}

// TestCompleteServeFlags: completion knows serve's flags and their values, though serve parses
// them itself.
func TestCompleteServeFlags(t *testing.T) {
	got, _ := completeValues(t, nil, "serve", "--egress-a")
	if len(got) != 1 || got[0] != "--egress-allow" {
		t.Errorf("serve --egress-a: %q", got)
	}
	if _, d := completeValues(t, nil, "serve", "--data", ""); d != "dirs" {
		t.Errorf("serve --data: directive %q", d)
	}
	if got, _ := completeValues(t, nil, "serve", "--log-format="); strings.Join(got, " ") != "--log-format=text --log-format=json" {
		t.Errorf("serve --log-format=: %q", got)
	}
}
