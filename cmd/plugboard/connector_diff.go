package main

import (
	"context"
	"fmt"
	"io"

	"github.com/plugboard/plugboard/registry"
	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// printChanges prints what v changes against its connector's active version: actions,
// triggers, hosts, auth types, reveal capabilities, schemas and limits, one line each, the
// additions that need an operator's approval marked. It prints nothing for the active version
// itself or a connector's first version.
func printChanges(ctx context.Context, api *client.Client, v client.Version, w io.Writer) error {
	con, err := api.GetConnector(ctx, v.Name)
	if err != nil {
		return err
	}
	if con.ActiveVersion == "" || con.ActiveVersion == v.Version || con.Manifest == nil || v.Manifest == nil {
		return nil
	}
	changes := registry.DiffManifests(con.Manifest, v.Manifest)
	if len(changes) == 0 {
		fmt.Fprintf(w, "No changes to actions, triggers, hosts or schemas against the active version %s.\n", con.ActiveVersion)
		return nil
	}
	fmt.Fprintf(w, "Changes against the active version %s:\n", con.ActiveVersion)
	for _, c := range changes {
		fmt.Fprintf(w, "  %s\n", c)
	}
	return nil
}
