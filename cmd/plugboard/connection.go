package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// maxSecret bounds a secret read from standard input or a file.
const maxSecret = 64 << 10

func errStdinTwice() error { return usagef("only one flag can read standard input") }

func (c *cli) connectionCommand() *command {
	return &command{
		name:  "connection",
		short: "Create and manage connections (credentials)",
		long: "Create and manage connections: the credentials and parameters that connectors use to\n" +
			"reach a service. Secrets are write-only: the server never shows them again. Pass them on\n" +
			"standard input (--api-key-stdin, --password-stdin, --client-secret-stdin) or in files\n" +
			"(--secret-file) so they stay out of your shell history and the process list.",
		example: "printf %s \"$GITHUB_TOKEN\" | plugboard connection create gh-main --connector github --auth api_key --api-key-stdin\n" +
			"plugboard connection list",
		sub: []*command{
			c.connectionCreate(),
			c.connectionList(),
			c.connectionGet(),
			c.connectionUpdate(),
			c.connectionRotate(),
			c.connectionReauthorize(),
			c.connectionDelete(),
		},
	}
}

// credentialFlags are the flags that make a connection's auth object and extra secrets.
type credentialFlags struct {
	authType          string
	apiKey            string
	apiKeyStdin       bool
	username          string
	passwordStdin     bool
	grant             string
	clientID          string
	clientSecretStdin bool
	scopes            stringList
	authorizationURL  string
	tokenURL          string
	secrets           keyValues
	secretFiles       keyValues
}

func (f *credentialFlags) register(fs *flagSet) {
	fs.StringVar(&f.authType, "auth", "", "auth `TYPE`: none, api_key, basic or oauth2 (implied by the other auth flags)")
	fs.BoolVar(&f.apiKeyStdin, "api-key-stdin", false, "read the API key from standard input (recommended)")
	fs.StringVar(&f.apiKey, "api-key", "", "the API `KEY` itself (visible in shell history and ps: prefer --api-key-stdin)")
	fs.StringVar(&f.username, "username", "", "`USER` name for basic auth")
	fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the basic auth password from standard input")
	fs.StringVar(&f.grant, "grant", "", "OAuth2 `GRANT`: authorization_code (default) or client_credentials")
	fs.StringVar(&f.clientID, "client-id", "", "OAuth2 client `ID`")
	fs.BoolVar(&f.clientSecretStdin, "client-secret-stdin", false, "read the OAuth2 client secret from standard input")
	fs.Var(&f.scopes, "scope", "OAuth2 `SCOPE` to request (repeatable; default: the connector's)")
	fs.StringVar(&f.authorizationURL, "authorization-url", "", "override the manifest's OAuth2 authorization `URL`")
	fs.StringVar(&f.tokenURL, "token-url", "", "override the manifest's OAuth2 token `URL`")
	fs.Var(&f.secrets, "secret", "extra secret `KEY=VALUE` plugins use without seeing it (repeatable; visible in shell history: prefer --secret-file)")
	fs.Var(&f.secretFiles, "secret-file", "extra secret `KEY=PATH` read from a file (repeatable)")
}

// stdinReaders counts the flags that read a secret from standard input.
func (f *credentialFlags) stdinReaders() int {
	n := 0
	for _, b := range []bool{f.apiKeyStdin, f.passwordStdin, f.clientSecretStdin} {
		if b {
			n++
		}
	}
	return n
}

