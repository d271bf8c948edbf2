package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

func (c *cli) mcpCommand() *command {
	return &command{
		name:  "mcp",
		short: "Serve connectors to AI agents as MCP servers",
		long: "An MCP server serves a connector's actions (or a hosted MCP server's own tools) as MCP tools\n" +
			"at /mcp/NAME over Streamable HTTP, with one connection and its own bearer token.",
		example: "plugboard mcp create github-tools --connector github --connection gh-main --tool get_repo --tool list_issues\n" +
			"plugboard mcp install fetch-mcp --connection docs-site\n" +
			"plugboard mcp list",
		sub: []*command{c.mcpCreate(), c.mcpList(), c.mcpEnable(true), c.mcpEnable(false), c.mcpRotate(), c.mcpDelete(), c.mcpInstall()},
	}
}

// printMCPServer shows a server, with its URL made absolute and its token when just made.
func (c *cli) printMCPServer(m client.MCPServer, verb string) error {
	fmt.Fprintf(c.stdout, "%s MCP server %s.\n", verb, m.Name)
	d := newDetails(c.stdout)
	d.add("URL", strings.TrimRight(c.serverURL(), "/")+m.URL)
	d.add("Connector", m.Connector+" "+m.ActiveVersion)
	d.add("Connection", m.Connection)
	d.add("Tools", strings.Join(m.Tools, ", "))
	d.add("Enabled", yesNo(m.Enabled))
	if err := d.flush(); err != nil {
		return err
	}
	if m.Token != "" {
		fmt.Fprintf(c.stdout, "Token (shown once; send it as Authorization: Bearer <token>):\n%s\n", m.Token)
	}
	return nil
}

func (c *cli) mcpCreate() *command {
	var connector, connection string
	var tools stringList
	var disabled bool
	var output outputFormat
	return &command{
		name:  "create",
		args:  "NAME",
		short: "Create an MCP server from a connector",
		long: "Create an MCP server NAME serving the connector's actions as tools (all of them, or the\n" +
			"--tool allowlist) with one connection. It prints the server's URL and its token, once.",
		example: "plugboard mcp create github-tools --connector github --connection gh-main --tool get_repo",
		nargs:   exactArgs("NAME"),
		flags: func(fs *flagSet) {
			fs.StringVar(&connector, "connector", "", "the connector whose actions become tools (required)")
			fs.StringVar(&connection, "connection", "", "the connection calls run with (required unless the connector's auth is none)")
			fs.Var(&tools, "tool", "allow this action as a tool (repeatable; default every action)")
			fs.BoolVar(&disabled, "disabled", false, "create it disabled")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			if connector == "" {
				return usagef("--connector is required")
			}
			enabled := !disabled
			m, err := c.api().CreateMCPServer(ctx, client.MCPServerRequest{Name: args[0], Connector: connector, Connection: connection, Tools: tools, Enabled: &enabled})
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, m.Raw)
			}
			return c.printMCPServer(m, "Created")
		},
	}
}

func (c *cli) mcpList() *command {
	var output outputFormat
	return &command{
		name:    "list",
		short:   "List MCP servers",
		example: "plugboard mcp list\nplugboard mcp list -o json",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			list, err := c.api().ListMCPServers(ctx)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONList(c.stdout, "mcp_servers", raws(list, func(m client.MCPServer) json.RawMessage { return m.Raw }))
			}
			if len(list) == 0 {
				fmt.Fprintln(c.stderr, "No MCP servers. Create one with `plugboard mcp create` or `plugboard mcp install`.")
				return nil
			}
			t := newTable(c.stdout, "NAME", "CONNECTOR", "CONNECTION", "ENABLED", "TOOLS", "URL")
			for _, m := range list {
				t.row(m.Name, m.Connector, m.Connection, yesNo(m.Enabled), strings.Join(m.Tools, ","), m.URL)
			}
			return t.flush()
		},
	}
}

