package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// defaultCatalog is the catalog index used when neither --catalog nor PLUGBOARD_CATALOG says
// otherwise: the one in a checkout of the repository, whose plugins `make` builds.
const defaultCatalog = "plugins/catalog.json"

// catalogIndex is a catalog of installable plugins (plugins/catalog.json): hosted MCP servers,
// which `plugboard mcp install` installs, and connectors, which `plugboard connector push`
// uploads. Connectors came later: an index without them is still format 1.
type catalogIndex struct {
	Catalog     int                `json:"catalog"`
	Description string             `json:"description,omitempty"`
	Servers     []catalogEntry     `json:"servers"`
	Connectors  []catalogConnector `json:"connectors,omitempty"`

	dir string // the index file's directory: wasm paths are relative to it
}

// catalogEntry is one installable server.
type catalogEntry struct {
	Name        string `json:"name"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description"`
	Version     string `json:"version"`
	// Wasm is the plugin's path, relative to the index file.
	Wasm string `json:"wasm"`
	// Digest is "sha256:<hex>" of the plugin; "" means not pinned.
	Digest string `json:"digest"`
	// ConnectionType is the auth type of the connection the server needs ("none" needs a
	// connection only for its params).
	ConnectionType string `json:"connection_type"`
	// ConnectionParams describe the connection params the server reads.
	ConnectionParams map[string]string `json:"connection_params,omitempty"`
}

