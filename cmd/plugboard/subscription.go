package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// intervalFlag is --interval: whole seconds ("60") or a Go duration ("5m").
type intervalFlag int

func (f *intervalFlag) String() string { return strconv.Itoa(int(*f)) }

func (f *intervalFlag) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 {
			return errors.New("must be positive")
		}
		*f = intervalFlag(n)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d%time.Second != 0 {
		return errors.New("want whole seconds (60) or a duration (5m)")
	}
	*f = intervalFlag(d / time.Second)
	return nil
}

func (c *cli) subscribeCommand() *command {
	var (
		connection string
		params     paramFlags
		interval   intervalFlag
		webhookURL string
		queue      bool
		output     outputFormat
	)
	return &command{
		name:  "subscribe",
		args:  "CONNECTOR TRIGGER",
		short: "Subscribe to a connector's trigger",
		long: "Subscribe to a trigger: the server polls the upstream (poll triggers) or registers a\n" +
			"webhook there (webhook triggers) and delivers each new event to you, either pushed to\n" +
			"--webhook-url or kept in a queue you pull with `plugboard events pull` (--queue).\n\n" +
			"For a poll trigger the command returns once the baseline poll succeeded: every item\n" +
			"created afterwards is delivered. Subscriptions with the same connector, trigger,\n" +
			"connection and params share one upstream poller or webhook.\n\n" +
			"Webhook delivery prints the subscription's signing secret (whsec_...), which verifies the\n" +
			"webhook-signature header of each delivery (Standard Webhooks). It is shown only once.",
		example: "# New GitHub issues, pushed to your endpoint\n" +
			"plugboard subscribe github new_issue --connection gh-main --param owner=octocat --param repo=hello-world \\\n" +
			"    --interval 60 --webhook-url https://app.example/hooks/github\n" +
			"# The same into a queue, pulled later\n" +
			"plugboard subscribe github new_issue --connection gh-main --params-json '{\"owner\": \"octocat\", \"repo\": \"hello-world\"}' --queue\n" +
			"plugboard events pull sub_123 --follow\n" +
			"# Issue events from a GitHub webhook\n" +
			"plugboard subscribe github issue_event --connection gh-main --param owner=o --param repo=r --queue",
		nargs: exactArgs("CONNECTOR", "TRIGGER"),
		flags: func(fs *flagSet) {
			fs.StringVar(&connection, "connection", "", "`ID` of the connection the trigger runs with (not needed for auth type none)")
			fs.Var(&params.params, "param", "trigger parameter `KEY=VALUE`, a string (repeatable)")
			fs.StringVar(&params.json, "params-json", "", "trigger parameters as a JSON object: `JSON`, @FILE or - (stdin); --param entries override its keys")
			fs.Var(&interval, "interval", "polling interval of a poll trigger: `SECONDS` or a duration such as 5m (default: the trigger's)")
			fs.StringVar(&webhookURL, "webhook-url", "", "deliver each event with a signed POST to `URL`")
			fs.BoolVar(&queue, "queue", false, "keep events in a queue to pull with `plugboard events pull`")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			var delivery client.Delivery
			switch {
			case queue && webhookURL != "":
				return usagef("choose one delivery: --webhook-url URL or --queue, not both")
			case queue:
				delivery = client.Delivery{Type: client.DeliveryQueue}
			case webhookURL != "":
				delivery = client.Delivery{Type: client.DeliveryWebhook, URL: webhookURL}
			default:
				return usagef("choose a delivery: --webhook-url URL (push) or --queue (pull with `plugboard events pull`)")
			}
			p, err := c.params(&params)
			if err != nil {
				return err
			}
			sub, err := c.api().CreateSubscription(ctx, client.SubscriptionRequest{
				Connector: args[0], Trigger: args[1], Connection: connection, Params: p,
				IntervalS: int(interval), Delivery: delivery,
			})
			if err != nil {
				err = withHint(err, &client.Problem{Code: "trigger_not_found"},
					"list the triggers with `plugboard connector get %s`", args[0])
				return err
			}
			if sub.SigningSecret != "" {
				defer fmt.Fprintln(c.stderr, "warning: the signing secret is shown only once: store it now (it verifies the webhook-signature header of deliveries)")
			}
			if output == outputJSON {
				return printJSON(c.stdout, sub.Raw)
			}
			fmt.Fprintf(c.stdout, "Created subscription %s (%s).\n", sub.ID, sub.Status)
			d := newDetails(c.stdout)
			d.add("Trigger", sub.Connector+"."+sub.Trigger)
			d.add("Connection", sub.Connection)
			d.add("Params", formatParams(sub.Params))
			d.add("Delivery", deliveryText(sub.Delivery))
			if sub.IntervalS > 0 {
				d.add("Interval", fmt.Sprintf("%ds", sub.IntervalS))
			}
			d.add("Signing secret", sub.SigningSecret)
			if err := d.flush(); err != nil {
				return err
			}
			if sub.Delivery.Type == client.DeliveryQueue {
				fmt.Fprintf(c.stderr, "Pull its events with `plugboard events pull %s`.\n", sub.ID)
			}
			return nil
		},
	}
}

