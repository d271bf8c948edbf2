package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// progressMin is the upload size from which push shows a progress line on a terminal.
const progressMin = 1 << 20

func (c *cli) connectorCommand() *command {
	return &command{
		name:  "connector",
		short: "Upload connector plugins and manage their versions",
		long: "Upload connector plugins (.wasm), list them, read their versions and actions, and\n" +
			"switch the active version (hot swap or roll back).",
		example: "plugboard connector push ./github.wasm\n" +
			"plugboard connector list\n" +
			"plugboard connector activate github 1.2.0",
		sub: []*command{
			c.connectorPush(),
			c.connectorList(),
			c.connectorGet(),
			c.connectorVersions(),
			c.connectorActivate(),
			c.connectorDeleteVersion(),
			c.connectorActions(),
			c.connectorInit(),
		},
	}
}

func (c *cli) connectorPush() *command {
	var activate, approve bool
	var output outputFormat
	return &command{
		name:  "push",
		args:  "FILE.wasm",
		short: "Upload a connector plugin",
		long: "Upload a connector plugin: a .wasm file, or - for standard input. The server checks it,\n" +
			"stores it by digest and answers its name and version (from its manifest). The first\n" +
			"version of a connector becomes active at once; later ones are stored inactive unless\n" +
			"--activate is given. Uploading the same bytes again stores nothing new. Before activating,\n" +
			"push prints what the version changes against the active one (actions, triggers, hosts,\n" +
			"auth types, reveal capabilities, schemas).",
		example: "# Upload a first version, or store a new one without serving it yet\n" +
			"plugboard connector push ./github.wasm\n" +
			"# Upload and make it serve (a hot swap: calls in flight finish on the old version)\n" +
			"plugboard connector push ./github.wasm --activate\n" +
			"# Print the version document, e.g. for its digest\n" +
			"plugboard connector push ./github.wasm -o json | jq -r .digest",
		nargs: exactArgs("FILE.wasm"),
		flags: func(fs *flagSet) {
			fs.BoolVar(&activate, "activate", false, "make this version the active one (also when it was already stored)")
			fs.BoolVar(&approve, "approve-capabilities", false, "with --activate: accept the origins, auth types and reveal capabilities the version adds")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			wasm, err := c.readFile(args[0])
			if err != nil {
				return err
			}
			api := c.api()
			var done func()
			if len(wasm) >= progressMin && isTerminal(c.stderr) {
				api.UploadProgress, done = c.progress(args[0])
			}
			// Upload without activating, show the changes, then activate.
			v, created, err := api.UploadConnector(ctx, wasm, false)
			if done != nil {
				done()
			}
			if err != nil {
				return withHint(err, &client.Problem{Code: client.CodeTooLarge},
					"the plugin (%s) is over the server's upload cap: raise it with `plugboard serve --max-upload-mib N`",
					humanSize(int64(len(wasm))))
			}
			changesOut := c.stdout
			if output == outputJSON {
				changesOut = c.stderr
			}
			if err := printChanges(ctx, api, v, changesOut); err != nil {
				return err
			}
			activated := false
			if activate && !v.Active {
				name, ver := v.Name, v.Version
				if v, err = api.Activate(ctx, name, ver, approve); err != nil {
					return activateHint(err, name, ver)
				}
				activated = true
			}
			if output == outputJSON {
				return printJSON(c.stdout, v.Raw)
			}
			if created {
				fmt.Fprintf(c.stdout, "Uploaded %s %s.\n", v.Name, v.Version)
			} else {
				fmt.Fprintf(c.stdout, "%s %s is already stored with the same bytes.\n", v.Name, v.Version)
			}
			d := newDetails(c.stdout)
			d.add("Digest", v.Digest)
			d.add("Size", fmt.Sprintf("%s (%d bytes)", humanSize(v.Size), v.Size))
			switch {
			case activated:
				d.add("Active", "yes (activated now)")
			case v.Active:
				d.add("Active", "yes")
			default:
				d.add("Active", fmt.Sprintf("no; activate it with `plugboard connector activate %s %s`", v.Name, v.Version))
			}
			return d.flush()
		},
	}
}

// readFile reads a file, or standard input for "-".
func (c *cli) readFile(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(c.stdin)
	}
	return os.ReadFile(name)
}

