package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

func (c *cli) invokeCommand() *command {
	var connection, input, version string
	var output outputFormat
	return &command{
		name:  "invoke",
		args:  "CONNECTOR ACTION",
		short: "Call a connector action",
		long: "Call an action and print its output, pretty-printed JSON, on standard output. -o json\n" +
			"prints the API's whole answer instead: {\"output\", \"connector\", \"version\" (the one that\n" +
			"served), \"correlation_id\"}. On failure the error goes to standard error with its code, the\n" +
			"schema errors with their paths and the correlation ID, and the exit code is 1.",
		example: "plugboard invoke github get_repo --connection gh-main --input '{\"owner\": \"o\", \"repo\": \"r\"}'\n" +
			"# Input from a file or standard input\n" +
			"plugboard invoke github create_issue --connection gh-main --input @issue.json\n" +
			"jq -n '{owner: \"o\", repo: \"r\", title: \"Bug\"}' | plugboard invoke github create_issue --connection gh-main --input -\n" +
			"# Pin a stored version instead of the active one\n" +
			"plugboard invoke github get_repo --connection gh-main --version 1.2.0 --input '{\"owner\": \"o\", \"repo\": \"r\"}'\n" +
			"# Which version served, and the call's correlation ID (its logs: GET /v1/invocations/ID)\n" +
			"plugboard invoke github get_repo --connection gh-main -o json | jq '{version, correlation_id}'",
		nargs: exactArgs("CONNECTOR", "ACTION"),
		flags: func(fs *flagSet) {
			fs.StringVar(&connection, "connection", "", "`ID` of the connection to call with (not needed for auth type none)")
			fs.StringVar(&input, "input", "", "the action's input: `JSON`, @FILE, or - for standard input (default {})")
			fs.StringVar(&version, "version", "", "call this stored `VERSION` instead of the active one")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			req := client.InvokeRequest{Connection: connection, Version: version}
			if input != "" {
				raw, err := c.jsonArg("--input", input)
				if err != nil {
					return err
				}
				req.Input = raw
			}
			out, err := c.api().Invoke(ctx, args[0], args[1], req)
			if p, ok := errors.AsType[*client.Problem](err); ok && p.Source != client.SourcePlugin {
				err = withHint(err, &client.Problem{Code: client.CodeActionNotFound},
					"list the actions with `plugboard connector actions %s`", args[0])
				return withHint(err, &client.Problem{Code: client.CodeInvalidInput},
					"see the input schema with `plugboard connector actions %s -o json`", args[0])
			}
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, invokeDocument(out))
			}
			if err := printJSON(c.stdout, out.Output); err != nil {
				return fmt.Errorf("the output of %s.%s: %w", args[0], args[1], err)
			}
			return nil
		},
	}
}

// invokeDocument is the API's answer to an action call as the server sent it, with the
// correlation ID from the X-Correlation-ID header added when the body lacks it.
func invokeDocument(out client.InvokeResponse) json.RawMessage {
	var doc map[string]json.RawMessage
	if json.Unmarshal(out.Raw, &doc) != nil || doc == nil {
		return out.Raw
	}
	if _, ok := doc["correlation_id"]; ok || out.CorrelationID == "" {
		return out.Raw
	}
	doc["correlation_id"], _ = json.Marshal(out.CorrelationID)
	b, err := json.Marshal(doc)
	if err != nil {
		return out.Raw
	}
	return b
}