// untilText shows how soon a time comes: "in 45s", "due" once it has come, "" for none.
func untilText(t, now time.Time) string {
	switch {
	case t.IsZero():
		return ""
	case !t.After(now):
		return "due"
	}
	return "in " + age(now, t)
}

func deliveryText(d client.Delivery) string {
	if d.Type == client.DeliveryWebhook && d.URL != "" {
		return "webhook " + d.URL
	}
	return d.Type
}

func (c *cli) subscriptionsCommand() *command {
	var output outputFormat
	return &command{
		name:  "subscriptions",
		args:  "[ID]",
		short: "List subscriptions, or show one",
		long: "Without ID, list the subscriptions: ID, connector, trigger, connection, delivery, status,\n" +
			"when the source last polled and polls next, and the events waiting for delivery. With ID,\n" +
			"show every field of one: params, interval, last error, lag, counters, push state and the\n" +
			"shared source.",
		example: "plugboard subscriptions\n" +
			"plugboard subscriptions sub_123\n" +
			"plugboard subscriptions -o json | jq -r '.subscriptions[] | select(.status != \"active\") | .id'",
		nargs: func(args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("too many arguments: want at most one ID, got %q", strings.Join(args, " "))
			}
			return nil
		},
		flags: func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			if len(args) == 1 {
				sub, err := c.api().GetSubscription(ctx, args[0])
				if err != nil {
					return err
				}
				if output == outputJSON {
					return printJSON(c.stdout, sub.Raw)
				}
				return c.describeSubscription(sub)
			}
			list, err := c.api().ListSubscriptions(ctx)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSONList(c.stdout, "subscriptions", raws(list, func(x client.Subscription) json.RawMessage { return x.Raw }))
			}
			if len(list) == 0 {
				fmt.Fprintln(c.stderr, "No subscriptions. Create one with `plugboard subscribe CONNECTOR TRIGGER --connection ID --queue`.")
				return nil
			}
			t := newTable(c.stdout, "ID", "CONNECTOR", "TRIGGER", "CONNECTION", "DELIVERY", "STATUS", "LAST POLLED", "NEXT POLL", "PENDING")
			now := c.now()
			for _, x := range list {
				polled := ""
				if !x.LastPolledAt.IsZero() {
					polled = age(x.LastPolledAt, now) + " ago"
				}
				t.row(x.ID, x.Connector, x.Trigger, x.Connection, x.Delivery.Type, x.Status, polled, untilText(x.NextPollAt, now), strconv.FormatInt(x.Counts.Pending, 10))
			}
			return t.flush()
		},
	}
}

