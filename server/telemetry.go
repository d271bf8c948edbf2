package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry: OpenTelemetry traces and the context attributes of logs.
//
// Every request except /healthz, /readyz and /metrics gets a server span, named "<METHOD> <route template>" once the router matched
// it ("POST /v1/connectors/{name}/actions/{action}"; just the method when nothing matched). A
// W3C traceparent on the request makes it a child of the caller's span. Action calls add a
// span per guest call and one per outbound request below it (package host), and outbound
// requests carry the traceparent of their span upstream. Spans never hold a path, a query, a
// header value or a request body: those may hold secrets (the /hooks/{token} path does).
//
// With tracing off (the default: no provider installed) spans are no-ops, but a caller's
// traceparent still flows through to the plugin's upstream requests.

// tracerName is the instrumentation scope of the server's spans.
const tracerName = "github.com/plugboard/plugboard/server"

// propagator reads and writes W3C traceparent and tracestate headers.
var propagator = propagation.TraceContext{}

// withTrace starts the server span of a request, continuing the caller's trace when the request
// carries a traceparent.
func (s *Server) withTrace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics": // probes and scrapes: no span every few seconds
			next.ServeHTTP(w, r)
			return
		}
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
		if !span.IsRecording() {
			span.End()
			if trace.SpanContextFromContext(ctx).IsValid() {
				r = r.WithContext(ctx) // the caller's trace context, for outbound requests
			}
			next.ServeHTTP(w, r)
			return
		}
		span.SetAttributes(attribute.String("http.request.method", r.Method))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			span.SetAttributes(attribute.Int("http.response.status_code", status),
				attribute.String("plugboard.correlation_id", w.Header().Get("X-Correlation-ID")))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			span.End()
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// nameSpans names the server span of every request the routers match after its route
// template, and records the template as http.route.
func (s *Server) nameSpans(routers ...*mux.Router) {
	for _, rt := range routers {
		rt.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
					if route := mux.CurrentRoute(r); route != nil {
						if tmpl, err := route.GetPathTemplate(); err == nil {
							span.SetName(r.Method + " " + tmpl)
							span.SetAttributes(attribute.String("http.route", tmpl))
						}
					}
				}
				next.ServeHTTP(w, r)
			})
		})
	}
}

// injectTrace writes the trace context of ctx (the span in it, or the caller's remote span)
// into h as W3C traceparent and tracestate headers, replacing any there; without a valid trace
// context it leaves h as it is. Trigger deliveries use it so that a subscriber sees the trace
// of the poll or webhook that produced the event.
func (s *Server) injectTrace(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	h.Del("Traceparent")
	h.Del("Tracestate")
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// startSpan starts a span of the server's tracer, for work outside a request (trigger polls
// and deliveries). End it.
func (s *Server) startSpan(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return s.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// TracerProviderFromEnv returns the tracer provider the standard OpenTelemetry environment
// variables ask for, and its shutdown (which flushes the spans still buffered).
//
// Tracing is off by default: the result is nil (and shutdown a no-op) unless
// OTEL_TRACES_EXPORTER is "otlp", or it is unset and OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none
// always turn it off. Spans go to an OTLP/HTTP (protobuf) exporter configured by the
// OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout, compression, certificates);
// OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_* tune sampling and batching; OTEL_SERVICE_NAME
// (default "plugboard") and OTEL_RESOURCE_ATTRIBUTES describe the process. An exporter or a
// protocol other than OTLP over HTTP is an error, so a misconfiguration is not silent.
func TracerProviderFromEnv(ctx context.Context) (trace.TracerProvider, func(context.Context) error, error) {
	return tracerProviderFromEnv(ctx, os.Getenv)
}

func tracerProviderFromEnv(ctx context.Context, getenv func(string) string) (trace.TracerProvider, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, off, nil
	}
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "none":
		return nil, off, nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, off, nil
		}
	case "otlp":
	default:
		return nil, off, fmt.Errorf("OTEL_TRACES_EXPORTER=%s is not supported: Plugboard exports traces with otlp (or none)", exp)
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return nil, off, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported: Plugboard exports traces with http/protobuf", proto)
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, off, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "plugboard"), attribute.String("service.version", buildVersion())),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, off, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// buildVersion is the module version of the binary ("(devel)" for a source build).
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// buildInfo returns the labels of plugboard_build_info: version, VCS revision and Go version.
func buildInfo() string {
	version, revision, goVersion := "(devel)", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	return labels("version", version, "revision", revision, "goversion", goVersion)
}

// contextHandler adds a request's correlation_id (unless the record has one) and, when the
// request is traced, its trace_id and span_id to records logged with the request's context.
type contextHandler struct{ slog.Handler }

func withContextAttrs(h slog.Handler) slog.Handler {
	if _, ok := h.(contextHandler); ok {
		return h
	}
	return contextHandler{h}
}

func (h contextHandler) Handle(ctx context.Context, rec slog.Record) error {
	if id := correlationID(ctx); id != "" {
		has := false
		rec.Attrs(func(a slog.Attr) bool {
			has = a.Key == "correlation_id"
			return !has
		})
		if !has {
			rec.AddAttrs(slog.String("correlation_id", id))
		}
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		rec.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// traceparentOf returns the W3C traceparent of the span in ctx, "" without a valid one.
func traceparentOf(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}