// credentials builds the credentials the flags describe, reading secrets from standard input or
// files.
func (c *cli) credentials(f *credentialFlags) (client.Credentials, error) {
	// Each auth flag belongs to one auth type.
	owners := []struct {
		flag string
		set  bool
		typ  string
	}{
		{"api-key", f.apiKey != "", client.AuthAPIKey},
		{"api-key-stdin", f.apiKeyStdin, client.AuthAPIKey},
		{"username", f.username != "", client.AuthBasic},
		{"password-stdin", f.passwordStdin, client.AuthBasic},
		{"grant", f.grant != "", client.AuthOAuth2},
		{"client-id", f.clientID != "", client.AuthOAuth2},
		{"client-secret-stdin", f.clientSecretStdin, client.AuthOAuth2},
		{"scope", len(f.scopes) > 0, client.AuthOAuth2},
		{"authorization-url", f.authorizationURL != "", client.AuthOAuth2},
		{"token-url", f.tokenURL != "", client.AuthOAuth2},
	}
	typ := f.authType
	for _, o := range owners {
		if !o.set {
			continue
		}
		if typ == "" {
			typ = o.typ
		}
		if o.typ != typ {
			return client.Credentials{}, usagef("--%s applies to --auth %s, not %s", o.flag, o.typ, typ)
		}
	}
	if f.stdinReaders() > 1 {
		return client.Credentials{}, errStdinTwice()
	}

	auth := client.Auth{Type: typ}
	var err error
	switch typ {
	case "":
		return client.Credentials{}, usagef("choose the auth type with --auth none, api_key, basic or oauth2")
	case client.AuthNone:
	case client.AuthAPIKey:
		switch {
		case f.apiKeyStdin && f.apiKey != "":
			return client.Credentials{}, usagef("use --api-key-stdin or --api-key, not both")
		case f.apiKeyStdin:
			auth.APIKey, err = c.readSecret("API key")
		case f.apiKey != "":
			c.warnVisible("--api-key", "--api-key-stdin")
			auth.APIKey = f.apiKey
		default:
			return client.Credentials{}, usagef("--auth api_key needs the key: pipe it to --api-key-stdin")
		}
	case client.AuthBasic:
		if f.username == "" || !f.passwordStdin {
			return client.Credentials{}, usagef("--auth basic needs --username and the password piped to --password-stdin")
		}
		auth.Username = f.username
		auth.Password, err = c.readSecret("password")
	case client.AuthOAuth2:
		if f.clientID == "" {
			return client.Credentials{}, usagef("--auth oauth2 needs --client-id")
		}
		auth.Grant = f.grant
		if auth.Grant == "" {
			auth.Grant = client.GrantAuthorizationCode
		}
		if auth.Grant != client.GrantAuthorizationCode && auth.Grant != client.GrantClientCredentials {
			return client.Credentials{}, usagef("--grant must be %s or %s", client.GrantAuthorizationCode, client.GrantClientCredentials)
		}
		auth.ClientID, auth.Scopes = f.clientID, f.scopes
		auth.AuthorizationURL, auth.TokenURL = f.authorizationURL, f.tokenURL
		if f.clientSecretStdin {
			auth.ClientSecret, err = c.readSecret("client secret")
		}
	default:
		return client.Credentials{}, usagef("unknown auth type %q: use none, api_key, basic or oauth2", typ)
	}
	if err != nil {
		return client.Credentials{}, err
	}
	secrets, err := c.extraSecrets(f)
	return client.Credentials{Auth: auth, Secrets: secrets}, err
}

