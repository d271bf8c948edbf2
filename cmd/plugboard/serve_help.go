package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// serve parses its own flags (each also a PLUGBOARD_<FLAG> variable, see runServe), so its
// help is printed here rather than by printHelp, in the same style: description, usage, the
// flags by group with their placeholders and defaults, environment, examples.

// serveHelpText is the description at the top of `plugboard serve -h`.
const serveHelpText = "Run the Plugboard server: the HTTP API (docs/API.md), the MCP endpoints, trigger polling and\n" +
	"delivery, over one data directory (bbolt) or a NATS JetStream namespace shared by several\n" +
	"nodes. It prints the URL it serves on, then logs to standard error; Ctrl-C (SIGINT) or\n" +
	"SIGTERM stops it gracefully. Every flag may also be set as PLUGBOARD_<FLAG>; a flag on the\n" +
	"command line wins."

// serveExamples are the examples of `plugboard serve -h`.
const serveExamples = "# A local server with the repository's plugins\n" +
	"plugboard serve --data ./var --connectors-dir bin/plugins\n" +
	"# Connectors may call fakes on 127.0.0.1 and the LAN; rebuilt plugins are swapped in\n" +
	"plugboard serve --dev --connectors-dir ./build --watch\n" +
	"# Only a loopback range, by its CIDR\n" +
	"plugboard serve --egress-allow 127.0.0.0/8\n" +
	"# The management API on a unix socket only, the rest on every interface over HTTPS\n" +
	"plugboard serve --listen :8443 --tls-cert cert.pem --tls-key key.pem --admin-listen unix:/run/plugboard/admin.sock\n" +
	"# One node of a cluster on NATS JetStream\n" +
	"plugboard serve --store nats://10.0.0.5:4222 --master-key-file /etc/plugboard/master.key --data /var/lib/plugboard"

// serveFlagGroups sorts serve's flags under headings, in this order. A flag missing here is
// shown under OTHER FLAGS (and TestServeHelp fails).
var serveFlagGroups = []struct {
	heading string
	flags   []string
}{
	{"LISTENER FLAGS", []string{"listen", "public-url", "tls-cert", "tls-key", "admin-listen", "pprof-listen"}},
	{"STORE FLAGS", []string{"data", "store", "store-prefix", "store-replicas", "node-name", "nats-creds", "nats-tls-ca",
		"master-key-file", "skip-store-check"}},
	{"CONNECTOR FLAGS", []string{"connectors-dir", "max-upload-mib", "max-body-mib", "max-output-bytes"}},
	{"DEVELOPMENT FLAGS", []string{"dev", "watch"}},
	{"EGRESS FLAGS (what plugins may reach)", []string{"egress-allow", "egress-connect-to", "egress-ca"}},
	{"KEY AND AUDIT FLAGS", []string{"print-token", "key-rate-limit", "key-rate-burst", "audit-retention", "audit-max-entries"}},
	{"LOG FLAGS", []string{"log-level", "log-format"}},
}

// servePlaceholders name the value of each serve flag in the help, as `URL` in a usage string
// does for the other commands.
var servePlaceholders = map[string]string{
	"listen": "ADDR", "public-url": "URL", "tls-cert": "FILE", "tls-key": "FILE", "admin-listen": "ADDR",
	"pprof-listen": "ADDR", "data": "DIR", "store": "URL", "store-prefix": "PREFIX", "store-replicas": "N",
	"node-name": "NAME", "nats-creds": "FILE", "nats-tls-ca": "FILE", "master-key-file": "FILE",
	"connectors-dir": "DIR", "max-upload-mib": "MIB", "max-body-mib": "MIB", "max-output-bytes": "BYTES", "egress-allow": "CIDR,...",
	"egress-connect-to": "FROM=TO,...", "egress-ca": "FILE", "key-rate-limit": "RPS",
	"key-rate-burst": "N", "audit-retention": "DURATION", "audit-max-entries": "N", "log-level": "LEVEL",
	"log-format": "FORMAT",
}

