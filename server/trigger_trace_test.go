package server

import (
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A push delivery continues the trace of the poll that produced its event: the subscriber
// gets a traceparent of the poll's trace, naming the delivery span, and the poll's own
// upstream request belongs to the same trace.
func TestTriggerDeliveriesCarryThePollTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	f := newFeed(t)
	ts := triggerServer(t, f, func(o *Options) { o.TracerProvider = tp })
	rc := newReceiver(t)
	sub := ts.pushTo(rc, "items", nil)["id"].(string)
	items := f.add(1)
	eventually(t, 10*time.Second, "the delivery", func() bool { return len(rc.events()) == 1 })
	checkEvents(t, sub, rc.events(), items)
	rc.mu.Lock()
	h := rc.headers[0]
	rc.mu.Unlock()
	parts := strings.Split(h.Get("Traceparent"), "-")
	if len(parts) != 4 {
		t.Fatalf("delivery traceparent = %q", h.Get("Traceparent"))
	}
	if h.Get("X-Correlation-ID") == "" {
		t.Error("the delivery has no X-Correlation-ID")
	}
	var poll, deliver sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "the poll and delivery spans", func() bool {
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() != parts[1] {
				continue
			}
			switch {
			case s.Name() == "poll trig.items":
				poll = s
			case s.Name() == "deliver trig.items" && s.SpanContext().SpanID().String() == parts[2]:
				deliver = s
			}
		}
		return poll != nil && deliver != nil
	})
	if deliver.Parent().SpanID() != poll.SpanContext().SpanID() {
		t.Fatalf("the delivery span's parent is %s, want the poll span %s", deliver.Parent().SpanID(), poll.SpanContext().SpanID())
	}
	children := 0
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() == poll.SpanContext().SpanID() && s.Name() == "plugboard_poll" {
			children++
		}
	}
	if children == 0 {
		t.Fatal("the poll span has no plugboard_poll guest-call child")
	}
}
