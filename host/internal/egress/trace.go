package egress

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// propagator writes the W3C traceparent and tracestate headers of outbound requests.
var propagator = propagation.TraceContext{}

// startHop starts the client span of one hop (a request and its retries), a child of the
// plugin call's span.
func (k *call) startHop(method, origin string) {
	k.endHop(Outbound{}) // a hop left open by a path that did not record it
	_, k.hop = k.c.tracer.Start(k.parent, method, trace.WithSpanKind(trace.SpanKindClient))
	if k.hop.IsRecording() {
		k.hop.SetAttributes(attribute.String("http.request.method", method), attribute.String("plugboard.origin", origin))
	}
}

// endHop records what a hop did on its span and ends it. It never names a path, a query or a
// header: those may hold secrets.
func (k *call) endHop(o Outbound) {
	span := k.hop
	if span == nil {
		return
	}
	k.hop = nil
	if span.IsRecording() && o.Method != "" {
		if o.Status > 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", o.Status))
		}
		span.SetAttributes(
			attribute.Int("plugboard.retries", o.Retries),
			attribute.Int64("plugboard.bytes_in", o.BytesIn),
			attribute.Int64("plugboard.bytes_out", o.BytesOut))
		if o.Policy != "" {
			span.SetAttributes(attribute.String("plugboard.policy", o.Policy))
		}
		switch {
		case o.Err != "":
			code, _, _ := strings.Cut(o.Err, ":")
			span.SetAttributes(attribute.String("error.type", code))
			span.SetStatus(codes.Error, code)
		case o.Status >= 400: // a client span's error, as OpenTelemetry's HTTP conventions have it
			span.SetStatus(codes.Error, http.StatusText(o.Status))
		}
	}
	span.End()
}

// injectTrace sets the traceparent (and tracestate) of the hop in progress on h, replacing any
// the guest set; without a valid trace context it leaves h as it is.
func (k *call) injectTrace(h http.Header) {
	ctx := k.parent
	if k.hop != nil {
		ctx = trace.ContextWithSpan(ctx, k.hop)
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	delete(h, "Traceparent")
	delete(h, "Tracestate")
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}
