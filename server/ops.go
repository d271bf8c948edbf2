package server

import (
	"fmt"
	"net/http"
	"strings"
)

// GET /healthz: the process is up.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// GET /readyz: the store is open, no transaction found it damaged, and active connectors are
// loaded.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeProblem(w, r, newProblem(http.StatusServiceUnavailable, "not_ready", "the server is starting or stopping"))
		return
	}
	if err := s.st.Health(r.Context()); err != nil && s.st.Corruptions() == 0 {
		writeProblem(w, r, newProblem(http.StatusServiceUnavailable, codeStoreUnavailable, "the store is unreachable from this node: "+err.Error()))
		return
	}
	if s.st.Corruptions() > 0 {
		// Once a transaction found the file damaged, the server stays unready until an
		// operator has checked and restored the store and restarted it.
		writeProblem(w, r, newProblem(http.StatusServiceUnavailable, codeStoreCorrupt, detailStoreCorrupt))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "connectors_loaded": len(s.reg.Loaded())})
}

// GET /metrics: Prometheus text format. No tenant data: connector and action names only.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var gauges []gauge
	active := 0
	for _, v := range s.reg.Loaded() {
		active++
		_, idle, busy := v.PoolStats()
		gauges = append(gauges,
			gauge{"plugboard_pool_instances", labels("connector", v.Info.Name, "version", v.Info.Version, "state", "idle"), float64(idle)},
			gauge{"plugboard_pool_instances", labels("connector", v.Info.Name, "version", v.Info.Version, "state", "busy"), float64(busy)})
	}
	gauges = append(gauges, gauge{"plugboard_connectors_active", "", float64(active)}, gauge{"plugboard_build_info", buildInfo(), 1})
	gauges = append(gauges, s.resilienceGauges()...)
	gauges = append(gauges, s.canaryGauges(r.Context())...)
	gauges = append(gauges, s.triggerGauges(r.Context())...)
	gauges = append(gauges, s.clusterGauges(r)...)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	s.metrics.write(&b, gauges)
	fmt.Fprintf(&b, "# HELP plugboard_store_corrupt_total Store transactions that found the data file damaged (answered 500 store_corrupt).\n"+
		"# TYPE plugboard_store_corrupt_total counter\nplugboard_store_corrupt_total %d\n", s.st.Corruptions())
	_, _ = w.Write([]byte(b.String()))
}
