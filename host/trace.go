package host

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing: every export call is one span, named after the export (plugboard_invoke,
// plugboard_poll, ...), a child of the span in the caller's context. The outbound requests the
// call makes are its children (package egress), and each carries a traceparent upstream.

// startSpan starts the span of one export call. Attributes are set only on a recording span:
// with tracing off the call pays for no attribute.
func (m *Module) startSpan(ctx context.Context, call *Call, export, action string) (context.Context, trace.Span) {
	ctx, span := m.h.tracer.Start(ctx, export, trace.WithSpanKind(trace.SpanKindInternal))
	if !span.IsRecording() {
		return ctx, span
	}
	span.SetAttributes(
		attribute.String("plugboard.connector", m.manifest.Name),
		attribute.String("plugboard.version", m.manifest.Version))
	if action != "" {
		span.SetAttributes(attribute.String("plugboard.action", action))
	}
	if call.Binding != nil {
		span.SetAttributes(attribute.String("plugboard.connection", call.Binding.ID))
	}
	if call.CorrelationID != "" {
		span.SetAttributes(attribute.String("plugboard.correlation_id", call.CorrelationID))
	}
	return ctx, span
}

// endSpan records what the call did on its span and ends it.
func endSpan(span trace.Span, rep *Report, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if rep != nil {
		span.SetAttributes(
			attribute.Bool("plugboard.instantiated", rep.Instantiated),
			attribute.Float64("plugboard.guest_ms", ms(rep.GuestTime)),
			attribute.Float64("plugboard.host_ms", ms(rep.HostTime)),
			attribute.Int64("plugboard.memory_bytes", int64(rep.MemoryBytes)),
			attribute.Int("plugboard.outbound", len(rep.Outbound)))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }
