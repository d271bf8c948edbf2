package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/plugboard/plugboard/host"
)

// metrics is a small Prometheus registry: labelled counters and histograms, rendered in the
// text exposition format. It holds no tenant data beyond connector and action names.
type metrics struct {
	mu         sync.Mutex
	counters   map[string]map[string]float64 // name -> label set -> value
	histograms map[string]map[string]*histogram
	help       map[string]string
}

type histogram struct {
	counts []uint64
	sum    float64
	n      uint64
}

var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() *metrics {
	return &metrics{counters: map[string]map[string]float64{}, histograms: map[string]map[string]*histogram{}, help: map[string]string{
		"plugboard_action_calls_total":      "Action calls by connector, version, action and outcome code.",
		"plugboard_action_duration_seconds": "Action call latency from the plugin call to its result (instance wait and start included), by connector, version and action.",
		"plugboard_egress_requests_total":   "Outbound requests made by plugins, by connector, origin and status.",
		"plugboard_uploads_total":           "Connector uploads by outcome code.",
		"plugboard_http_requests_total":     "API requests by route and status.",
		"plugboard_pool_instances":          "Plugin instances held, by connector, version and state.",
		"plugboard_connectors_active":       "Connectors with an active version loaded.",
		// Hot swap and canaries (server/connectors.go).
		"plugboard_version_call_duration_seconds": "Action call latency by connector, version and role (active, canary or pinned).",
		"plugboard_canary_percent":                "Share of unpinned calls a running canary receives, by connector and canary version.",
		"plugboard_canary_calls":                  "Calls served since the canary started, by connector, version and side (active or canary).",
		"plugboard_canary_errors":                 "Failed calls since the canary started (host failures and 5xx guest errors), by connector, version and side.",
		"plugboard_canary_latency_seconds":        "Plugin call latency quantiles since the canary started, by connector, version, side and quantile.",
		// Triggers (server/triggers.go, delivery.go, hooks.go).
		"plugboard_trigger_polls_total":           "Polls by connector, trigger and outcome code.",
		"plugboard_trigger_poll_duration_seconds": "Plugin poll call latency by connector and trigger.",
		"plugboard_trigger_events_total":          "New events (after deduplication) by connector and trigger.",
		"plugboard_trigger_receives_total":        "Inbound webhook requests by connector, trigger and outcome code.",
		"plugboard_trigger_renewals_total":        "Webhook renewals by connector, trigger and outcome code.",
		"plugboard_timers_fired_total":            "Plugin timers fired by connector and outcome code.",
		"plugboard_trigger_sources_led":           "Trigger sources this node leads now (polls, or renews and unsubscribes).",
		// Cluster (server/cluster.go).
		"plugboard_cluster_nodes":               "Nodes that heartbeat in the cluster now, this one included (1 on bbolt).",
		"plugboard_cluster_watch_lag_seconds":   "How long the last rollout another node committed took to be served here, from the watch report to the swap (0 before one).",
		"plugboard_trigger_lease_losses_total":  "Trigger leases this node lost to another node (renewed too late), by lease kind (source, push, timers).",
		"plugboard_deliveries_total":            "Push delivery attempts by connector, trigger and outcome (HTTP status or error).",
		"plugboard_delivery_duration_seconds":   "Push delivery attempt latency by connector and trigger.",
		"plugboard_subscriptions":               "Subscriptions by connector, trigger, delivery type and status.",
		"plugboard_subscription_pending_events": "Undelivered events summed over subscriptions, by connector and trigger.",
		"plugboard_subscription_lag_seconds":    "Age of the oldest undelivered event, the largest over subscriptions, by connector and trigger.",
		"plugboard_subscription_dropped_events": "Events dropped because a subscription's queue was full, by connector and trigger.",
		// Telemetry (issue 7): observeCall, the invocation log, build info.
		"plugboard_action_errors_total":          "Failed action calls by connector, version, action, error code and source (plugin or plugboard); connector and action are empty for unknown names.",
		"plugboard_action_guest_seconds":         "Wall time the guest's own code ran per call (the export call minus host imports), by connector, version and action.",
		"plugboard_instance_starts_total":        "Calls that paid for a new plugin instance, by connector and version.",
		"plugboard_egress_duration_seconds":      "Outbound request duration (one hop, retries included), by connector and origin.",
		"plugboard_egress_bytes_total":           "Outbound request and response body bytes, by connector, origin and direction (in, out).",
		"plugboard_invocation_log_records_total": "Invocation log records written to the store.",
		"plugboard_invocation_log_errors_total":  "Invocation log batches the store failed to write (their records are lost).",
		"plugboard_invocation_log_pruned_total":  "Invocation log records deleted for age or count.",
		"plugboard_build_info":                   "Always 1, labelled with the binary's version, VCS revision and Go version.",
	}}
}

