package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
)

// Usage receipts and the invocation log (issue 7, item 3).
//
// Every action call, from the HTTP API or an MCP tools/call, ends in one invocation record:
// what ran (connector, version, action, connection), how it ended (outcome: "ok" or the error
// code), its wall time, the guest's share of it, the instance's memory, every outbound request
// (method, origin, status, duration, bytes, retries) and the plugin's log lines (capped). Calls
// refused before reaching the guest (unknown connector, invalid input, ...) are recorded too,
// with what was known.
//
// The record is queued before the call's response is written and stored in bbolt by one
// background writer, which collects records for 100 ms (or 256 of them) and commits them in one
// transaction: one fsync per batch, not per call, which measured 0.4-0.6 ms per call on the
// 2-core benchmark machine when every record was its own transaction. A record still queued is
// served from memory, so GET /v1/invocations/{id} after the response always finds it; a crash
// loses at most the last 100 ms of records (they are diagnostics, not acknowledged writes). The queue is bounded: when the disk falls behind, calls wait to
// enqueue rather than drop records. Records are kept for Options.InvocationRetention (24 h) and
// at most Options.MaxInvocations (100 000), pruned in the background.
//
// HTTP action responses (success and error) carry the receipt in one header:
//
//	X-Plugboard-Usage: wall_ms=12.3, guest_ms=1.2, host_ms=10.8, mem_peak_kib=2112, outbound=1, retries=0, bytes_in=52, bytes_out=0, instantiated=0
//
// comma-separated key=value pairs, in this order, all numbers: wall_ms the whole call as the
// server ran it (resolution, validation, waiting for an instance, the guest); guest_ms the wall
// time the guest's own code ran (the export call minus host imports, host.Report.GuestTime);
// host_ms the time inside Plugboard's host imports (network included); mem_peak_kib the
// instance's linear memory after the call (its peak: Wasm memory never shrinks); outbound the
// requests sent or refused, retries their retries, bytes_in and bytes_out their body bytes;
// instantiated 1 when the call paid for a new instance. Clients must ignore keys they do not
// know: more may be added.

const (
	defaultInvocationRetention = 24 * time.Hour
	defaultMaxInvocations      = 100_000
	// invocationQueue bounds the records waiting for the writer.
	invocationQueue = 4096
	// invocationFlush is how long the writer collects records before it commits them.
	invocationFlush = 100 * time.Millisecond
	// maxLoggedLines and maxLoggedBytes cap the plugin log lines one record keeps (the host
	// captures up to host.Config.MaxLogBytes per call; the record keeps the first lines).
	maxLoggedLines = 100
	maxLoggedBytes = 16 << 10
)

