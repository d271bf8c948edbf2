package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// hintError carries advice for one situation a command knows better than report does.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// withHint attaches advice to err when it matches the problem (by its non-zero code and
// status, as client.Problem.Is does); other errors pass unchanged.
func withHint(err error, match *client.Problem, format string, args ...any) error {
	if errors.Is(err, match) {
		return &hintError{err: err, hint: fmt.Sprintf(format, args...)}
	}
	return err
}

// report prints err to stderr with what to do next and returns the exit code.
func (c *cli) report(err error) int {
	if ue, ok := errors.AsType[*usageError](err); ok {
		fmt.Fprintf(c.stderr, "error: %s\n", ue.msg)
		if !ue.helpShown && ue.cmd != nil {
			fmt.Fprintf(c.stderr, "Run '%s --help' for usage.\n", ue.cmd.fullName())
		}
		return exitUsage
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(c.stderr, "error: interrupted")
		return exitError
	}
	fmt.Fprintf(c.stderr, "error: %s\n", err)
	if p, ok := errors.AsType[*client.Problem](err); ok {
		for _, fe := range p.Errors {
			path := fe.Path
			if path == "" {
				path = "(the whole input)"
			}
			fmt.Fprintf(c.stderr, "  %s: %s\n", path, fe.Message)
		}
		if len(p.Details) > 0 {
			fmt.Fprintf(c.stderr, "details: %s\n", p.Details)
		}
		if p.Retryable {
			fmt.Fprintln(c.stderr, "retryable: the same call may succeed later")
		}
		if p.CorrelationID != "" {
			fmt.Fprintf(c.stderr, "correlation id: %s\n", p.CorrelationID)
		}
	}
	hint := ""
	if he, ok := errors.AsType[*hintError](err); ok {
		hint = he.hint
	} else {
		hint = c.hint(err)
	}
	if hint != "" {
		fmt.Fprintf(c.stderr, "hint: %s\n", hint)
	}
	return exitError
}

// hint says what to do about err, or "" when there is nothing useful to add.
func (c *cli) hint(err error) string {
	if p, ok := errors.AsType[*client.Problem](err); ok {
		return c.problemHint(p)
	}
	if _, ok := errors.AsType[*url.Error](err); !ok {
		return ""
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("is the server running at %s%s? Start it with `make run` or `plugboard serve`, "+
			"or point --url / PLUGBOARD_URL (or a context) at it", c.serverURL(), c.urlOrigin())
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return "check the host name in --url / PLUGBOARD_URL or the context (now " + c.serverURL() + c.urlOrigin() + ")"
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "the server did not answer in time; check that " + c.serverURL() + " is the Plugboard server"
	}
	return ""
}

func (c *cli) problemHint(p *client.Problem) string {
	return c.fillHint(c.rawProblemHint(p))
}

// fillHint puts the running command's connector name into a hint's commands in place of the
// NAME or CONNECTOR placeholder (`plugboard connector versions NAME` after
// `plugboard connector delete github 0.9.0` becomes `plugboard connector versions github`).
// Other placeholders stay: a hint's VERSION or ID is usually another one than the command's.
func (c *cli) fillHint(hint string) string {
	v := c.named["CONNECTOR"]
	if v == "" || strings.HasPrefix(v, "-") {
		return hint
	}
	for _, ph := range []string{"NAME", "CONNECTOR"} {
		for _, cmd := range []string{"connector versions ", "connector activate ", "connector actions ", "--connector "} {
			hint = strings.ReplaceAll(hint, cmd+ph, cmd+v)
		}
	}
	return hint
}

