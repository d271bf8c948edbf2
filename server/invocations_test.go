package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/plugboard/plugboard/registry"
)

// usageRE is the X-Plugboard-Usage format documented in invocations.go.
var usageRE = regexp.MustCompile(`^wall_ms=[0-9.]+, guest_ms=[0-9.]+, host_ms=[0-9.]+, mem_peak_kib=\d+, outbound=(\d+), retries=(\d+), bytes_in=(\d+), bytes_out=(\d+), instantiated=[01]$`)

// TestInvocationLog: every action call, failed or not, leaves a record readable by its
// correlation id, with its outbound requests and the plugin's log lines, and the response
// carries the usage receipt.
func TestInvocationLog(t *testing.T) {
	up := newRecorder(t, func(mux *http.ServeMux) {
		mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id":7}`))
		})
	})
	ts := startServer(t, nil)
	ts.must(201, ts.upload("spy"))
	ts.must(201, ts.upload("hostile"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "spy", "connectors": []string{"spy"}, "params": map[string]any{"base_url": up.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "k"},
	}))
	get := func(id string) map[string]any {
		t.Helper()
		return ts.must(200, ts.do("GET", "/v1/invocations/"+id, nil)).json(t)
	}

	// A call with one outbound POST: the record has API.md's shape and the right numbers.
	r := ts.must(200, ts.do("POST", "/v1/connectors/spy/actions/fetch", map[string]any{"connection": "spy",
		"input": map[string]any{"url": up.URL + "/created", "method": "POST", "body": "hello"}}, "X-Correlation-ID", "c_fetch"))
	m := usageRE.FindStringSubmatch(r.Header.Get("X-Plugboard-Usage"))
	if m == nil || m[1] != "1" || m[2] != "0" || m[3] != "8" || m[4] != "5" {
		t.Errorf("X-Plugboard-Usage = %q", r.Header.Get("X-Plugboard-Usage"))
	}
	inv := get("c_fetch")
	for _, k := range []string{"correlation_id", "connector", "version", "action", "connection", "started_at", "duration_ms", "outcome", "outbound", "logs",
		"guest_ms", "host_ms", "memory_peak_bytes", "instantiated"} {
		if _, ok := inv[k]; !ok {
			t.Errorf("record has no %q: %v", k, inv)
		}
	}
	if inv["correlation_id"] != "c_fetch" || inv["connector"] != "spy" || inv["version"] != "1.0.0" || inv["action"] != "fetch" ||
		inv["connection"] != "spy" || inv["outcome"] != "ok" || inv["memory_peak_bytes"].(float64) < 1<<20 || inv["caller"] != "key_admin" {
		t.Errorf("record %v", inv)
	}
	if st, err := time.Parse(time.RFC3339Nano, inv["started_at"].(string)); err != nil || time.Since(st) > time.Minute {
		t.Errorf("started_at %v", inv["started_at"])
	}
	out := inv["outbound"].([]any)
	if len(out) != 1 {
		t.Fatalf("outbound %v", out)
	}
	o := out[0].(map[string]any)
	if o["method"] != "POST" || o["origin"] != up.URL || o["status"] != 201.0 || o["bytes_in"] != 8.0 || o["bytes_out"] != 5.0 || o["retries"] != 0.0 || o["duration_ms"].(float64) <= 0 {
		t.Errorf("outbound entry %v", o)
	}
	for _, k := range []string{"path", "url", "headers"} {
		if _, ok := o[k]; ok {
			t.Errorf("outbound entry holds %s: %v", k, o)
		}
	}

	// A plugin that panics: the failure is recorded with its code and the log line it wrote.
	r = ts.do("POST", "/v1/connectors/hostile/actions/panic", map[string]any{}, "X-Correlation-ID", "c_panic")
	if r.Status < 400 || r.Header.Get("X-Plugboard-Usage") == "" {
		t.Errorf("panic answered %d with usage %q", r.Status, r.Header.Get("X-Plugboard-Usage"))
	}
	inv = get("c_panic")
	inv0code := r.code(t)
	logs, _ := inv["logs"].([]any)
	if inv["outcome"] != r.code(t) || inv["error"].(map[string]any)["source"] != "plugin" || len(logs) == 0 ||
		!strings.Contains(logs[0].(map[string]any)["message"].(string), "deliberate panic") || inv["connection"] != nil {
		t.Errorf("record of the panic: %v", inv)
	}

	// A call refused before the guest runs is recorded too.
	r = ts.must(404, ts.do("POST", "/v1/connectors/nope/actions/x", map[string]any{}, "X-Correlation-ID", "c_missing"))
	if inv = get("c_missing"); inv["outcome"] != "connector_not_found" || inv["connector"] != "nope" || len(inv["outbound"].([]any)) != 0 {
		t.Errorf("record of an unknown connector: %v", inv)
	}
	if m := usageRE.FindStringSubmatch(r.Header.Get("X-Plugboard-Usage")); m == nil || m[1] != "0" {
		t.Errorf("usage of a refused call %q", r.Header.Get("X-Plugboard-Usage"))
	}

	// An unknown id is a 404; so is one whose connector or connection the caller may not see.
	if r := ts.do("GET", "/v1/invocations/c_never", nil); r.Status != 404 || r.code(t) != "not_found" {
		t.Errorf("unknown id: %d %s", r.Status, r.Body)
	}
	for _, tt := range []struct {
		name   string
		p      *principal
		status int
	}{
		{"admin", adminPrincipal, 200},
		{"key scoped to the connector and connection", &principal{Role: "invoker", Connectors: []string{"spy"}, Connections: []string{"spy"}}, 200},
		{"key scoped to another connector", &principal{Role: "invoker", Connectors: []string{"github"}}, 404},
		{"key scoped to another connection", &principal{Role: "reader", Connections: []string{"gh-main"}}, 404},
	} {
		req := httptest.NewRequest("GET", "/v1/invocations/c_fetch", nil)
		req = mux.SetURLVars(req.WithContext(withPrincipal(req.Context(), tt.p)), map[string]string{"correlation_id": "c_fetch"})
		w := httptest.NewRecorder()
		if err := ts.srv.getInvocation(w, req); err != nil {
			ts.srv.fail(w, req, err)
		}
		if w.Code != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, w.Code, tt.status)
		}
	}

	// The same calls in the metrics.
	metrics := string(ts.must(200, ts.do("GET", "/metrics", nil)).Body)
	for _, want := range []string{
		`plugboard_build_info{version="`,
		`plugboard_action_errors_total{connector="hostile",version="1.0.0",action="panic",code="` + inv0code + `",source="plugin"} 1`,
		`plugboard_action_errors_total{connector="",version="",action="",code="connector_not_found",source="plugboard"} 1`,
		`plugboard_action_guest_seconds_count{connector="spy",version="1.0.0",action="fetch"} 1`,
		`plugboard_instance_starts_total{connector="spy",version="1.0.0"} 1`,
		`plugboard_egress_bytes_total{connector="spy",origin="` + up.URL + `",direction="out"} 5`,
		`plugboard_egress_duration_seconds_count{connector="spy",origin="` + up.URL + `"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Expiry: a record past the retention is not served, then pruned; the count bound prunes
	// the oldest beyond it.
	l := ts.srv.invlog
	later := time.Now().Add(l.retention + time.Minute)
	if recs, err := l.lookup(context.Background(), "c_fetch", later); err != nil || len(recs) != 0 {
		t.Errorf("expired record still served: %v %v", recs, err)
	}
	l.close() // flushes the queue, so every record is in the store
	if n, err := l.prune(context.Background(), later); err != nil || n != 3 {
		t.Errorf("pruned %d records (%v), want the 3 expired", n, err)
	}
}

// TestInvocationCountBound: beyond MaxInvocations the oldest records are pruned.
func TestInvocationCountBound(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxInvocations = 2 })
	ts.must(201, ts.upload("hostile"))
	for i := range 3 {
		ts.must(200, ts.do("POST", "/v1/connectors/hostile/actions/ok", map[string]any{}, "X-Correlation-ID", "c_"+strconv.Itoa(i)))
	}
	l := ts.srv.invlog
	l.close()
	if n, err := l.prune(context.Background(), time.Now()); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want 1", n, err)
	}
	for i, want := range []int{0, 1, 1} {
		if recs, _ := l.lookup(context.Background(), "c_"+strconv.Itoa(i), time.Now()); len(recs) != want {
			t.Errorf("c_%d has %d records, want %d", i, len(recs), want)
		}
	}
}

// TestInvocationLogMCP: an MCP tools/call runs through runAction and is recorded under the
// correlation id the result's _meta names.
func TestInvocationLogMCP(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.upload("hostile"))
	tok := ts.must(201, ts.do("POST", "/v1/mcp-servers", map[string]any{"name": "hh", "connector": "hostile", "tools": []string{"ok"}, "enabled": true})).json(t)["token"].(string)
	sess := mcpConnect(t, ts.http.URL+"/mcp/hh", tok, nil)
	res, err := sess.CallTool(context.Background(), &mcp.CallToolParams{Name: "ok", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call: %v %+v", err, res)
	}
	cid, _ := res.Meta["dev.plugboard/correlation_id"].(string)
	if cid == "" {
		t.Fatalf("no correlation id in _meta: %v", res.Meta)
	}
	var inv map[string]any
	json.Unmarshal(ts.must(200, ts.do("GET", "/v1/invocations/"+cid, nil)).Body, &inv)
	if inv["connector"] != "hostile" || inv["action"] != "ok" || inv["outcome"] != "ok" {
		t.Errorf("record %v", inv)
	}
}

// TestInvocationLogHammer: records written from many goroutines are readable the moment
// record returns, whether the writer has committed them yet or not, and all are in the store
// after close.
func TestInvocationLogHammer(t *testing.T) {
	st, err := registry.OpenStore(context.Background(), registry.StoreConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := newInvocationLog(st, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics(), 0, 0)
	const workers, each = 8, 60
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("c_%d_%d", w, i)
				l.record(&invocation{CorrelationID: id, Connector: "x", Action: "a", StartedAt: time.Now().UTC(), Outcome: "ok"})
				recs, err := l.lookup(context.Background(), id, time.Now())
				if err != nil || len(recs) != 1 {
					errs <- fmt.Sprintf("%s right after record: %d records, %v", id, len(recs), err)
				}
			}
		}()
	}
	wg.Wait()
	l.close()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for w := range workers {
		for i := range each {
			if recs, err := st.Invocations(context.Background(), fmt.Sprintf("c_%d_%d", w, i)); err != nil || len(recs) != 1 {
				t.Fatalf("c_%d_%d in the store: %d records, %v", w, i, len(recs), err)
			}
		}
	}
	l.record(&invocation{CorrelationID: "late", StartedAt: time.Now()}) // after close: dropped, no panic
}