// progress returns an upload progress reporter that rewrites one stderr line, and the function
// that clears the line once the upload is over.
func (c *cli) progress(label string) (report func(sent, total int64), done func()) {
	var mu sync.Mutex // the transport may read the body on its own goroutine
	last := -1
	report = func(sent, total int64) {
		mu.Lock()
		defer mu.Unlock()
		pct := int(sent * 100 / max(total, 1))
		if pct == last {
			return
		}
		last = pct
		if sent < total {
			fmt.Fprintf(c.stderr, "\r\033[KUploading %s: %s / %s (%d%%)", label, humanSize(sent), humanSize(total), pct)
		} else {
			fmt.Fprintf(c.stderr, "\r\033[KUploaded %s (%s); the server is checking it...", label, humanSize(total))
		}
	}
	done = func() {
		mu.Lock()
		defer mu.Unlock()
		if last >= 0 {
			fmt.Fprint(c.stderr, "\r\033[K")
		}
	}
	return report, done
}

func (c *cli) connectorList() *command {
	var output outputFormat
	return &command{
		name:    "list",
		short:   "List connectors",
		long:    "List the connectors: name, title, active version and how many versions are stored.",
		example: "plugboard connector list\nplugboard connector list -o json",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			list, err := c.api().ListConnectors(ctx)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONList(c.stdout, "connectors", raws(list, func(s client.ConnectorSummary) json.RawMessage { return s.Raw }))
			}
			if len(list) == 0 {
				fmt.Fprintln(c.stderr, "No connectors. Upload one with `plugboard connector push FILE.wasm`.")
				return nil
			}
			t := newTable(c.stdout, "NAME", "TITLE", "ACTIVE", "VERSIONS")
			for _, s := range list {
				t.row(s.Name, s.Title, s.ActiveVersion, strconv.Itoa(len(s.Versions)))
			}
			return t.flush()
		},
	}
}

func (c *cli) connectorGet() *command {
	var output outputFormat
	return &command{
		name:    "get",
		args:    "NAME",
		short:   "Show a connector",
		long:    "Show a connector: its active manifest (auth, hosts, actions, triggers) and its versions.",
		example: "plugboard connector get github\nplugboard connector get github -o json | jq .manifest",
		nargs:   exactArgs("NAME"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			con, err := c.api().GetConnector(ctx, args[0])
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, con.Raw)
			}
			d := newDetails(c.stdout)
			d.add("Name", con.Name)
			d.add("Title", con.Title)
			d.add("Active version", con.ActiveVersion)
			if m := con.Manifest; m != nil {
				d.add("Description", m.Description)
				d.add("Auth types", strings.Join(m.Auth.Types, ", "))
				d.add("Hosts", strings.Join(m.Hosts, ", "))
				var actions, triggers []string
				for _, a := range m.Actions {
					actions = append(actions, a.Name)
				}
				for _, t := range m.Triggers {
					triggers = append(triggers, t.Name+" ("+t.Kind+")")
				}
				d.add("Actions", strings.Join(actions, ", "))
				d.add("Triggers", strings.Join(triggers, ", "))
				if m.Capabilities != nil {
					d.add("Reveals", strings.Join(m.Capabilities.Reveal, ", "))
				}
			}
			addCanary(d, con.Raw)
			var versions []string
			for _, v := range con.Versions {
				if v.Active {
					versions = append(versions, v.Version+" (active)")
				} else {
					versions = append(versions, v.Version)
				}
			}
			d.add("Versions", strings.Join(versions, ", "))
			return d.flush()
		},
	}
}

func (c *cli) connectorVersions() *command {
	var output outputFormat
	return &command{
		name:    "versions",
		args:    "NAME",
		short:   "List the stored versions of a connector",
		long:    "List the stored versions of a connector with their digest, size and age.",
		example: "plugboard connector versions github",
		nargs:   exactArgs("NAME"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			con, err := c.api().GetConnector(ctx, args[0])
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONList(c.stdout, "versions", raws(con.Versions, func(v client.Version) json.RawMessage { return v.Raw }))
			}
			t := newTable(c.stdout, "VERSION", "ACTIVE", "DIGEST", "SIZE", "AGE")
			now := c.now()
			for _, v := range con.Versions {
				t.row(v.Version, yesNo(v.Active), shortDigest(v.Digest), humanSize(v.Size), age(v.UploadedAt, now))
			}
			return t.flush()
		},
	}
}