func (c *cli) rawProblemHint(p *client.Problem) string {
	if p.Source == client.SourcePlugin {
		switch p.Code {
		case "unauthorized": // ABI.md section 4: the upstream service refused the credentials
			return "the upstream service rejected the connection's credentials: replace them with `plugboard connection rotate ID`"
		case client.CodeRateLimited:
			return retryHint(p)
		}
		return ""
	}
	switch p.Code {
	case client.CodeUnauthenticated:
		tokenFile := strings.TrimSuffix(c.dataDir(), "/") + "/admin.token"
		if ep := c.endpoint(); ep.token == "" && ep.withheld != "" {
			return "no token was sent: " + ep.withheld + ", as a context's token goes only to its own URL. " +
				"Drop --url / PLUGBOARD_URL to use the context, or pass the token with PLUGBOARD_TOKEN"
		}
		if c.authToken() == "" {
			return fmt.Sprintf("no token was sent: set PLUGBOARD_TOKEN or pass --token (or store one with "+
				"`plugboard context add NAME --url URL --token-stdin`). The admin token is "+
				"printed by `plugboard serve` at first start and stored in %s: export PLUGBOARD_TOKEN=$(cat %s)",
				tokenFile, tokenFile)
		}
		if ep := c.endpoint(); strings.HasPrefix(ep.tokenFrom, "context ") {
			return fmt.Sprintf("the server rejected the token of %s: store a valid one with "+
				"`plugboard context add %s --url %s --token-stdin --force`, or set PLUGBOARD_TOKEN", ep.tokenFrom, ep.context, ep.url)
		}
		return fmt.Sprintf("the server rejected the token: set PLUGBOARD_TOKEN (printed by `plugboard serve` "+
			"at first start, stored in %s) or use a key that has not expired or been revoked", tokenFile)
	case client.CodeForbidden:
		return "the token's role or scopes do not allow this: use an admin token or a key whose role and scopes cover it"
	case client.CodeTooLarge:
		return "the request body is over the server's size cap"
	case client.CodeConnectorNotFound:
		return "list the connectors with `plugboard connector list`; upload one with `plugboard connector push FILE.wasm`"
	case client.CodeConnectionNotFound:
		return "list the connections with `plugboard connection list`"
	case client.CodeConnectionRequired:
		return "this connector needs credentials: pass --connection ID (list them with `plugboard connection list`)"
	case client.CodeConnectionExists:
		return "pick another ID, or change the existing one with `plugboard connection update` / `plugboard connection rotate`"
	case client.CodeVersionNotFound:
		return "list the stored versions with `plugboard connector versions NAME`"
	case client.CodeVersionActive:
		return "the active version cannot be removed: activate another one first with `plugboard connector activate NAME VERSION`"
	case client.CodeActionNotFound:
		return "list a connector's actions with `plugboard connector actions CONNECTOR`"
	case client.CodeConnectionNotAllowed:
		return "the connection is not bound to this connector: add it with " +
			"`plugboard connection update ID --connector NAME` (list every connector it should keep)"
	case client.CodeInvalidInput:
		return "see the action's input schema with `plugboard connector actions CONNECTOR -o json`"
	case client.CodeVersionExists:
		return "a stored version never changes: raise the version in the plugin's manifest and build it again"
	case client.CodeCapabilitiesChanged:
		return "review the difference above, then accept it with " +
			"`plugboard connector activate NAME VERSION --approve-capabilities`"
	case client.CodeInvalidWasm, client.CodeImportNotAllowed, client.CodeMissingExport,
		client.CodeDescribeFailed, client.CodeInvalidManifest:
		return "the plugin failed the upload checks; ABI.md lists what a plugin may import, must export and must describe"
	case client.CodePluginFailed:
		return "the plugin trapped or failed; its logs and outbound calls are at GET /v1/invocations/" + p.CorrelationID
	case client.CodeTimeout:
		return "the call ran past its deadline; the connector's limits.timeout_ms and the server cap bound it"
	case client.CodeRateLimited:
		return retryHint(p)
	case client.CodePrivateAddress:
		return "the server reaches only public addresses unless it is started with --egress-allow CIDR covering the range " +
			"(for a receiver on the server's own machine: plugboard serve --egress-allow 127.0.0.0/8)"
	case client.CodeNeedsReauth:
		return "the OAuth grant was refused on refresh: get a new consent URL with POST /v1/connections/ID/reauthorize and open it"
	case "":
		// Not a Plugboard problem document: something else answered.
		if p.Location != "" {
			return "set --url / PLUGBOARD_URL to the Plugboard server's own address (now " + c.serverURL() + ")"
		}
		return "the answer did not come from the Plugboard API: check --url / PLUGBOARD_URL (now " + c.serverURL() + ")"
	}
	if p.Status >= 500 && p.Source != client.SourcePlugin {
		return "a server error: report it with the correlation id"
	}
	return ""
}

func retryHint(p *client.Problem) string {
	if p.RetryAfter > 0 {
		return fmt.Sprintf("retry after %s", p.RetryAfter)
	}
	return "retry later"
}

// urlOrigin says where the server URL came from when it was not a flag or variable the user
// just typed: " (from context NAME)", " (the default)", or "".
func (c *cli) urlOrigin() string {
	switch from := c.endpoint().urlFrom; {
	case strings.HasPrefix(from, "context "):
		return " (from " + from + ")"
	case from == "the default":
		return " (the default)"
	}
	return ""
}

// dataDir is the server's data directory as `plugboard serve` would see it here.
func (c *cli) dataDir() string {
	if d := c.getenv("PLUGBOARD_DATA"); d != "" {
		return d
	}
	return "./var"
}
