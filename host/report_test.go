package host

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

var (
	pluginsMu    sync.Mutex
	pluginsBuilt = map[string][]byte{}
)

// buildSpy builds plugins/testdata/spy for wasip1 once per test binary.
func buildSpy(t *testing.T) []byte { return buildTestPlugin(t, "spy") }

// buildTestPlugin builds plugins/testdata/<name> for wasip1 once per test binary.
func buildTestPlugin(t *testing.T, name string) []byte {
	t.Helper()
	pluginsMu.Lock()
	defer pluginsMu.Unlock()
	if b, ok := pluginsBuilt[name]; ok {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./plugins/testdata/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the %s plugin: %v\n%s", name, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pluginsBuilt[name] = b
	return b
}

// TestReportMeasuresTheCall: a call's report splits its time between the guest and the host
// imports, gives the instance's memory, and its spans form one trace from the caller's span
// through the guest call to the upstream request, which receives that trace's traceparent.
func TestReportMeasuresTheCall(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h, err := New(Config{TracerProvider: tp, Egress: EgressConfig{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	wasm := buildSpy(t)
	ctx := context.Background()
	man, err := h.Inspect(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.Load(ctx, wasm, man, "sha256:test")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)

	b := &Binding{ID: "c1", Params: map[string]any{"base_url": up.URL}, Origins: []string{up.URL}}
	ctx, parent := tp.Tracer("test").Start(ctx, "request")
	input, _ := json.Marshal(map[string]any{"url": up.URL + "/ok", "headers": map[string]string{"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}})
	res, rep, err := m.Invoke(ctx, &Call{Binding: b, CorrelationID: "c_t"}, "fetch", input)
	parent.End()
	if err != nil || res.Error != nil {
		t.Fatalf("fetch: %v %+v", err, res)
	}
	if !rep.Instantiated || rep.GuestTime <= 0 || rep.HostTime <= 0 || rep.GuestTime+rep.HostTime > rep.Duration {
		t.Errorf("times: instantiated %v guest %s host %s duration %s", rep.Instantiated, rep.GuestTime, rep.HostTime, rep.Duration)
	}
	if rep.MemoryBytes < 1<<20 || rep.MemoryGrowth != rep.MemoryBytes {
		t.Errorf("memory %d bytes, growth %d: a fresh instance grows from zero to at least 1 MiB", rep.MemoryBytes, rep.MemoryGrowth)
	}
	if len(rep.Outbound) != 1 || rep.Outbound[0].Status != 200 || rep.Outbound[0].BytesIn != int64(len(`{"ok":true}`)) {
		t.Errorf("outbound = %+v", rep.Outbound)
	}

	// A warm call reuses the instance: no instantiation, and memory no smaller than before.
	_, rep2, err := m.Invoke(context.Background(), &Call{Binding: b}, "fetch", input)
	if err != nil || rep2.Instantiated || rep2.MemoryBytes < rep.MemoryBytes || rep2.MemoryGrowth > rep2.MemoryBytes-rep.MemoryBytes {
		t.Errorf("warm call: %v, instantiated %v, memory %d (was %d), growth %d", err, rep2.Instantiated, rep2.MemoryBytes, rep.MemoryBytes, rep2.MemoryGrowth)
	}

	// One trace: request -> plugboard_invoke -> GET, and the upstream saw the GET span's
	// traceparent, not the one the guest tried to set.
	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == parent.SpanContext().TraceID() {
			spans[s.Name()] = s
		}
	}
	invoke, get := spans["plugboard_invoke"], spans["GET"]
	if invoke == nil || get == nil {
		t.Fatalf("spans of the trace: %v", spans)
	}
	if invoke.Parent().SpanID() != parent.SpanContext().SpanID() || get.Parent().SpanID() != invoke.SpanContext().SpanID() {
		t.Errorf("span tree: invoke's parent %s (want %s), GET's parent %s (want %s)", invoke.Parent().SpanID(), parent.SpanContext().SpanID(), get.Parent().SpanID(), invoke.SpanContext().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range append(invoke.Attributes(), get.Attributes()...) {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{"plugboard.connector": "spy", "plugboard.action": "fetch", "plugboard.instantiated": "true",
		"http.request.method": "GET", "plugboard.origin": up.URL, "http.response.status_code": "200", "plugboard.retries": "0"} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := "00-" + get.SpanContext().TraceID().String() + "-" + get.SpanContext().SpanID().String() + "-01"
	if len(seen) != 2 || seen[0] != want {
		t.Errorf("upstream saw traceparent %q, want %q first", seen, want)
	}
	// The second call had no parent: it started a trace of its own, and the guest's header
	// was replaced again.
	if len(seen) == 2 && (strings.HasPrefix(seen[1], "00-1111") || strings.Contains(seen[1], parent.SpanContext().TraceID().String())) {
		t.Errorf("the call without a parent sent traceparent %q", seen[1])
	}
}