func (c *cli) connectorActivate() *command {
	var approve bool
	var output outputFormat
	var canary client.Canary
	return &command{
		name:  "activate",
		args:  "NAME VERSION",
		short: "Make a stored version the active one (hot swap or roll back)",
		long: "Make a stored version the active one. The command returns once the version serves;\n" +
			"calls in flight finish on the old one. A version that asks for more than the active one\n" +
			"(origins, auth types, reveal capabilities) is refused until you approve the difference\n" +
			"with --approve-capabilities.",
		example: "# Hot swap to a new version\n" +
			"plugboard connector activate github 1.3.0\n" +
			"# Roll back\n" +
			"plugboard connector activate github 1.2.0\n" +
			"# Accept new capabilities after reviewing them\n" +
			"plugboard connector activate github 1.4.0 --approve-capabilities\n" +
			"# Canary: 1.4.0 takes 10% of the calls, aborted automatically above 5% errors\n" +
			"plugboard connector activate github 1.3.0 --canary 1.4.0 --percent 10 --max-error-rate 0.05\n" +
			"# Promote the canary, or abort it\n" +
			"plugboard connector activate github 1.4.0\n" +
			"plugboard connector activate github 1.3.0",
		nargs: exactArgs("NAME", "VERSION"),
		flags: func(fs *flagSet) {
			fs.BoolVar(&approve, "approve-capabilities", false, "accept the origins, auth types and reveal capabilities the version adds")
			canaryFlags(fs, &canary)
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			if canary.Version != "" {
				return c.activateCanary(ctx, args[0], args[1], canary, approve, output)
			}
			v, err := c.api().Activate(ctx, args[0], args[1], approve)
			if err != nil {
				return activateHint(err, args[0], args[1])
			}
			if output == outputJSON {
				return printJSON(c.stdout, v.Raw)
			}
			fmt.Fprintf(c.stdout, "%s %s is now active.\n", v.Name, v.Version)
			return nil
		},
	}
}

// activateHint explains a refused activation.
func activateHint(err error, name, version string) error {
	return withHint(err, &client.Problem{Code: client.CodeCapabilitiesChanged},
		"review the difference above; to accept it run `plugboard connector activate %s %s --approve-capabilities`",
		name, version)
}

func (c *cli) connectorDeleteVersion() *command {
	var output outputFormat
	return &command{
		name:    "delete-version",
		args:    "NAME VERSION",
		short:   "Remove an inactive version",
		long:    "Remove a stored version that is not active. The active version cannot be removed.",
		example: "plugboard connector delete-version github 1.0.0",
		nargs:   exactArgs("NAME", "VERSION"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			if err := c.api().DeleteVersion(ctx, args[0], args[1]); err != nil {
				return withHint(err, &client.Problem{Status: 409},
					"the active version cannot be removed: activate another one first with `plugboard connector activate %s VERSION`", args[0])
			}
			if output == outputJSON {
				return printDeleted(c.stdout, "name", args[0], "version", args[1])
			}
			fmt.Fprintf(c.stdout, "Deleted %s %s.\n", args[0], args[1])
			return nil
		},
	}
}

func (c *cli) connectorActions() *command {
	var output outputFormat
	return &command{
		name:  "actions",
		args:  "NAME",
		short: "List a connector's actions",
		long: "List the actions of a connector's active version with their annotations. -o json adds\n" +
			"the input and output schemas.",
		example: "plugboard connector actions github\n" +
			"plugboard connector actions github -o json | jq '.actions[] | select(.name == \"create_issue\") | .input_schema'",
		nargs: exactArgs("NAME"),
		flags: func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			actions, err := c.api().ListActions(ctx, args[0])
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONList(c.stdout, "actions", raws(actions, func(a client.Action) json.RawMessage { return a.Raw }))
			}
			if len(actions) == 0 {
				fmt.Fprintf(c.stderr, "%s has no actions.\n", args[0])
				return nil
			}
			t := newTable(c.stdout, "NAME", "TITLE", "READ-ONLY", "IDEMPOTENT", "DESTRUCTIVE")
			for _, a := range actions {
				var ro, idem, destr bool
				if an := a.Annotations; an != nil {
					ro, idem, destr = an.ReadOnly, an.Idempotent, an.Destructive
				}
				t.row(a.Name, a.Title, yesNo(ro), yesNo(idem), yesNo(destr))
			}
			return t.flush()
		},
	}
}

// raws collects the documents of a list, for -o json.
func raws[T any](items []T, raw func(T) json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(items))
	for i, it := range items {
		out[i] = raw(it)
	}
	return out
}
