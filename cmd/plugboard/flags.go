package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// flagSet is a flag.FlagSet that knows each flag's one-letter alias and which flags are global,
// for the help text.
type flagSet struct {
	*flag.FlagSet
	short  map[string]string // long name -> one-letter alias
	global map[string]bool
}

// newFlagSet returns the flags of cmd: its own, then the global ones.
func (c *cli) newFlagSet(cmd *command) *flagSet {
	fs := &flagSet{
		FlagSet: flag.NewFlagSet(cmd.fullName(), flag.ContinueOnError),
		short:   map[string]string{},
		global:  map[string]bool{},
	}
	fs.SetOutput(io.Discard) // errors and help are printed by the caller
	fs.Usage = func() {}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	// Func flags set the field only when given, so a value parsed at an outer level (plugboard
	// --url X connector list) survives the inner flag set.
	fs.Func("url", "`URL` of the Plugboard server (env PLUGBOARD_URL, else the context's, else "+defaultURL+")",
		func(s string) error { c.url, c.ep = s, nil; return nil })
	fs.Func("token", "bearer `TOKEN` (env PLUGBOARD_TOKEN, else the context's; prefer those: flags show in shell history and ps)",
		func(s string) error { c.token, c.ep = s, nil; return nil })
	fs.Func("context", "use the context `NAME` (env PLUGBOARD_CONTEXT, else the current one; see plugboard context)",
		func(s string) error {
			if s == "" {
				return errors.New("must not be empty")
			}
			c.contextName, c.ep = s, nil
			return nil
		})
	fs.Func("correlation-id", "`ID` sent as X-Correlation-ID, to find the call in the server's logs",
		func(s string) error { c.correlationID = s; return nil })
	for _, name := range []string{"url", "token", "context", "correlation-id"} {
		fs.global[name] = true
	}
	return fs
}

// alias makes -short another name of the flag --long.
func (fs *flagSet) alias(short, long string) {
	f := fs.Lookup(long)
	fs.Var(f.Value, short, f.Usage)
	fs.short[long] = short
}

// parseInterspersed parses flags wherever they stand among the positional arguments, as gh and
// kubectl do (plugboard connector push FILE --activate), and returns the positional ones. "--"
// ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// stringList is a flag that may be repeated; each use adds a value.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	*l = append(*l, s)
	return nil
}

// keyValues is a repeatable KEY=VALUE flag; a later KEY replaces an earlier one.
type keyValues map[string]string

func (kv *keyValues) String() string {
	var parts []string
	for k := range *kv {
		parts = append(parts, k+"=...")
	}
	return strings.Join(parts, ",")
}

func (kv *keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	if *kv == nil {
		*kv = keyValues{}
	}
	(*kv)[k] = v
	return nil
}

// outputFormat is the value of --output.
type outputFormat string

const (
	outputTable outputFormat = "table"
	outputJSON  outputFormat = "json"
)

func (o *outputFormat) String() string { return string(*o) }

func (o *outputFormat) Set(s string) error {
	switch f := outputFormat(s); f {
	case outputTable, outputJSON:
		*o = f
		return nil
	}
	return errors.New(`must be "table" or "json"`)
}

// outputFlag registers --output/-o.
func outputFlag(fs *flagSet, o *outputFormat) {
	*o = outputTable
	fs.Var(o, "output", "output `FORMAT`: table (for people) or json (the API document, for scripts)")
	fs.alias("o", "output")
}

// printHelp writes cmd's help text: description, usage, subcommands, flags, examples.
func (c *cli) printHelp(w io.Writer, cmd *command) {
	desc := cmd.long
	if desc == "" {
		desc = cmd.short
	}
	fmt.Fprintf(w, "%s\n\nUSAGE\n  %s", desc, cmd.fullName())
	if cmd.sub != nil {
		fmt.Fprint(w, " <command>")
	}
	if cmd.args != "" {
		fmt.Fprint(w, " "+cmd.args)
	}
	if !strings.Contains(cmd.args, "[flags]") {
		fmt.Fprint(w, " [flags]")
	}
	fmt.Fprintln(w)

	if cmd.sub != nil {
		fmt.Fprintln(w, "\nCOMMANDS")
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		for _, s := range cmd.sub {
			if s.hidden {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.short)
		}
		tw.Flush()
	}

	fs := c.newFlagSet(cmd)
	var own, global []*flag.Flag
	aliases := map[string]bool{}
	for _, s := range fs.short {
		aliases[s] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		switch {
		case aliases[f.Name]:
		case fs.global[f.Name]:
			global = append(global, f)
		default:
			own = append(own, f)
		}
	})
	if len(own) > 0 && cmd.sub == nil {
		fmt.Fprintln(w, "\nFLAGS")
		printFlags(w, fs, own)
	}
	fmt.Fprintln(w, "\nGLOBAL FLAGS")
	printFlags(w, fs, global)

	if cmd.parent == nil {
		fmt.Fprint(w, "\nENVIRONMENT\n"+
			"  PLUGBOARD_URL       server URL (default: the context's, else "+defaultURL+")\n"+
			"  PLUGBOARD_TOKEN     bearer token: the admin token `plugboard serve` prints at first start\n"+
			"                      and stores in <data dir>/admin.token, or a key's secret\n"+
			"  PLUGBOARD_CONTEXT   the context to use instead of the current one (plugboard context)\n"+
			"  PLUGBOARD_CONFIG    the config file holding the contexts (default\n"+
			"                      $XDG_CONFIG_HOME/plugboard/config.json, else ~/.config/plugboard/config.json)\n"+
			"  A flag wins over its variable, and both over the context.\n"+
			"\nEXIT CODES\n"+
			"  0 success, 1 error, 2 usage error\n")
	}
	if cmd.example != "" {
		fmt.Fprintln(w, "\nEXAMPLES")
		for line := range strings.Lines(cmd.example) {
			fmt.Fprint(w, "  "+line)
		}
		fmt.Fprintln(w)
	}
	if cmd.sub != nil {
		fmt.Fprintf(w, "\nLEARN MORE\n  Use '%s <command> --help' for more about a command.\n", cmd.fullName())
	}
}

func printFlags(w io.Writer, fs *flagSet, flags []*flag.Flag) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, f := range flags {
		name, usage := flag.UnquoteUsage(f)
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
			name = ""
		}
		col := "      --" + f.Name
		if s, ok := fs.short[f.Name]; ok {
			col = "  -" + s + ", --" + f.Name
		}
		if name != "" {
			col += " " + name
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" && !fs.global[f.Name] {
			usage += fmt.Sprintf(" (default %q)", d)
		}
		fmt.Fprintf(tw, "%s\t%s\n", col, usage)
	}
	tw.Flush()
}
