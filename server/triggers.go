package server

import (
	"context"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/server/trigger"
)

// TriggerOptions tune the trigger engine (package trigger): scheduler, queues, push retries
// and, in a cluster, leases.
type TriggerOptions = trigger.Options

// Delivery types of API.md, under the names the handlers use.
const (
	deliveryWebhook = trigger.DeliveryWebhook
	deliveryQueue   = trigger.DeliveryQueue
)

// triggerDrainTimeout bounds how long Close waits for polls, pushes and timer firings in
// flight before it cancels them (a canceled poll commits nothing, a canceled push is retried).
const triggerDrainTimeout = 5 * time.Second

// newTriggerEngine builds the server's trigger engine: guest calls through the registry's one
// prepared-call path, pushes through the host's egress-checked client, errors rendered as the
// problems of problem.go.
func newTriggerEngine(s *Server) *trigger.Engine {
	o := s.opts.Triggers
	if o.NodeName == "" {
		o.NodeName = s.opts.NodeName
	}
	return trigger.New(trigger.Deps{
		Store:            s.st,
		Prepare:          trigger.RegistryPreparer(s.reg),
		Logger:           s.log,
		Metrics:          engineMetrics{s.metrics},
		Tracer:           s.tracer,
		HTTPClient:       s.host.HostHTTPClient(),
		GuestError:       func(e *abi.Error) error { return pluginProblem(e) },
		Describe:         func(err error) (string, string) { p := toProblem(err); return p.Code, p.Detail },
		NewCorrelationID: newCorrelationID,
	}, o)
}

// stopTriggers stops the trigger engine and waits (bounded) for its work in flight.
func (s *Server) stopTriggers(ctx context.Context) {
	s.trig.Stop()
	ctx, cancel := context.WithTimeout(ctx, triggerDrainTimeout)
	defer cancel()
	if err := s.trig.Wait(ctx); err != nil {
		s.log.Warn("trigger work still running at shutdown was canceled; it is retried", "err", err)
	}
}

// engineMetrics feeds the engine's counters into the server's /metrics.
type engineMetrics struct{ m *metrics }

func (a engineMetrics) Add(name string, v float64, kv ...string) { a.m.add(name, labels(kv...), v) }

func (a engineMetrics) Observe(name string, d time.Duration, kv ...string) {
	a.m.observe(name, labels(kv...), d)
}
