package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// keyCommand is `plugboard key` (API keys); name "keys" is the hidden plural, which also keeps
// the old `plugboard keys rotate|show` (now `plugboard master-key ...`) working.
func (c *cli) keyCommand(name string, hidden bool) *command {
	rotate, show := c.keysRotate(), c.keysShow()
	rotate.hidden, show.hidden = true, true
	return &command{
		name:   name,
		hidden: hidden,
		short:  "Manage API keys: roles, scopes, expiry, revocation",
		long: "Manage API keys. A key has a role (admin, author, connections, invoker, reader) and may be\n" +
			"narrowed to named connectors and connections; its secret is the bearer token, shown once.\n" +
			"The admin token is the built-in key key_admin. (The master key that encrypts connection\n" +
			"secrets is managed with `plugboard master-key`.)",
		example: "# An app's key that can only invoke with its own connection\n" +
			"plugboard key create app-a --role invoker --connector github --connection gh-main --expires 720h\n" +
			"plugboard key list\n" +
			"plugboard key revoke key_abc123",
		sub: []*command{c.keyCreate(), c.keyList(), c.keyGet(), c.keyRevoke(), rotate, show},
	}
}

// parseExpiry reads --expires: a duration from now (720h) or an RFC 3339 time.
func parseExpiry(v string, now time.Time) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return nil, usagef("--expires %s: give a positive duration", v)
		}
		t := now.Add(d).UTC().Truncate(time.Second)
		return &t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, usagef("--expires %q: want a duration such as 720h or an RFC 3339 time such as 2027-01-01T00:00:00Z", v)
	}
	return &t, nil
}

func (c *cli) keyCreate() *command {
	var output outputFormat
	var role, expires string
	var connectors, connections stringList
	return &command{
		name:  "create",
		args:  "NAME",
		short: "Create an API key and print its secret once",
		long: "Create an API key. The secret is printed once: store it now (it is the bearer token, e.g.\n" +
			"PLUGBOARD_TOKEN or an app's Authorization header); the server keeps only its hash.",
		example: "plugboard key create ci --role author\n" +
			"plugboard key create app-a --role invoker --connection gh-main --expires 2027-01-01T00:00:00Z\n" +
			"plugboard key create dashboards --role reader -o json | jq -r .secret",
		nargs: exactArgs("NAME"),
		flags: func(fs *flagSet) {
			fs.StringVar(&role, "role", "", "`ROLE`: admin, author, connections, invoker or reader (required)")
			fs.Var(&connectors, "connector", "narrow the key to connector `NAME` (repeatable)")
			fs.Var(&connections, "connection", "narrow the key to connection `ID` (repeatable)")
			fs.StringVar(&expires, "expires", "", "expiry: a `DURATION` from now (720h) or an RFC 3339 time; default never")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			if role == "" {
				return usagef("--role is required: admin, author, connections, invoker or reader")
			}
			exp, err := parseExpiry(expires, c.now())
			if err != nil {
				return err
			}
			spec := client.KeySpec{Name: args[0], Role: role, ExpiresAt: exp}
			if len(connectors) > 0 || len(connections) > 0 {
				spec.Scopes = &client.KeyScopes{Connectors: connectors, Connections: connections}
			}
			k, err := c.api().CreateKey(ctx, spec)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, k.Raw)
			}
			fmt.Fprintf(c.stdout, "Created key %s (%s, role %s%s).\n", k.ID, k.Name, k.Role, describeScopes(k.Scopes))
			fmt.Fprintf(c.stdout, "Secret: %s\n", k.Secret)
			fmt.Fprintln(c.stderr, "Store the secret now: it is shown only this once (the server keeps only its hash).")
			return nil
		},
	}
}

// describeScopes is ", connectors a,b, connections x" or "".
func describeScopes(s client.KeyScopes) string {
	out := ""
	if len(s.Connectors) > 0 {
		out += ", connectors " + strings.Join(s.Connectors, ",")
	}
	if len(s.Connections) > 0 {
		out += ", connections " + strings.Join(s.Connections, ",")
	}
	return out
}

func orAll(l []string) string {
	if len(l) == 0 {
		return "*"
	}
	return strings.Join(l, ",")
}

func (c *cli) keyList() *command {
	var output outputFormat
	return &command{
		name:    "list",
		short:   "List API keys",
		long:    "List the API keys: id, name, role, scopes (* means not narrowed), expiry and age. Secrets are never shown.",
		example: "plugboard key list\nplugboard key list -o json | jq -r '.keys[] | select(.role == \"admin\") | .id'",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			list, err := c.api().ListKeys(ctx)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONList(c.stdout, "keys", raws(list, func(x client.Key) json.RawMessage { return x.Raw }))
			}
			t := newTable(c.stdout, "ID", "NAME", "ROLE", "CONNECTORS", "CONNECTIONS", "EXPIRES", "AGE")
			now := c.now()
			for _, k := range list {
				exp, ag := "never", "-"
				if k.ExpiresAt != nil {
					exp = k.ExpiresAt.Format(time.RFC3339)
				}
				if k.CreatedAt != nil {
					ag = age(*k.CreatedAt, now)
				}
				t.row(k.ID, k.Name, k.Role, orAll(k.Scopes.Connectors), orAll(k.Scopes.Connections), exp, ag)
			}
			return t.flush()
		},
	}
}

