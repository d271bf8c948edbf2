package main

import (
	"context"
	"encoding/json"
	"fmt"
)

// masterKeyCommand is `plugboard master-key`. Before API keys these commands were
// `plugboard keys rotate|show`; those still work (hidden under `key`/`keys`).
func (c *cli) masterKeyCommand() *command {
	return &command{
		name:  "master-key",
		short: "Manage the master key that encrypts connection secrets",
		long: "Manage the server's master key: the AES-256 key that seals every connection secret at rest.\n" +
			"The key itself never leaves the server; these commands show its id and rotate it.",
		example: "plugboard master-key rotate\nplugboard master-key show",
		sub:     []*command{c.keysRotate(), c.keysShow()},
	}
}

func (c *cli) keysRotate() *command {
	var output outputFormat
	return &command{
		name:  "rotate",
		short: "Re-encrypt every connection secret under a new master key",
		long: "Rotate the master key: the server adds a new key, re-seals every connection secret with\n" +
			"it in batches, then drops the old keys from its key file. Calls keep running meanwhile.\n" +
			"Secrets sealed with an old key stay readable until the rotation completes, so a crash or\n" +
			"an error half-way loses nothing: run the command again to finish.",
		example: "plugboard master-key rotate",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			k, err := c.api().RotateMasterKey(ctx)
			if err != nil {
				return err
			}
			if output == outputJSON {
				b, _ := json.Marshal(k)
				return printJSON(c.stdout, b)
			}
			fmt.Fprintf(c.stdout, "Rotated the master key: %d secrets re-sealed under key %s; the old keys are gone from the key file.\n", k.Rotated, k.KeyID)
			return nil
		},
	}
}

func (c *cli) keysShow() *command {
	var output outputFormat
	return &command{
		name:    "show",
		short:   "Show the id of the active master key",
		long:    "Show the id of the master key new secrets are sealed with (never the key).",
		example: "plugboard master-key show",
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			id, err := c.api().MasterKeyID(ctx)
			if err != nil {
				return err
			}
			if output == outputJSON {
				b, _ := json.Marshal(map[string]string{"key_id": id})
				return printJSON(c.stdout, b)
			}
			fmt.Fprintf(c.stdout, "Active master key: %s\n", id)
			return nil
		},
	}
}