// describeSubscription prints every field of a subscription.
func (c *cli) describeSubscription(s client.Subscription) error {
	now := c.now()
	d := newDetails(c.stdout)
	d.add("ID", s.ID)
	d.add("Connector", s.Connector)
	d.add("Trigger", s.Trigger)
	d.add("Connection", s.Connection)
	d.add("Params", formatParams(s.Params))
	if s.IntervalS > 0 {
		d.add("Interval", fmt.Sprintf("%ds", s.IntervalS))
	}
	d.add("Delivery", deliveryText(s.Delivery))
	status := s.Status
	if s.StatusReason != "" {
		status += " (" + s.StatusReason + ")"
	}
	d.add("Status", status)
	d.add("Owner", s.Owner)
	d.add("Created", timestamp(s.CreatedAt, now))
	d.add("Last polled", timestamp(s.LastPolledAt, now))
	if !s.NextPollAt.IsZero() {
		d.add("Next poll", s.NextPollAt.UTC().Format(time.RFC3339)+" ("+untilText(s.NextPollAt, now)+")")
	}
	d.add("Last event", timestamp(s.LastEventAt, now))
	if e := s.LastError; e != nil {
		msg := e.Code + ": " + e.Message
		if !e.At.IsZero() {
			msg += " at " + timestamp(e.At, now)
		}
		d.add("Last error", msg)
	} else {
		d.add("Last error", "none")
	}
	d.add("Lag", strconv.FormatFloat(s.LagS, 'f', -1, 64)+"s")
	d.add("Events", fmt.Sprintf("%d total, %d delivered, %d pending, %d dropped", s.Counts.Events, s.Counts.Delivered, s.Counts.Pending, s.Counts.Dropped))
	if p := s.Push; p != nil {
		push := fmt.Sprintf("%d attempts", p.Attempts)
		if p.LastStatus != 0 {
			push += fmt.Sprintf(", last status %d", p.LastStatus)
		}
		d.add("Push", push)
		d.add("Last attempt", timestamp(p.LastAttemptAt, now))
		d.add("Next attempt", timestamp(p.NextAttemptAt, now))
		d.add("Push error", p.LastError)
	}
	if src := s.Source; src != nil {
		desc := fmt.Sprintf("%s (%s, %d subscriber", src.ID, src.Kind, src.Subscribers)
		if src.Subscribers != 1 {
			desc += "s"
		}
		if src.IntervalS > 0 {
			desc += fmt.Sprintf(", every %ds", src.IntervalS)
		}
		d.add("Source", desc+")")
	}
	return d.flush()
}

func (c *cli) rescheduleCommand() *command {
	var output outputFormat
	var interval intervalFlag
	var byDefault bool
	return &command{
		name:  "reschedule",
		args:  "ID",
		short: "Change a poll subscription's interval",
		long: "Change how often a poll subscription asks for its events. Subscriptions that share a\n" +
			"source are polled at the shortest interval any of them asks for, and the source's next\n" +
			"poll moves at once (at most the last poll plus the new interval). --default goes back to\n" +
			"the trigger's default interval.",
		example: "plugboard reschedule sub_123 --interval 15\n" +
			"plugboard reschedule sub_123 --interval 5m\n" +
			"plugboard reschedule sub_123 --default",
		nargs: exactArgs("ID"),
		flags: func(fs *flagSet) {
			fs.Var(&interval, "interval", "poll every `INTERVAL`: whole seconds (60) or a duration (5m); never below the trigger's min_interval_s")
			fs.BoolVar(&byDefault, "default", false, "go back to the trigger's default interval")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			if (interval == 0) == !byDefault {
				return usagef("give --interval INTERVAL or --default (one of them)")
			}
			sub, err := c.api().SetSubscriptionInterval(ctx, args[0], int(interval))
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, sub.Raw)
			}
			fmt.Fprintf(c.stdout, "Subscription %s now polls every %ds; next poll %s.\n", sub.ID, sub.IntervalS, untilText(sub.NextPollAt, c.now()))
			return nil
		},
	}
}