// invocation is one invocation record, as GET /v1/invocations/{correlation_id} answers it.
// It is not modified once queued.
type invocation struct {
	CorrelationID string  `json:"correlation_id"`
	Connector     string  `json:"connector"`
	Version       string  `json:"version"`
	Action        string  `json:"action"`
	Connection    *string `json:"connection"` // null for a call without one
	// Caller is the id of the key that made the call; "" for calls authenticated otherwise (an
	// MCP server's own token).
	Caller string `json:"caller,omitempty"`
	// Role is how the version was chosen: active, canary or pinned ("" when the call did not
	// get that far).
	Role       string    `json:"role,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS float64   `json:"duration_ms"`
	// Outcome is "ok" or the error code of the call's problem.
	Outcome string `json:"outcome"`
	// Error is the problem the caller got (code, source, detail), for failed calls.
	Error *invocationError `json:"error,omitempty"`
	// GuestMS, HostMS, MemoryPeakBytes and Instantiated come from host.Report (0 and false
	// when the guest was not called).
	GuestMS         float64              `json:"guest_ms"`
	HostMS          float64              `json:"host_ms"`
	MemoryPeakBytes uint64               `json:"memory_peak_bytes"`
	Instantiated    bool                 `json:"instantiated"`
	Outbound        []invocationOutbound `json:"outbound"`
	Logs            []host.LogLine       `json:"logs"`
	// LogsTruncated is set when the host's per-call cap or the record's cap dropped lines.
	LogsTruncated bool `json:"logs_truncated,omitempty"`
}

// invocationError is the problem a failed call answered.
type invocationError struct {
	Code   string `json:"code"`
	Source string `json:"source"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// invocationOutbound is one outbound request (one hop) of a call.
type invocationOutbound struct {
	Method     string  `json:"method"`
	Origin     string  `json:"origin"`
	Status     int     `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	BytesIn    int64   `json:"bytes_in"`
	BytesOut   int64   `json:"bytes_out"`
	Retries    int     `json:"retries"`
	// Policy names a host policy that answered in the upstream's place (rate_limited,
	// circuit_open); Error is the error code and message of a hop that failed or was refused.
	Policy string `json:"policy,omitempty"`
	Error  string `json:"error,omitempty"`
}

// newInvocation builds the record of a finished call. rep may be nil (the guest was not
// called); err nil means the call answered output.
func newInvocation(c actionCall, version, role string, rep *host.Report, start time.Time, wall time.Duration, err error) *invocation {
	inv := &invocation{CorrelationID: c.CorrelationID, Connector: c.Connector, Version: version, Action: c.Action,
		Role: role, StartedAt: start.UTC().Round(0), DurationMS: millis(wall), Outcome: "ok",
		Outbound: []invocationOutbound{}, Logs: []host.LogLine{}}
	if c.Connection != "" {
		conn := c.Connection
		inv.Connection = &conn
	}
	if err != nil {
		p := toProblem(err)
		inv.Outcome = p.Code
		inv.Error = &invocationError{Code: p.Code, Source: p.Source, Status: p.Status, Detail: p.Detail}
	}
	if rep == nil {
		return inv
	}
	inv.GuestMS, inv.HostMS = millis(rep.GuestTime), millis(rep.HostTime)
	inv.MemoryPeakBytes, inv.Instantiated = rep.MemoryBytes, rep.Instantiated
	for _, o := range rep.Outbound {
		inv.Outbound = append(inv.Outbound, invocationOutbound{Method: o.Method, Origin: o.Origin, Status: o.Status,
			DurationMS: millis(o.Duration), BytesIn: o.BytesIn, BytesOut: o.BytesOut, Retries: o.Retries, Policy: o.Policy, Error: o.Err})
	}
	inv.LogsTruncated = rep.LogsTruncated
	n := 0
	for _, l := range rep.Logs {
		if len(inv.Logs) == maxLoggedLines || n+len(l.Message) > maxLoggedBytes {
			inv.LogsTruncated = true
			break
		}
		n += len(l.Message)
		inv.Logs = append(inv.Logs, l)
	}
	return inv
}

// usageHeader renders the X-Plugboard-Usage receipt of a record.
func (inv *invocation) usageHeader() string {
	var retries int
	var in, out int64
	for _, o := range inv.Outbound {
		retries += o.Retries
		in += o.BytesIn
		out += o.BytesOut
	}
	inst := int64(0)
	if inv.Instantiated {
		inst = 1
	}
	b := make([]byte, 0, 160)
	b = append(b, "wall_ms="...)
	b = strconv.AppendFloat(b, inv.DurationMS, 'f', -1, 64)
	b = append(b, ", guest_ms="...)
	b = strconv.AppendFloat(b, inv.GuestMS, 'f', -1, 64)
	b = append(b, ", host_ms="...)
	b = strconv.AppendFloat(b, inv.HostMS, 'f', -1, 64)
	for _, kv := range [...]struct {
		key string
		v   int64
	}{{"mem_peak_kib", int64(inv.MemoryPeakBytes >> 10)}, {"outbound", int64(len(inv.Outbound))}, {"retries", int64(retries)},
		{"bytes_in", in}, {"bytes_out", out}, {"instantiated", inst}} {
		b = append(b, ", "...)
		b = append(b, kv.key...)
		b = append(b, '=')
		b = strconv.AppendInt(b, kv.v, 10)
	}
	return string(b)
}

// millis is d in milliseconds, rounded to microseconds.
func millis(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
}

// invocationLog queues records and writes them to the store in batches, and prunes them.
type invocationLog struct {
	st        storage.Store
	log       *slog.Logger
	metrics   *metrics
	retention time.Duration
	max       int

	queue chan *invocation
	done  chan struct{} // closed when the writer has flushed and stopped
	stop  chan struct{} // stops the pruner

	mu      sync.RWMutex // guards closed; read-held while sending on queue, so close never races a send
	closed  bool
	pmu     sync.Mutex               // guards pending
	pending map[string][]*invocation // queued, not yet committed, by correlation id
}

// newInvocationLog starts the writer and the pruner; nil when retention is negative (no log).
func newInvocationLog(st storage.Store, log *slog.Logger, m *metrics, retention time.Duration, maxCount int) *invocationLog {
	if retention < 0 {
		return nil
	}
	if retention == 0 {
		retention = defaultInvocationRetention
	}
	if maxCount <= 0 {
		maxCount = defaultMaxInvocations
	}
	l := &invocationLog{st: st, log: log, metrics: m, retention: retention, max: maxCount,
		queue: make(chan *invocation, invocationQueue), done: make(chan struct{}), stop: make(chan struct{}),
		pending: map[string][]*invocation{}}
	go l.write()
	go l.pruneLoop(min(max(retention/8, time.Second), time.Minute))
	return l
}

// record queues inv for the store. It waits while the queue is full, and drops inv once the
// log is closed.
func (l *invocationLog) record(inv *invocation) {
	if l == nil || inv.CorrelationID == "" {
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return
	}
	l.pmu.Lock()
	l.pending[inv.CorrelationID] = append(l.pending[inv.CorrelationID], inv)
	l.pmu.Unlock()
	l.queue <- inv
}

// write is the writer: it commits what is queued in one transaction per batch, until the
// queue is closed and drained.
func (l *invocationLog) write() {
	defer close(l.done)
	batch := make([]*invocation, 0, 256)
	recs := make([]storage.Invocation, 0, 256)
	for inv := range l.queue {
		// Collect for up to invocationFlush (or a full batch): one fsync then covers every
		// call of that window instead of one each.
		batch = append(batch[:0], inv)
		timer := time.NewTimer(invocationFlush)
	collect:
		for len(batch) < cap(batch) {
			select {
			case inv, ok := <-l.queue:
				if !ok {
					break collect
				}
				batch = append(batch, inv)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		recs = recs[:0]
		for _, inv := range batch {
			doc, err := json.Marshal(inv)
			if err != nil {
				continue // cannot happen: the record holds only marshalable fields
			}
			recs = append(recs, storage.Invocation{CorrelationID: inv.CorrelationID, Time: inv.StartedAt, Document: doc})
		}
		if err := l.st.PutInvocations(context.Background(), recs); err != nil {
			l.metrics.add("plugboard_invocation_log_errors_total", "", 1)
			l.log.Error("writing invocation logs failed; these records are lost", "records", len(recs), "err", err)
		} else {
			l.metrics.add("plugboard_invocation_log_records_total", "", float64(len(recs)))
		}
		l.pmu.Lock()
		for _, inv := range batch {
			q := l.pending[inv.CorrelationID]
			if i := slices.Index(q, inv); i >= 0 {
				q = slices.Delete(q, i, i+1)
			}
			if len(q) == 0 {
				delete(l.pending, inv.CorrelationID)
			} else {
				l.pending[inv.CorrelationID] = q
			}
		}
		l.pmu.Unlock()
	}
}

// lookup returns the records of a correlation id unexpired at now, newest first: queued
// ones, then stored ones.
func (l *invocationLog) lookup(ctx context.Context, id string, now time.Time) ([]*invocation, error) {
	l.pmu.Lock()
	queued := slices.Clone(l.pending[id])
	l.pmu.Unlock()
	stored, err := l.st.Invocations(ctx, id)
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-l.retention)
	var out []*invocation
	for i := len(queued) - 1; i >= 0; i-- {
		out = append(out, queued[i])
	}
	for i := len(stored) - 1; i >= 0; i-- {
		var inv invocation
		if err := json.Unmarshal(stored[i].Document, &inv); err != nil {
			l.log.Error("skipping a corrupt invocation record", "correlation_id", id, "err", err)
			continue
		}
		// A record both queued and committed (the writer is between the two steps) counts once.
		if !slices.ContainsFunc(queued, func(q *invocation) bool { return q.StartedAt.Equal(inv.StartedAt) && q.Action == inv.Action }) {
			out = append(out, &inv)
		}
	}
	out = slices.DeleteFunc(out, func(inv *invocation) bool { return inv.StartedAt.Before(cutoff) })
	return out, nil
}

// prune deletes the records expired at now and those beyond the count bound.
func (l *invocationLog) prune(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		n, err := l.st.PruneInvocations(ctx, now.Add(-l.retention), l.max)
		total += n
		if err != nil || n < storage.MaxPruneBatch {
			if total > 0 {
				l.metrics.add("plugboard_invocation_log_pruned_total", "", float64(total))
			}
			return total, err
		}
	}
}

func (l *invocationLog) pruneLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if _, err := l.prune(context.Background(), time.Now()); err != nil && !errors.Is(err, storage.ErrClosed) {
				l.log.Warn("pruning invocation logs failed", "err", err)
			}
		}
	}
}

// close stops the pruner, flushes the queue and stops the writer; records arriving later are
// dropped.
func (l *invocationLog) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.queue)
	close(l.stop)
	l.mu.Unlock()
	<-l.done
}

// GET /v1/invocations/{correlation_id}: the newest record of that correlation id the caller
// may see (one whose connector and connection its scopes allow); 404 not_found otherwise, as
// for an id never seen, so a caller learns nothing about calls it may not see.
func (s *Server) getInvocation(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["correlation_id"]
	notFound := problemf(http.StatusNotFound, codeNotFound, "no invocation log for correlation id %q that this key may see (logs are kept %s)", id, s.invocationRetention())
	if s.invlog == nil {
		return problemf(http.StatusNotFound, codeNotFound, "the invocation log is off on this server")
	}
	recs, err := s.invlog.lookup(r.Context(), id, time.Now())
	if err != nil {
		return err
	}
	p := principalFrom(r.Context())
	for _, inv := range recs {
		conn := ""
		if inv.Connection != nil {
			conn = *inv.Connection
		}
		if p.allowsConnector(inv.Connector) && p.allowsConnection(conn) {
			writeJSON(w, http.StatusOK, inv)
			return nil
		}
	}
	return notFound
}

func (s *Server) invocationRetention() string {
	if s.invlog == nil {
		return "0s"
	}
	d := s.invlog.retention.String() // 24h0m0s -> 24h, 1h30m0s -> 1h30m, 2m0s -> 2m
	if strings.HasSuffix(d, "m0s") {
		d = d[:len(d)-2]
	}
	if strings.HasSuffix(d, "h0m") {
		d = d[:len(d)-2]
	}
	return d
}