// labels renders label pairs in a stable order: labels("a", "1", "b", "2").
func labels(kv ...string) string {
	b := make([]byte, 0, 96)
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, kv[i]...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, kv[i+1]) // what fmt's %q writes, without boxing the arguments
	}
	return string(b)
}

func (m *metrics) add(name, lbl string, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[name]
	if c == nil {
		c = map[string]float64{}
		m.counters[name] = c
	}
	c[lbl] += v
}

func (m *metrics) observe(name, lbl string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs := m.histograms[name]
	if hs == nil {
		hs = map[string]*histogram{}
		m.histograms[name] = hs
	}
	h := hs[lbl]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets))}
		hs[lbl] = h
	}
	s := d.Seconds()
	for i, le := range latencyBuckets {
		if s <= le {
			h.counts[i]++
		}
	}
	h.sum += s
	h.n++
}

// gauge is a value computed at scrape time.
type gauge struct {
	name, labels string
	value        float64
}

// write renders every metric, with gauges computed by the caller at scrape time.
func (m *metrics) write(w io.Writer, gauges []gauge) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range sortedKeys(m.counters) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, m.help[name], name)
		for _, l := range sortedKeys(m.counters[name]) {
			fmt.Fprintf(w, "%s{%s} %g\n", name, l, m.counters[name][l])
		}
	}
	for _, name := range sortedKeys(m.histograms) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, m.help[name], name)
		for _, l := range sortedKeys(m.histograms[name]) {
			h := m.histograms[name][l]
			sep := ""
			if l != "" {
				sep = ","
			}
			for i, le := range latencyBuckets {
				fmt.Fprintf(w, "%s_bucket{%s%sle=\"%g\"} %d\n", name, l, sep, le, h.counts[i])
			}
			fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, l, sep, h.n)
			fmt.Fprintf(w, "%s_sum{%s} %g\n%s_count{%s} %d\n", name, l, h.sum, name, l, h.n)
		}
	}
	byName := map[string][]gauge{}
	for _, g := range gauges {
		byName[g.name] = append(byName[g.name], g)
	}
	for _, name := range sortedKeys(byName) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, m.help[name], name)
		for _, g := range byName[name] {
			if math.IsNaN(g.value) {
				continue
			}
			if g.labels == "" {
				fmt.Fprintf(w, "%s %g\n", name, g.value)
			} else {
				fmt.Fprintf(w, "%s{%s} %g\n", name, g.labels, g.value)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// observeCall records the telemetry of a finished action call beyond the counters execAction
// keeps: errors by code and source, guest time, instance starts, outbound durations and bytes,
// and the call's identity and outcome on the request's span.
func (s *Server) observeCall(ctx context.Context, inv *invocation, rep *host.Report) {
	connector, action := inv.Connector, inv.Action
	if inv.Outcome == codeConnectorNotFound || inv.Outcome == codeActionNotFound {
		connector, action = "", "" // names from the request: not a label, or anyone could add series
	}
	if inv.Error != nil {
		s.metrics.add("plugboard_action_errors_total", labels("connector", connector, "version", inv.Version, "action", action,
			"code", inv.Error.Code, "source", inv.Error.Source), 1)
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("plugboard.connector", connector), attribute.String("plugboard.version", inv.Version),
			attribute.String("plugboard.action", action), attribute.String("plugboard.outcome", inv.Outcome))
	}
	if rep == nil {
		return
	}
	s.metrics.observe("plugboard_action_guest_seconds", labels("connector", connector, "version", inv.Version, "action", action), rep.GuestTime)
	if rep.Instantiated {
		s.metrics.add("plugboard_instance_starts_total", labels("connector", connector, "version", inv.Version), 1)
	}
	for _, o := range rep.Outbound {
		s.metrics.observe("plugboard_egress_duration_seconds", labels("connector", connector, "origin", o.Origin), o.Duration)
		s.metrics.add("plugboard_egress_bytes_total", labels("connector", connector, "origin", o.Origin, "direction", "in"), float64(o.BytesIn))
		s.metrics.add("plugboard_egress_bytes_total", labels("connector", connector, "origin", o.Origin, "direction", "out"), float64(o.BytesOut))
	}
}