func (c *cli) unsubscribeCommand() *command {
	var output outputFormat
	return &command{
		name:  "unsubscribe",
		args:  "ID",
		short: "Delete a subscription",
		long: "Delete a subscription: its queued events are dropped. When it was the last subscriber of\n" +
			"a webhook source, the server removes the upstream registration too.",
		example: "plugboard unsubscribe sub_123",
		nargs:   exactArgs("ID"),
		flags:   func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			if err := c.api().DeleteSubscription(ctx, args[0]); err != nil {
				return err
			}
			if output == outputJSON {
				return printDeleted(c.stdout, "id", args[0])
			}
			fmt.Fprintf(c.stdout, "Deleted subscription %s.\n", args[0])
			return nil
		},
	}
}

func (c *cli) eventsCommand() *command {
	return &command{
		name:  "events",
		short: "Pull, acknowledge and replay a queue subscription's events",
		long: "Read the events of a subscription with queue delivery. Pulled events are leased: unless\n" +
			"acknowledged they come back after 30 seconds, so a consumer that crashes loses nothing.\n" +
			"Use each event's id as the idempotency key: it stays the same across retries and replays.",
		example: "plugboard events pull sub_123 --ack\n" +
			"plugboard events pull sub_123 --follow -o json | jq -c '.data'\n" +
			"plugboard events replay sub_123 --since 1h",
		sub: []*command{c.eventsPull(), c.eventsAck(), c.eventsReplay()},
	}
}

func (c *cli) eventsPull() *command {
	var (
		max    int
		wait   time.Duration
		ack    bool
		follow bool
		output outputFormat
	)
	return &command{
		name:  "pull",
		args:  "SUB",
		short: "Print queued events",
		long: "Lease up to --max events of subscription SUB and print them: a table of id, type, source\n" +
			"event id and timestamp, or with -o json one event document a line (JSON lines). When none\n" +
			"is ready the server holds the request up to --wait. --ack acknowledges what was printed;\n" +
			"without it the events come back after 30 seconds. --follow keeps pulling until interrupted\n" +
			"(Ctrl-C), acknowledging each batch after printing it.",
		example: "# One batch, acknowledged\n" +
			"plugboard events pull sub_123 --ack\n" +
			"# Stream events as JSON lines into another program\n" +
			"plugboard events pull sub_123 --follow -o json | while read -r ev; do handle \"$ev\"; done\n" +
			"# Peek without waiting or acknowledging\n" +
			"plugboard events pull sub_123 --wait 0 --max 10",
		nargs: exactArgs("SUB"),
		flags: func(fs *flagSet) {
			fs.IntVar(&max, "max", 100, "lease at most `N` events per request (1-1000)")
			fs.DurationVar(&wait, "wait", 20*time.Second, "how long the server may hold the request while no event is ready (`DURATION`, 0 for none)")
			fs.BoolVar(&ack, "ack", false, "acknowledge the printed events")
			fs.BoolVar(&follow, "follow", false, "keep pulling until interrupted, acknowledging each batch after printing it")
			fs.alias("f", "follow")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			if max < 1 || max > 1000 {
				return usagef("--max must be from 1 to 1000")
			}
			if wait < 0 {
				return usagef("--wait must not be negative")
			}
			api := c.api()
			sub := args[0]
			printer := &eventPrinter{w: c.stdout, json: output == outputJSON, now: c.now}
			for {
				events, err := api.PullEvents(ctx, sub, max, wait)
				if err != nil {
					if follow && ctx.Err() != nil {
						return nil // interrupted: a clean stop
					}
					return err
				}
				if err := printer.print(events); err != nil {
					return err
				}
				if (ack || follow) && len(events) > 0 {
					ids := make([]string, len(events))
					for i, e := range events {
						ids[i] = e.ID
					}
					n, err := api.AckEvents(context.WithoutCancel(ctx), sub, ids)
					if err != nil {
						return fmt.Errorf("acknowledging %d printed events: %w", len(ids), err)
					}
					if !follow {
						fmt.Fprintf(c.stderr, "acked %d\n", n)
					}
				}
				if !follow {
					if len(events) == 0 {
						fmt.Fprintf(c.stderr, "No events (waited %s).\n", wait)
					}
					return nil
				}
				if ctx.Err() != nil {
					return nil
				}
			}
		},
	}
}