func (c *cli) mcpEnable(on bool) *command {
	name, verb := "enable", "Enabled"
	if !on {
		name, verb = "disable", "Disabled"
	}
	var output outputFormat
	return &command{
		name:    name,
		args:    "NAME",
		short:   verb + " an MCP server (a disabled server answers 404 at once)",
		example: "plugboard mcp " + name + " github-tools",
		nargs:   exactArgs("NAME"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			m, err := c.api().SetMCPServerEnabled(ctx, args[0], on)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, m.Raw)
			}
			fmt.Fprintf(c.stdout, "%s MCP server %s.\n", verb, args[0])
			return nil
		},
	}
}

func (c *cli) mcpRotate() *command {
	var output outputFormat
	return &command{
		name:    "rotate-token",
		args:    "NAME",
		short:   "Give an MCP server a new token; the old one stops working at once",
		example: "plugboard mcp rotate-token github-tools\nplugboard mcp rotate-token github-tools -o json | jq -r .token",
		nargs:   exactArgs("NAME"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			tok, err := c.api().RotateMCPToken(ctx, args[0])
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONValue(c.stdout, map[string]string{"token": tok})
			}
			fmt.Fprintf(c.stdout, "New token for MCP server %s (shown once):\n%s\n", args[0], tok)
			return nil
		},
	}
}

func (c *cli) mcpDelete() *command {
	var output outputFormat
	return &command{
		name:    "delete",
		args:    "NAME",
		short:   "Delete an MCP server",
		example: "plugboard mcp delete github-tools",
		nargs:   exactArgs("NAME"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			if err := c.api().DeleteMCPServer(ctx, args[0]); err != nil {
				return err
			}
			if output == outputJSON {
				return printDeleted(c.stdout, "name", args[0])
			}
			fmt.Fprintf(c.stdout, "Deleted MCP server %s.\n", args[0])
			return nil
		},
	}
}

func (c *cli) mcpInstall() *command {
	var connection, catalog, serverName string
	var output outputFormat
	return &command{
		name:  "install",
		args:  "NAME",
		short: "Install a hosted MCP server from the catalog",
		long: "Install a catalog server in one step: upload its plugin (activating it), create the MCP\n" +
			"server with the connection, and print its URL and token (once).",
		example: "plugboard connection create docs-site --connector fetch-mcp --param base_url=https://docs.example.com --auth none\n" +
			"plugboard mcp install fetch-mcp --connection docs-site",
		nargs: exactArgs("NAME"),
		flags: func(fs *flagSet) {
			fs.StringVar(&connection, "connection", "", "the connection the server runs with")
			fs.StringVar(&serverName, "name", "", "the MCP server's name (default the catalog name)")
			fs.StringVar(&catalog, "catalog", "", "catalog index file (default $PLUGBOARD_CATALOG or "+defaultCatalog+")")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			idx, err := loadCatalog(c.catalogPath(catalog))
			if err != nil {
				return err
			}
			e, err := idx.entry(args[0])
			if err != nil {
				return err
			}
			if connection == "" && (e.ConnectionType != "none" || len(e.ConnectionParams) > 0) {
				return usagef("%s needs a connection of type %s: add --connection ID", e.Name, e.ConnectionType)
			}
			wasm, _, err := idx.read(e)
			if err != nil {
				return err
			}
			api := c.api()
			v, _, err := api.UploadConnector(ctx, wasm, true)
			if err != nil {
				return err
			}
			if !v.Active {
				if v, err = api.Activate(ctx, v.Name, v.Version, false); err != nil {
					return activateHint(err, v.Name, v.Version)
				}
			}
			if serverName == "" {
				serverName = e.Name
			}
			m, err := api.CreateMCPServer(ctx, client.MCPServerRequest{Name: serverName, Connector: v.Name, Connection: connection})
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, m.Raw)
			}
			fmt.Fprintf(c.stdout, "Uploaded %s %s (%s).\n", v.Name, v.Version, v.Digest)
			return c.printMCPServer(m, "Installed")
		},
	}
}
