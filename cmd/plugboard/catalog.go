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

// catalogIndex is a catalog of installable hosted MCP servers (plugins/catalog.json).
type catalogIndex struct {
	Catalog     int            `json:"catalog"`
	Description string         `json:"description,omitempty"`
	Servers     []catalogEntry `json:"servers"`

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
	return nil, fmt.Errorf("the catalog has no server %q (it has %s)", name, strings.Join(names, ", "))
}

// read returns the entry's plugin and its digest, checking the pinned digest when there is one.
func (idx *catalogIndex) read(e *catalogEntry) ([]byte, string, error) {
	path := e.Wasm
	if !filepath.IsAbs(path) {
		path = filepath.Join(idx.dir, path)
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w (build the catalog's plugins with `make plugins`)", e.Name, err)
	}
	sum := sha256.Sum256(wasm)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if e.Digest != "" && e.Digest != digest {
		return nil, "", fmt.Errorf("%s: %s has digest %s, the catalog pins %s", e.Name, path, digest, e.Digest)
	}
	return wasm, digest, nil
}

func (c *cli) catalogCommand() *command {
	return &command{
		name:  "catalog",
		short: "List the hosted MCP servers that can be installed",
		long: "The catalog is an index (JSON) of hosted MCP servers: Wasm plugins of kind \"mcp\" that\n" +
			"run in Plugboard's sandbox. Install one with `plugboard mcp install NAME --connection ID`.",
		example: "plugboard catalog list\nplugboard mcp install fetch-mcp --connection docs-site",
		sub:     []*command{c.catalogList()},
	}
}

func (c *cli) catalogList() *command {
	var output outputFormat
	var catalog string
	return &command{
		name:    "list",
		short:   "List the catalog's servers",
		long:    "List the catalog's servers: name, version, the connection type each needs, its description and the digest of its plugin.",
		example: "plugboard catalog list\nplugboard catalog list --catalog ./plugins/catalog.json -o json",
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
			if output == outputJSON {
				b, _ := json.Marshal(map[string]any{"servers": idx.Servers})
				return printJSON(c.stdout, b)
			}
			t := newTable(c.stdout, "NAME", "VERSION", "CONNECTION", "DESCRIPTION", "DIGEST")
			for _, e := range idx.Servers {
				d := e.Digest
				if d == "" {
					d = "(not built)"
				} else if len(d) > 19 {
					d = d[:19]
				}
				t.row(e.Name, e.Version, e.ConnectionType, e.Description, d)
			}
			return t.flush()
		},
	}
}