// eventPrinter prints batches of events: JSON lines, or a table whose header comes once.
type eventPrinter struct {
	w      io.Writer
	json   bool
	now    func() time.Time
	header bool
}

func (p *eventPrinter) print(events []client.Event) error {
	if p.json {
		for _, e := range events {
			var b bytes.Buffer
			if err := json.Compact(&b, e.Raw); err != nil {
				return fmt.Errorf("printing event %s: %w", e.ID, err)
			}
			b.WriteByte('\n')
			if _, err := p.w.Write(unescapeHTML(b.Bytes())); err != nil {
				return err
			}
		}
		return nil
	}
	if len(events) == 0 {
		return nil
	}
	t := &table{tw: tabwriter.NewWriter(p.w, 0, 4, 3, ' ', 0)}
	if !p.header {
		t.row("ID", "TYPE", "SOURCE EVENT ID", "TIMESTAMP")
		p.header = true
	}
	for _, e := range events {
		typ := e.Type
		if e.EventType != "" {
			typ += " (" + e.EventType + ")"
		}
		t.row(e.ID, typ, e.SourceEventID, e.Timestamp.UTC().Format(time.RFC3339))
	}
	return t.flush()
}

func (c *cli) eventsAck() *command {
	var output outputFormat
	return &command{
		name:    "ack",
		args:    "SUB EVT_ID...",
		short:   "Acknowledge events",
		long:    "Acknowledge events of subscription SUB by their delivered ids (evt_...), so they are not delivered again. Prints how many were newly acknowledged: ids already acknowledged or unknown do not count.",
		example: "plugboard events ack sub_123 evt_1 evt_2",
		nargs: func(args []string) error {
			if len(args) < 2 {
				return errors.New("want SUB and at least one EVT_ID")
			}
			return nil
		},
		flags: func(fs *flagSet) { outputFlag(fs, &output) },
		run: func(ctx context.Context, args []string) error {
			n, err := c.api().AckEvents(ctx, args[0], args[1:])
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, json.RawMessage(fmt.Sprintf(`{"acked":%d}`, n)))
			}
			fmt.Fprintf(c.stdout, "acked %d\n", n)
			return nil
		},
	}
}

func (c *cli) eventsReplay() *command {
	var (
		since  string
		output outputFormat
	)
	return &command{
		name:  "replay",
		args:  "SUB",
		short: "Deliver stored events again",
		long: "Queue the stored events of subscription SUB from --since on for delivery again (pushed\n" +
			"again for webhook delivery). Events keep their ids, so idempotent consumers skip what they\n" +
			"already handled.",
		example: "plugboard events replay sub_123 --since 1h\n" +
			"plugboard events replay sub_123 --since 2026-03-01T00:00:00Z",
		nargs: exactArgs("SUB"),
		flags: func(fs *flagSet) {
			fs.StringVar(&since, "since", "", "replay events from this `TIME`: RFC 3339, or a duration back from now such as 1h or 30m (required)")
			outputFlag(fs, &output)
		},
		run: func(ctx context.Context, args []string) error {
			if since == "" {
				return usagef("--since is required: an RFC 3339 time or a duration such as 1h")
			}
			t, err := parseSince(since, c.now())
			if err != nil {
				return err
			}
			n, err := c.api().Replay(ctx, args[0], t)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(c.stdout, json.RawMessage(fmt.Sprintf(`{"replayed":%d}`, n)))
			}
			fmt.Fprintf(c.stdout, "replayed %d events since %s\n", n, t.UTC().Format(time.RFC3339))
			return nil
		},
	}
}

// parseSince reads an RFC 3339 time or a positive duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("--since %q is neither an RFC 3339 time (2026-03-01T00:00:00Z) nor a duration (1h)", s)
}