// extraSecrets merges --secret and --secret-file.
func (c *cli) extraSecrets(f *credentialFlags) (map[string]string, error) {
	if len(f.secrets) > 0 {
		c.warnVisible("--secret", "--secret-file")
	}
	out := maps.Clone(map[string]string(f.secrets))
	for _, k := range slices.Sorted(maps.Keys(f.secretFiles)) {
		if _, dup := out[k]; dup {
			return nil, usagef("secret %q is given twice", k)
		}
		v, err := readSecretFile(f.secretFiles[k])
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}

func (c *cli) warnVisible(flag, instead string) {
	fmt.Fprintf(c.stderr, "warning: %s puts the secret in your shell history and the process list; prefer %s\n", flag, instead)
}

// readSecret reads a secret from standard input: one line from a terminal, or everything from
// a pipe, without the final line break.
func (c *cli) readSecret(what string) (string, error) {
	var s string
	if isTerminal(c.stdin) {
		fmt.Fprintf(c.stderr, "Paste the %s and press Enter (it shows as you type; piping it is safer): ", what)
		line, err := bufio.NewReader(io.LimitReader(c.stdin, maxSecret)).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("reading the %s: %w", what, err)
		}
		s = line
	} else {
		b, err := io.ReadAll(io.LimitReader(c.stdin, maxSecret+1))
		if err != nil {
			return "", fmt.Errorf("reading the %s from standard input: %w", what, err)
		}
		if len(b) > maxSecret {
			return "", fmt.Errorf("the %s on standard input is over %d KiB", what, maxSecret>>10)
		}
		s = string(b)
	}
	s = strings.TrimRight(s, "\r\n")
	if s == "" {
		return "", fmt.Errorf("no %s on standard input: pipe it in, e.g. printf %%s \"$SECRET\" | plugboard ...", what)
	}
	return s, nil
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecret {
		return "", fmt.Errorf("%s is over %d KiB", path, maxSecret>>10)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// paramFlags are --param and --params-json.
type paramFlags struct {
	params keyValues
	json   string
}

func (f *paramFlags) register(fs *flagSet) {
	fs.Var(&f.params, "param", "connection parameter `KEY=VALUE`, a string (repeatable)")
	fs.StringVar(&f.json, "params-json", "", "parameters as a JSON object: `JSON`, @FILE or - (stdin); --param entries override its keys")
}

// build returns the params, or nil when no flag was given.
func (c *cli) params(f *paramFlags) (map[string]any, error) {
	if f.json == "" && len(f.params) == 0 {
		return nil, nil
	}
	out := map[string]any{}
	if f.json != "" {
		raw, err := c.jsonArg("--params-json", f.json)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // keep numbers exactly as written
		if err := dec.Decode(&out); err != nil || out == nil {
			return nil, usagef("--params-json must be a JSON object")
		}
	}
	for k, v := range f.params {
		out[k] = v
	}
	return out, nil
}

// jsonArg reads the value of a JSON flag: the JSON itself, @FILE, or - for standard input.
func (c *cli) jsonArg(flag, v string) (json.RawMessage, error) {
	var b []byte
	var err error
	switch {
	case v == "-":
		b, err = io.ReadAll(c.stdin)
	case strings.HasPrefix(v, "@"):
		b, err = os.ReadFile(v[1:])
	default:
		b = []byte(v)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", flag, err)
	}
	var probe any
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, usagef("%s is not valid JSON: %v", flag, err)
	}
	return json.RawMessage(bytes.TrimSpace(b)), nil
}

func (c *cli) connectionCreate() *command {
	var (
		connectors stringList
		params     paramFlags
		creds      credentialFlags
		consent    consentFlags
		output     outputFormat
	)
	return &command{
		name:  "create",
		args:  "ID",
		short: "Create a connection",
		long: "Create a connection named ID for one or more connectors. Parameters are checked against\n" +
			"each connector's connection_params. Read secrets from standard input: the flags that\n" +
			"take a secret's value show it in your shell history.\n\n" +
			"An OAuth2 authorization_code connection starts as pending_consent: open the consent URL\n" +
			"it prints in a browser to finish it. On a terminal the command waits for the consent with\n" +
			"a spinner (--wait, --no-wait, --wait-timeout). A client_credentials connection is ready at\n" +
			"once: the server gets its first token before answering.",
		example: "# An API key, piped in\n" +
			"printf %s \"$GITHUB_TOKEN\" | plugboard connection create gh-main --connector github \\\n" +
			"    --param base_url=https://api.github.com --auth api_key --api-key-stdin\n" +
			"# Basic auth, with an extra secret from a file\n" +
			"plugboard connection create jira --connector jira --auth basic --username bot \\\n" +
			"    --password-stdin --secret-file signing_secret=./jira-hook.secret < ./jira.password\n" +
			"# OAuth2: prints the URL to open in a browser\n" +
			"plugboard connection create gh-oauth --connector github --auth oauth2 --client-id Iv1.abc \\\n" +
			"    --client-secret-stdin --scope repo < ./client-secret\n" +
			"# No credentials, params only\n" +
			"plugboard connection create weather --connector openmeteo --auth none --params-json '{\"units\": \"metric\"}'",
		nargs: exactArgs("ID"),
		flags: func(fs *flagSet) {
			fs.Var(&connectors, "connector", "`NAME` of a connector that may use the connection (repeatable, required)")
			params.register(fs)
			creds.register(fs)
			consent.register(fs)
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			if len(connectors) == 0 {
				return usagef("--connector is required: name each connector that may use the connection")
			}
			if params.json == "-" && creds.stdinReaders() > 0 {
				return errStdinTwice()
			}
			p, err := c.params(&params)
			if err != nil {
				return err
			}
			cr, err := c.credentials(&creds)
			if err != nil {
				return err
			}
			conn, err := c.api().CreateConnection(ctx, client.ConnectionRequest{
				ID: args[0], Connectors: connectors, Params: p, Auth: cr.Auth, Secrets: cr.Secrets,
			})
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, conn.Raw)
			}
			fmt.Fprintf(c.stdout, "Created connection %s (%s).\n", conn.ID, conn.Status)
			if err := c.describeConnection(conn, false); err != nil {
				return err
			}
			if conn.ConsentURL != "" {
				return c.awaitConsent(ctx, conn, &consent)
			}
			return nil
		},
	}
}

