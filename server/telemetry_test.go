package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceFromRequestToUpstream: a request carrying a traceparent gives one trace: the
// caller's span -> the server span (named after the route) -> the guest call -> the outbound
// request, whose upstream receives a traceparent of that trace naming the outbound span.
func TestTraceFromRequestToUpstream(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := newRecorder(t, func(mux *http.ServeMux) {
		mux.HandleFunc("/traced", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Get("Traceparent"))
			mu.Unlock()
			w.Write([]byte(`{"ok":true}`))
		})
	})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ts := startServer(t, func(o *Options) { o.TracerProvider = tp })
	ts.must(201, ts.upload("spy"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "spy", "connectors": []string{"spy"}, "params": map[string]any{"base_url": up.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "k"},
	}))

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := ts.must(200, ts.do("POST", "/v1/connectors/spy/actions/fetch",
		map[string]any{"connection": "spy", "input": map[string]any{"url": up.URL + "/traced"}},
		"traceparent", "00-"+traceID+"-"+callerSpan+"-01"))
	if got := r.Header.Get("X-Correlation-ID"); got != traceID {
		t.Errorf("correlation id %q, want the trace id", got)
	}

	// The server span ends after the response is written: wait for it.
	var spans []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans = nil
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == traceID {
				spans = append(spans, s)
			}
		}
		if len(spans) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	srv, guest, out := byName["POST /v1/connectors/{name}/actions/{action}"], byName["plugboard_invoke"], byName["GET"]
	if srv == nil || guest == nil || out == nil {
		names := []string{}
		for n := range byName {
			names = append(names, n)
		}
		t.Fatalf("spans of the trace: %q", names)
	}
	if srv.SpanKind() != trace.SpanKindServer || srv.Parent().SpanID().String() != callerSpan || !srv.Parent().IsRemote() {
		t.Errorf("server span: kind %v, parent %s", srv.SpanKind(), srv.Parent().SpanID())
	}
	if guest.Parent().SpanID() != srv.SpanContext().SpanID() || out.Parent().SpanID() != guest.SpanContext().SpanID() {
		t.Errorf("span tree is not server -> guest -> outbound")
	}
	want := map[string]map[string]string{
		"server":   {"http.route": "/v1/connectors/{name}/actions/{action}", "http.response.status_code": "200", "plugboard.outcome": "ok", "plugboard.correlation_id": traceID},
		"guest":    {"plugboard.connector": "spy", "plugboard.version": "1.0.0", "plugboard.action": "fetch", "plugboard.instantiated": "true", "plugboard.connection": "spy"},
		"outbound": {"http.request.method": "GET", "plugboard.origin": up.URL, "http.response.status_code": "200", "plugboard.retries": "0"},
	}
	for name, s := range map[string]sdktrace.ReadOnlySpan{"server": srv, "guest": guest, "outbound": out} {
		got := map[string]string{}
		for _, kv := range s.Attributes() {
			got[string(kv.Key)] = kv.Value.Emit()
		}
		for k, v := range want[name] {
			if got[k] != v {
				t.Errorf("%s span: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if tp := "00-" + traceID + "-" + out.SpanContext().SpanID().String() + "-01"; len(seen) != 1 || seen[0] != tp {
		t.Errorf("the upstream saw traceparent %q, want %q", seen, tp)
	}
}

// TestTraceparentFlowsWithTracingOff: without a tracer provider no span is recorded, but the
// caller's trace id still reaches the upstream.
func TestTraceparentFlowsWithTracingOff(t *testing.T) {
	var mu sync.Mutex
	var seen string
	up := newRecorder(t, func(mux *http.ServeMux) {
		mux.HandleFunc("/traced", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = r.Header.Get("Traceparent")
			mu.Unlock()
		})
	})
	ts := startServer(t, nil)
	ts.must(201, ts.upload("spy"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "spy", "connectors": []string{"spy"}, "params": map[string]any{"base_url": up.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "k"},
	}))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ts.must(200, ts.do("POST", "/v1/connectors/spy/actions/fetch",
		map[string]any{"connection": "spy", "input": map[string]any{"url": up.URL + "/traced"}}, "traceparent", parent))
	mu.Lock()
	defer mu.Unlock()
	if seen != parent {
		t.Errorf("upstream saw traceparent %q, want the caller's %q", seen, parent)
	}
}

func TestTracerProviderFromEnv(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		on   bool
		err  string
	}{
		{"off by default", nil, false, ""},
		{"an endpoint turns it on", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{"a traces endpoint turns it on", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, ""},
		{"the otlp exporter turns it on", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, ""},
		{"OTEL_SDK_DISABLED wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false, ""},
		{"exporter none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, false, ""},
		{"another exporter is an error", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, "zipkin"},
		{"grpc is an error", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "grpc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp, shutdown, err := tracerProviderFromEnv(context.Background(), func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one naming %s", err, tt.err)
				}
				return
			}
			if err != nil || (tp != nil) != tt.on {
				t.Fatalf("provider %v, err %v; want on=%v", tp, err, tt.on)
			}
			if err := shutdown(context.Background()); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

// TestLogsCarryCorrelation: records logged with a request's context get its correlation id and
// trace ids, in JSON.
func TestLogsCarryCorrelation(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(withContextAttrs(slog.NewJSONHandler(&buf, nil)))
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.WithValue(context.Background(), correlationKey, "c_abc"), "x")
	defer span.End()
	log.InfoContext(ctx, "hello")
	log.InfoContext(ctx, "explicit", "correlation_id", "c_given")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var first, second map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first["correlation_id"] != "c_abc" || first["trace_id"] != span.SpanContext().TraceID().String() || first["span_id"] == nil {
		t.Errorf("first record %v", first)
	}
	if second["correlation_id"] != "c_given" || strings.Count(lines[1], "correlation_id") != 1 {
		t.Errorf("a record with its own correlation_id: %s", lines[1])
	}
}

// BenchmarkActionCallTraced is BenchmarkActionCall with tracing on: every request sampled,
// spans batched to an exporter that drops them, so the figure is the cost of making spans and
// injecting traceparent, not of shipping them.
func BenchmarkActionCallTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	up := benchUpstream()
	b.Cleanup(up.Close)
	ts := startServer(b, func(o *Options) { o.TracerProvider = tp })
	ts.must(201, ts.upload("http"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "bench", "connectors": []string{"http"}, "params": map[string]any{"base_url": up.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "k"},
	}))
	benchAction(b, ts)
}

// BenchmarkActionCallNoInvocationLog is BenchmarkActionCall with the invocation log off, to
// isolate its cost.
func BenchmarkActionCallNoInvocationLog(b *testing.B) {
	up := benchUpstream()
	b.Cleanup(up.Close)
	ts := startServer(b, func(o *Options) { o.InvocationRetention = -1 })
	ts.must(201, ts.upload("http"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "bench", "connectors": []string{"http"}, "params": map[string]any{"base_url": up.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "k"},
	}))
	benchAction(b, ts)
}
