package egress

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceparent: the traceparent sent upstream is the hop span's when tracing is on, the
// caller's when only a remote trace context is known, and the guest's own (untouched) when
// there is no trace at all. Each redirect hop is a span of its own.
func TestTraceparent(t *testing.T) {
	const guestTP = "00-11111111111111111111111111111111-2222222222222222-01"
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled, Remote: true})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))

	for _, tt := range []struct {
		name   string
		tracer trace.Tracer
		ctx    context.Context
		want   func(spans []sdktrace.ReadOnlySpan) string
	}{
		{"no trace: the guest's header goes as it is", nil, context.Background(), func([]sdktrace.ReadOnlySpan) string { return guestTP }},
		{"tracing off, caller's trace: the caller's context goes", nil, trace.ContextWithRemoteSpanContext(context.Background(), remote),
			func([]sdktrace.ReadOnlySpan) string {
				return "00-" + remote.TraceID().String() + "-" + remote.SpanID().String() + "-01"
			}},
		{"tracing on: the last hop's span goes", tp.Tracer("t"), trace.ContextWithRemoteSpanContext(context.Background(), remote),
			func(spans []sdktrace.ReadOnlySpan) string {
				last := spans[len(spans)-1]
				return "00-" + remote.TraceID().String() + "-" + last.SpanContext().SpanID().String() + "-01"
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			c, _ := newClient(t, Config{AllowNetworks: loopback, Tracer: tt.tracer})
			g := &Grant{ManifestOrigins: []string{up.origin("127.0.0.1")}}
			req := get(up.url("127.0.0.1", "/redirect?to=/final"))
			req.Headers = map[string]string{"traceparent": guestTP}
			before := len(rec.Ended())
			resp := c.Do(tt.ctx, g, NewBudget(10), req, nil)
			wantOK(t, resp, 200)
			reqs := up.requests()
			spans := rec.Ended()[before:]
			if tt.tracer != nil && (len(spans) != 2 || spans[0].Parent().SpanID() != remote.SpanID() || spans[1].Parent().SpanID() != remote.SpanID()) {
				t.Fatalf("%d spans, want one per hop, children of the caller's span", len(spans))
			}
			if got := reqs[len(reqs)-1].Header.Get("Traceparent"); got != tt.want(spans) {
				t.Errorf("traceparent %q, want %q", got, tt.want(spans))
			}
		})
	}
}