func (c *cli) keyGet() *command {
	var output outputFormat
	return &command{
		name:    "get",
		args:    "ID",
		short:   "Show an API key",
		long:    "Show an API key: name, role, scopes and expiry (never the secret).",
		example: "plugboard key get key_abc123",
		nargs:   exactArgs("ID"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			k, err := c.api().GetKey(ctx, args[0])
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, k.Raw)
			}
			exp := "never"
			if k.ExpiresAt != nil {
				exp = k.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(c.stdout, "ID:           %s\nName:         %s\nRole:         %s\nConnectors:   %s\nConnections:  %s\nExpires:      %s\n",
				k.ID, k.Name, k.Role, orAll(k.Scopes.Connectors), orAll(k.Scopes.Connections), exp)
			if k.Builtin {
				fmt.Fprintln(c.stdout, "Built-in:     the server's admin token (PLUGBOARD_ADMIN_TOKEN or <data>/admin.token)")
			}
			return nil
		},
	}
}

func (c *cli) keyRevoke() *command {
	var output outputFormat
	return &command{
		name:    "revoke",
		args:    "ID",
		short:   "Revoke an API key",
		long:    "Revoke an API key: its next request is refused (401).",
		example: "plugboard key revoke key_abc123",
		nargs:   exactArgs("ID"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			if err := c.api().RevokeKey(ctx, args[0]); err != nil {
				return withHint(err, &client.Problem{Status: 409},
					"key_admin is the server's admin token: change PLUGBOARD_ADMIN_TOKEN or <data>/admin.token and restart")
			}
			if output == outputJSON {
				return printDeleted(c.stdout, "id", args[0])
			}
			fmt.Fprintf(c.stdout, "Revoked key %s.\n", args[0])
			return nil
		},
	}
}

func (c *cli) auditCommand() *command {
	var output outputFormat
	var since, actor, target string
	var limit int
	return &command{
		name:  "audit",
		short: "Show the audit log",
		long: "Show the audit log, newest first: every mutating call and every denied call, with the key,\n" +
			"role, action, target, outcome, status and correlation id. Pages are followed until --limit.",
		example: "plugboard audit --since 24h\n" +
			"plugboard audit --actor key_abc123 --limit 20\n" +
			"plugboard audit --target connection:gh-main -o json | jq -r '.entries[] | select(.outcome == \"denied\")'",
		flags: func(fs *flagSet) {
			fs.StringVar(&since, "since", "", "only entries newer than a `DURATION` ago (24h) or an RFC 3339 time")
			fs.StringVar(&actor, "actor", "", "only the entries of key `ID`")
			fs.StringVar(&target, "target", "", "only the entries about `KIND:ID`, e.g. connection:gh-main")
			fs.IntVar(&limit, "limit", 100, "show at most `N` entries")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			q := client.AuditQuery{Actor: actor, Target: target}
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil {
					q.Since = c.now().Add(-d)
				} else if t, err := time.Parse(time.RFC3339, since); err == nil {
					q.Since = t
				} else {
					return usagef("--since %q: want a duration such as 24h or an RFC 3339 time", since)
				}
			}
			if limit < 1 {
				return usagef("--limit must be at least 1")
			}
			var entries []client.AuditEntry
			for len(entries) < limit {
				q.Limit = min(limit-len(entries), 1000)
				page, err := c.api().Audit(ctx, q)
				if err != nil {
					return err
				}
				entries = append(entries, page.Entries...)
				if page.Next == "" {
					break
				}
				q.Cursor = page.Next
			}
			if output == outputJSON {
				return printJSONList(c.stdout, "entries", raws(entries, func(x client.AuditEntry) json.RawMessage { return x.Raw }))
			}
			if len(entries) == 0 {
				fmt.Fprintln(c.stderr, "No audit entries match.")
				return nil
			}
			t := newTable(c.stdout, "TIME", "ACTOR", "ROLE", "ACTION", "TARGET", "OUTCOME", "STATUS", "CORRELATION")
			for _, e := range entries {
				t.row(e.Time.Local().Format(time.DateTime), dash(e.Actor), dash(e.Role), e.Action, dash(e.Target), e.Outcome, fmt.Sprint(e.Status), e.CorrelationID)
			}
			return t.flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
