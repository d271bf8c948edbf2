package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// consentFlags control waiting for an OAuth2 consent after create, rotate and reauthorize.
type consentFlags struct {
	wait, noWait bool
	timeout      time.Duration
}

func (f *consentFlags) register(fs *flagSet) {
	fs.BoolVar(&f.wait, "wait", false, "wait for the OAuth2 consent to complete (the default when standard error is a terminal)")
	fs.BoolVar(&f.noWait, "no-wait", false, "print the OAuth2 consent URL and return at once")
	fs.DurationVar(&f.timeout, "wait-timeout", 10*time.Minute, "give up waiting for the consent after `DURATION`")
}

// waiting reports whether to wait for the consent: --wait, --no-wait, or whether a person is
// watching standard error.
func (f *consentFlags) waiting(c *cli) (bool, error) {
	switch {
	case f.wait && f.noWait:
		return false, usagef("use --wait or --no-wait, not both")
	case f.timeout <= 0:
		return false, usagef("--wait-timeout must be positive")
	case f.wait:
		return true, nil
	case f.noWait:
		return false, nil
	}
	return isTerminal(c.stderr), nil
}

// spinnerFrames animate the wait on a terminal.
var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// awaitConsent prints the consent URL of conn and, when waiting, polls the connection until
// the consent completed (status ready and no consent pending), failed (the consent is no longer
// pending, with the server's last error), or the wait ends. A spinner runs on a terminal.
func (c *cli) awaitConsent(ctx context.Context, conn client.Connection, f *consentFlags) error {
	wait, err := f.waiting(c)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nOpen this URL in a browser to grant access:\n  %s\n", conn.ConsentURL)
	if !wait {
		fmt.Fprintf(c.stderr, "Not waiting for the consent; `plugboard connection get %s` shows its status (--wait waits).\n", conn.ID)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	tty := isTerminal(c.stderr)
	if !tty {
		fmt.Fprintln(c.stderr, "Waiting for the consent in the browser...")
	}
	const frame = 100 * time.Millisecond
	poll := min(time.Second, f.timeout/20)
	tick := time.NewTicker(min(frame, poll))
	defer tick.Stop()
	start, lastPoll := time.Now(), time.Time{}
	clear := func() {
		if tty {
			fmt.Fprint(c.stderr, "\r\033[K")
		}
	}
	for i := 0; ; i++ {
		if time.Since(lastPoll) >= poll {
			lastPoll = time.Now()
			cur, err := c.api().GetConnection(ctx, conn.ID)
			switch {
			case err != nil && ctx.Err() != nil:
			case err != nil:
				clear()
				return err
			case cur.ConsentURL == "" && cur.Status == client.StatusReady:
				clear()
				fmt.Fprintf(c.stdout, "Connection %s is ready.\n", conn.ID)
				return nil
			case cur.ConsentURL == "":
				clear()
				msg := lastError(cur.Raw)
				if msg == "" {
					msg = "status " + cur.Status
				}
				return fmt.Errorf("the consent for %s did not complete: %s; get a new URL with `plugboard connection reauthorize %s`", conn.ID, msg, conn.ID)
			}
		}
		if tty {
			fmt.Fprintf(c.stderr, "\r%s Waiting for the consent in the browser (%s; Ctrl-C stops waiting)\033[K",
				spinnerFrames[i%len(spinnerFrames)], time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			clear()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("gave up waiting for the consent of %s after %s; the URL stays valid for a while, and `plugboard connection get %s` shows the status", conn.ID, f.timeout, conn.ID)
			}
			return fmt.Errorf("stopped waiting for the consent of %s; the URL stays valid for a while: %w", conn.ID, ctx.Err())
		case <-tick.C:
		}
	}
}

// lastError returns the auth.last_error of a connection document.
func lastError(raw json.RawMessage) string {
	var doc struct {
		Auth struct {
			LastError string `json:"last_error"`
		} `json:"auth"`
	}
	_ = json.Unmarshal(raw, &doc)
	return doc.Auth.LastError
}

func (c *cli) connectionReauthorize() *command {
	var (
		scopes  stringList
		consent consentFlags
		output  outputFormat
	)
	return &command{
		name:  "reauthorize",
		args:  "ID",
		short: "Get a new OAuth2 consent URL for a connection",
		long: "Ask for a new consent URL for an OAuth2 connection: after its refresh token was refused\n" +
			"(status needs_reauth), or to change its scopes with --scope. Earlier consent URLs stop\n" +
			"working; the connection keeps its tokens until the new consent completes. Waits for the\n" +
			"consent when standard error is a terminal (--wait, --no-wait). A client_credentials\n" +
			"connection gets a new token at once instead.",
		example: "plugboard connection reauthorize gh-oauth\n" +
			"plugboard connection reauthorize gh-oauth --scope repo --scope read:org --no-wait",
		nargs: exactArgs("ID"),
		flags: func(fs *flagSet) {
			fs.Var(&scopes, "scope", "OAuth2 `SCOPE` to request instead of the current ones (repeatable)")
			consent.register(fs)
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			var sc []string
			if len(scopes) > 0 {
				sc = scopes
			}
			conn, err := c.api().Reauthorize(ctx, args[0], sc)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, conn.Raw)
			}
			if conn.ConsentURL == "" {
				fmt.Fprintf(c.stdout, "Connection %s has a new token (%s).\n", conn.ID, conn.Status)
				return nil
			}
			return c.awaitConsent(ctx, conn, &consent)
		},
	}
}