// flagCollector is a writer that printServeHelp hands serve's flag set to instead of printing
// it: how completion learns serve's flags without running the server (runServe with -h stops
// right after defining them).
type flagCollector struct {
	io.Writer
	fs *flag.FlagSet
}

// helpWidth is where the help wraps a flag's description.
const helpWidth = 100

// printServeHelp writes the help of `plugboard serve` for its flag set fs.
func printServeHelp(w io.Writer, fs *flag.FlagSet) {
	if fc, ok := w.(*flagCollector); ok {
		fc.fs = fs
		return
	}
	fmt.Fprintf(w, "%s\n\nUSAGE\n  plugboard serve [flags]\n", serveHelpText)
	shown := map[string]bool{}
	section := func(heading string, names []string) {
		var flags []*flag.Flag
		for _, n := range names {
			if f := fs.Lookup(n); f != nil {
				flags = append(flags, f)
				shown[n] = true
			}
		}
		if len(flags) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", heading)
		printServeFlags(w, flags)
	}
	for _, g := range serveFlagGroups {
		section(g.heading, g.flags)
	}
	var other []string
	fs.VisitAll(func(f *flag.Flag) {
		if !shown[f.Name] {
			other = append(other, f.Name)
		}
	})
	section("OTHER FLAGS", other)
	fmt.Fprint(w, "\nENVIRONMENT\n"+
		"  PLUGBOARD_<FLAG>              any flag above, upper case with dashes as underscores\n"+
		"                                (PLUGBOARD_LISTEN, PLUGBOARD_EGRESS_ALLOW); the flag wins\n"+
		"  PLUGBOARD_ADMIN_TOKEN         the admin token; without it one is generated at first start,\n"+
		"                                printed once and kept in <data>/admin.token (mode 0600)\n"+
		"  OTEL_EXPORTER_OTLP_ENDPOINT   export traces with OTLP/HTTP (off unless set; the other\n"+
		"                                OTEL_* variables tune it)\n"+
		"\nEXIT CODES\n"+
		"  0 stopped cleanly, 1 error, 2 usage error, 3 the store is damaged (serve refused to start)\n")
	fmt.Fprintln(w, "\nEXAMPLES")
	for line := range strings.Lines(serveExamples) {
		fmt.Fprint(w, "  "+line)
	}
	fmt.Fprintln(w)
}

// printServeFlags writes flags in two columns, wrapping long descriptions.
func printServeFlags(w io.Writer, flags []*flag.Flag) {
	cols := make([]string, len(flags))
	widest := 0
	for i, f := range flags {
		cols[i] = "      --" + f.Name
		if !isBoolFlag(f) {
			ph := servePlaceholders[f.Name]
			if ph == "" {
				ph, _ = flag.UnquoteUsage(f)
				ph = strings.ToUpper(ph)
			}
			cols[i] += " " + ph
		}
		widest = max(widest, len(cols[i]))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for i, f := range flags {
		col := cols[i]
		usage := f.Usage
		if d := serveDefault(f); d != "" {
			usage += " (default " + d + ")"
		}
		for i, line := range wrapWords(usage, helpWidth-widest-3) {
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\n", col, line)
			} else {
				fmt.Fprintf(tw, "\t%s\n", line)
			}
		}
	}
	tw.Flush()
}

// serveDefault shows a flag's default, or "" when it is the zero value.
func serveDefault(f *flag.Flag) string {
	d := f.DefValue
	switch {
	case d == "" || d == "false" || d == "0" || d == "0s":
		return ""
	case strings.HasSuffix(d, "h0m0s"):
		h := strings.TrimSuffix(d, "h0m0s")
		if dur, err := time.ParseDuration(d); err == nil && dur%(24*time.Hour) == 0 {
			return fmt.Sprintf("%sh, %d days", h, dur/(24*time.Hour))
		}
		return h + "h"
	}
	if _, isString := f.Value.(flag.Getter).Get().(string); isString {
		return fmt.Sprintf("%q", d)
	}
	return d
}

// wrapWords breaks s into lines of at most width characters at blanks (a longer word stays
// whole on its own line).
func wrapWords(s string, width int) []string {
	width = max(width, 30)
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}