// catalogConnector is one connector the catalog lists: what its manifest declares, so that a
// user sees its actions and triggers before uploading it. A test holds every entry to the
// manifest of the plugin built from plugins/<name>.
type catalogConnector struct {
	Name        string `json:"name"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Version     string `json:"version"`
	// Wasm is the plugin's path, relative to the index file.
	Wasm string `json:"wasm"`
	// Digest is "sha256:<hex>" of the plugin; "" means not pinned.
	Digest string `json:"digest"`
	// AuthTypes are the auth types a connection to the connector may have (its manifest's
	// auth.types).
	AuthTypes []string `json:"auth_types"`
	// ConnectionParams describe the connection params the connector reads.
	ConnectionParams map[string]string `json:"connection_params,omitempty"`
	Actions          []catalogAction   `json:"actions"`
	Triggers         []catalogTrigger  `json:"triggers"`
}

// catalogAction is one action of a catalog connector.
type catalogAction struct {
	Name  string `json:"name"`
	Title string `json:"title"`
}

// catalogTrigger is one trigger of a catalog connector; Kind is "poll" or "webhook".
type catalogTrigger struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
}

// catalogPath is --catalog, else PLUGBOARD_CATALOG, else defaultCatalog.
func (c *cli) catalogPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := c.getenv("PLUGBOARD_CATALOG"); v != "" {
		return v
	}
	return defaultCatalog
}

func loadCatalog(path string) (*catalogIndex, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the catalog: %w (point --catalog or PLUGBOARD_CATALOG at a catalog index)", err)
	}
	var idx catalogIndex
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&idx); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	if idx.Catalog != 1 {
		return nil, fmt.Errorf("catalog %s: format %d, this plugboard reads format 1", path, idx.Catalog)
	}
	idx.dir = filepath.Dir(path)
	return &idx, nil
}

func (idx *catalogIndex) entry(name string) (*catalogEntry, error) {
	names := make([]string, len(idx.Servers))
	for i := range idx.Servers {
		if idx.Servers[i].Name == name {
			return &idx.Servers[i], nil
		}
		names[i] = idx.Servers[i].Name
	}
	for i := range idx.Connectors {
		if e := &idx.Connectors[i]; e.Name == name {
			return nil, fmt.Errorf("%s is a connector, not an MCP server: upload it with `plugboard connector push %s`", name, idx.path(e.Wasm))
		}
	}
	return nil, fmt.Errorf("the catalog has no server %q (it has %s)", name, strings.Join(names, ", "))
}

// read returns the entry's plugin and its digest, checking the pinned digest when there is one.
func (idx *catalogIndex) read(e *catalogEntry) ([]byte, string, error) {
	return idx.readPlugin(e.Name, e.Wasm, e.Digest)
}

// readPlugin returns the plugin at wasm (relative to the index) and its digest, checking it
// against pin when pin is not "".
func (idx *catalogIndex) readPlugin(name, wasm, pin string) ([]byte, string, error) {
	path := idx.path(wasm)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w (build the catalog's plugins with `make plugins`)", name, err)
	}
	sum := sha256.Sum256(b)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if pin != "" && pin != digest {
		return nil, "", fmt.Errorf("%s: %s has digest %s, the catalog pins %s", name, path, digest, pin)
	}
	return b, digest, nil
}

// path resolves an entry's wasm path, which is relative to the index file.
func (idx *catalogIndex) path(wasm string) string {
	if filepath.IsAbs(wasm) {
		return wasm
	}
	return filepath.Join(idx.dir, wasm)
}

func (c *cli) catalogCommand() *command {
	return &command{
		name:  "catalog",
		short: "List the connectors and hosted MCP servers that can be installed",
		long: "The catalog is an index (JSON) of Wasm plugins, by default those this repository builds:\n" +
			"connectors (their actions and triggers) and hosted MCP servers (plugins of kind \"mcp\" that\n" +
			"run in Plugboard's sandbox). Upload a connector with `plugboard connector push FILE.wasm`;\n" +
			"install an MCP server with `plugboard mcp install NAME --connection ID`.",
		example: "plugboard catalog list\n" +
			"plugboard connector push bin/plugins/outlook.wasm\n" +
			"plugboard mcp install fetch-mcp --connection docs-site",
		sub: []*command{c.catalogList()},
	}
}

func (c *cli) catalogList() *command {
	var output outputFormat
	var catalog string
	return &command{
		name:  "list",
		short: "List the catalog's connectors and MCP servers",
		long: "List the catalog's hosted MCP servers (name, version, the connection type each needs, its\n" +
			"description) and then its connectors (name, version, auth types, actions, and triggers with\n" +
			"their kind), each with the digest of its plugin, or (not built) before `make plugins`.\n" +
			"Upload a connector with `plugboard connector push` and the path the heading shows.",
		example: "plugboard catalog list\n" +
			"plugboard catalog list --catalog ./plugins/catalog.json -o json\n" +
			"plugboard connector push bin/plugins/sharepoint.wasm",
		flags: func(fs *flagSet) {
			fs.StringVar(&catalog, "catalog", "", "catalog index file (default $PLUGBOARD_CATALOG or "+defaultCatalog+")")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			idx, err := loadCatalog(c.catalogPath(catalog))
			if err != nil {
				return err
			}
			for i := range idx.Servers {
				if _, d, err := idx.read(&idx.Servers[i]); err == nil {
					idx.Servers[i].Digest = d
				}
			}
			for i := range idx.Connectors {
				e := &idx.Connectors[i]
				if _, d, err := idx.readPlugin(e.Name, e.Wasm, e.Digest); err == nil {
					e.Digest = d
				}
			}
			if output == outputJSON {
				servers, connectors := idx.Servers, idx.Connectors
				if servers == nil {
					servers = []catalogEntry{}
				}
				if connectors == nil {
					connectors = []catalogConnector{}
				}
				b, _ := json.Marshal(map[string]any{"servers": servers, "connectors": connectors})
				return printJSON(c.stdout, b)
			}
			t := newTable(c.stdout, "NAME", "VERSION", "CONNECTION", "DESCRIPTION", "DIGEST")
			for _, e := range idx.Servers {
				t.row(e.Name, e.Version, e.ConnectionType, e.Description, builtDigest(e.Digest))
			}
			if err := t.flush(); err != nil || len(idx.Connectors) == 0 {
				return err
			}
			fmt.Fprintf(c.stdout, "\nConnectors (upload one with `plugboard connector push %s`):\n", idx.pushPath())
			t = newTable(c.stdout, "NAME", "VERSION", "AUTH", "ACTIONS", "TRIGGERS", "DIGEST")
			for _, e := range idx.Connectors {
				actions := make([]string, len(e.Actions))
				for i, a := range e.Actions {
					actions[i] = a.Name
				}
				triggers := make([]string, len(e.Triggers))
				for i, tr := range e.Triggers {
					triggers[i] = tr.Name + "(" + tr.Kind + ")"
				}
				t.row(e.Name, e.Version, strings.Join(e.AuthTypes, ","), strings.Join(actions, ","), strings.Join(triggers, ","), builtDigest(e.Digest))
			}
			return t.flush()
		},
	}
}

// pushPath is the file argument of `plugboard connector push` for the catalog's connectors:
// DIR/NAME.wasm when every connector's plugin is DIR/<its name>.wasm, else FILE.wasm.
func (idx *catalogIndex) pushPath() string {
	dir := ""
	for i, e := range idx.Connectors {
		p := idx.path(e.Wasm)
		if filepath.Base(p) != e.Name+".wasm" || (i > 0 && filepath.Dir(p) != dir) {
			return "FILE.wasm"
		}
		dir = filepath.Dir(p)
	}
	return filepath.Join(dir, "NAME.wasm")
}

// builtDigest is a plugin's short digest for a table, or (not built) when its file is missing.
func builtDigest(d string) string {
	if d == "" {
		return "(not built)"
	}
	return shortDigest(d)
}