// describeConnection prints a connection's fields; full adds the timestamps and consent URL.
func (c *cli) describeConnection(conn client.Connection, full bool) error {
	d := newDetails(c.stdout)
	if full {
		d.add("ID", conn.ID)
	}
	d.add("Connectors", strings.Join(conn.Connectors, ", "))
	authDesc := conn.Auth.Type
	if conn.Auth.Username != "" {
		authDesc += " (username " + conn.Auth.Username + ")"
	}
	if conn.Auth.Grant != "" {
		authDesc += " (" + conn.Auth.Grant + ", client " + conn.Auth.ClientID + ")"
	}
	d.add("Auth", authDesc)
	if full {
		d.add("Status", conn.Status)
	}
	d.add("Params", formatParams(conn.Params))
	d.add("Hosts", strings.Join(conn.Hosts, ", "))
	if full {
		d.add("Consent URL", conn.ConsentURL)
		d.add("Created", timestamp(conn.CreatedAt, c.now()))
		d.add("Updated", timestamp(conn.UpdatedAt, c.now()))
	}
	return d.flush()
}

func (c *cli) connectionList() *command {
	var output outputFormat
	return &command{
		name:    "list",
		short:   "List connections",
		long:    "List the connections: ID, connectors, auth type, status and age. Secrets are never shown.",
		example: "plugboard connection list\nplugboard connection list -o json | jq -r '.connections[] | select(.status != \"ready\") | .id'",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			list, err := c.api().ListConnections(ctx)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONList(c.stdout, "connections", raws(list, func(x client.Connection) json.RawMessage { return x.Raw }))
			}
			if len(list) == 0 {
				fmt.Fprintln(c.stderr, "No connections. Create one with `plugboard connection create ID --connector NAME --auth TYPE`.")
				return nil
			}
			t := newTable(c.stdout, "ID", "CONNECTORS", "AUTH", "STATUS", "AGE")
			now := c.now()
			for _, x := range list {
				t.row(x.ID, strings.Join(x.Connectors, ","), x.Auth.Type, x.Status, age(x.CreatedAt, now))
			}
			return t.flush()
		},
	}
}

func (c *cli) connectionGet() *command {
	var output outputFormat
	return &command{
		name:    "get",
		args:    "ID",
		short:   "Show a connection",
		long:    "Show a connection: connectors, auth type, status, params and hosts. Secrets are never shown.",
		example: "plugboard connection get gh-main",
		nargs:   exactArgs("ID"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			conn, err := c.api().GetConnection(ctx, args[0])
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, conn.Raw)
			}
			return c.describeConnection(conn, true)
		},
	}
}

