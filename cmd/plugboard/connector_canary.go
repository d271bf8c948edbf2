package main

import (
	"context"
	"encoding/json"
	"fmt"

	client "github.com/plugboard/plugboard/sdk/go/plugboard"
)

// canaryFlags registers the canary flags of `connector activate`.
func canaryFlags(fs *flagSet, c *client.Canary) {
	fs.StringVar(&c.Version, "canary", "", "send a share of the calls to this `VERSION` while VERSION stays active")
	fs.IntVar(&c.Percent, "percent", 10, "with --canary: the share of calls, 0 to 100")
	fs.Float64Var(&c.MaxErrorRate, "max-error-rate", 0, "with --canary: abort the canary once its error rate passes this `RATE` (0 to 1; 0: never)")
	fs.IntVar(&c.MinCalls, "min-calls", 0, "with --max-error-rate: canary calls to wait for before judging (default 20)")
}

// activateCanary runs `connector activate NAME VERSION --canary V`.
func (c *cli) activateCanary(ctx context.Context, name, version string, canary client.Canary, approve bool, output outputFormat) error {
	v, err := c.api().ActivateWithCanary(ctx, name, version, canary, approve)
	if err != nil {
		return activateHint(err, name, version)
	}
	if output == outputJSON {
		return printJSON(c.stdout, v.Raw)
	}
	fmt.Fprintf(c.stdout, "%s %s is active; canary %s takes %d%% of the calls.\n", v.Name, v.Version, canary.Version, canary.Percent)
	fmt.Fprintf(c.stdout, "Watch it with `plugboard connector get %s`; promote with `plugboard connector activate %s %s`, abort with `plugboard connector activate %s %s`.\n",
		name, name, canary.Version, name, version)
	return nil
}

// addCanary adds the running canary and the last one's outcome from a connector document.
func addCanary(d *details, raw json.RawMessage) {
	type side struct {
		Version   string  `json:"version"`
		Calls     uint64  `json:"calls"`
		Errors    uint64  `json:"errors"`
		ErrorRate float64 `json:"error_rate"`
		P50MS     float64 `json:"p50_ms"`
		P99MS     float64 `json:"p99_ms"`
	}
	type stats struct {
		Active side `json:"active"`
		Canary side `json:"canary"`
	}
	var doc struct {
		Canary *struct {
			Version string `json:"version"`
			Percent int    `json:"percent"`
			Stats   stats  `json:"stats"`
		} `json:"canary"`
		Last *struct {
			Version string `json:"version"`
			Outcome string `json:"outcome"`
			Reason  string `json:"reason"`
		} `json:"last_canary"`
	}
	if json.Unmarshal(raw, &doc) != nil {
		return
	}
	line := func(s side) string {
		return fmt.Sprintf("%s: %d calls, %d errors (%.1f%%), p50 %.1f ms, p99 %.1f ms", s.Version, s.Calls, s.Errors, 100*s.ErrorRate, s.P50MS, s.P99MS)
	}
	if c := doc.Canary; c != nil {
		d.add("Canary", fmt.Sprintf("%s at %d%%", c.Version, c.Percent))
		d.add("  active side", line(c.Stats.Active))
		d.add("  canary side", line(c.Stats.Canary))
	}
	if l := doc.Last; l != nil {
		s := l.Version + " " + l.Outcome
		if l.Reason != "" {
			s += ": " + l.Reason
		}
		d.add("Last canary", s)
	}
}