func (c *cli) connectionUpdate() *command {
	var (
		connectors stringList
		hosts      stringList
		params     paramFlags
		output     outputFormat
	)
	return &command{
		name:  "update",
		args:  "ID",
		short: "Change a connection's connectors, params or hosts",
		long: "Change a connection's connectors, params or approved hosts (PATCH). Each flag replaces the\n" +
			"whole list or object it names, so list everything the connection should keep. Approving\n" +
			"hosts lets the connection's credentials go to the origins a newer connector version asks for.",
		example: "# Bind the connection to a second connector\n" +
			"plugboard connection update gh-main --connector github --connector github-actions\n" +
			"# Approve a new host\n" +
			"plugboard connection update gh-main --host https://api.github.com --host https://uploads.github.com",
		nargs: exactArgs("ID"),
		flags: func(fs *flagSet) {
			fs.Var(&connectors, "connector", "`NAME` of a connector that may use the connection (repeatable; replaces the list)")
			fs.Var(&hosts, "host", "`ORIGIN` the credentials may be sent to (repeatable; replaces the list)")
			params.register(fs)
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			p, err := c.params(&params)
			if err != nil {
				return err
			}
			patch := client.ConnectionPatch{Params: p, Connectors: connectors, Hosts: hosts}
			if patch.Params == nil && patch.Connectors == nil && patch.Hosts == nil {
				return usagef("nothing to change: give --connector, --host, --param or --params-json")
			}
			conn, err := c.api().PatchConnection(ctx, args[0], patch)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, conn.Raw)
			}
			fmt.Fprintf(c.stdout, "Updated connection %s.\n", conn.ID)
			return c.describeConnection(conn, false)
		},
	}
}

func (c *cli) connectionRotate() *command {
	var (
		creds   credentialFlags
		consent consentFlags
		output  outputFormat
	)
	return &command{
		name:  "rotate",
		args:  "ID",
		short: "Replace a connection's credentials",
		long: "Replace a connection's credentials (and, with --secret or --secret-file, its extra\n" +
			"secrets). Calls that start after the command returns use the new secret. An OAuth2\n" +
			"connection keeps its tokens when only the client secret changes; another client needs a\n" +
			"new consent, whose URL is printed (and waited for on a terminal).",
		example: "printf %s \"$NEW_TOKEN\" | plugboard connection rotate gh-main --api-key-stdin",
		nargs:   exactArgs("ID"),
		flags: func(fs *flagSet) {
			creds.register(fs)
			consent.register(fs)
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			cr, err := c.credentials(&creds)
			if err != nil {
				return err
			}
			conn, err := c.api().RotateCredentials(ctx, args[0], cr)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, conn.Raw)
			}
			fmt.Fprintf(c.stdout, "Rotated the credentials of %s (%s); new calls use the new secret.\n", args[0], cr.Auth.Type)
			if conn.ConsentURL != "" {
				return c.awaitConsent(ctx, conn, &consent)
			}
			return nil
		},
	}
}

func (c *cli) connectionDelete() *command {
	var output outputFormat
	return &command{
		name:    "delete",
		args:    "ID",
		short:   "Delete a connection",
		long:    "Delete a connection and its stored secrets. A connection that subscriptions or MCP servers use cannot be deleted.",
		example: "plugboard connection delete gh-main",
		nargs:   exactArgs("ID"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			if err := c.api().DeleteConnection(ctx, args[0]); err != nil {
				return withHint(err, &client.Problem{Status: 409},
					"delete the subscriptions and MCP servers that use %s first", args[0])
			}
			if output == outputJSON {
				return printDeleted(c.stdout, "id", args[0])
			}
			fmt.Fprintf(c.stdout, "Deleted connection %s.\n", args[0])
			return nil
		},
	}
}
