package host

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
)

// Plugin logging: Extism log_* calls and WASI stdout/stderr are captured per call, capped at
// Config.MaxLogBytes, and forwarded to the host logger tagged with connector, version,
// connection and correlation id.

type atomicCall struct{ p atomic.Pointer[callState] }

func (a *atomicCall) Load() *callState    { return a.p.Load() }
func (a *atomicCall) Store(cs *callState) { a.p.Store(cs) }

// logWriter routes a WASI stream of an instance to the call it serves.
type logWriter struct {
	inst  *instance
	level string
}

func (w logWriter) Write(p []byte) (int, error) {
	if cs := w.inst.cur.Load(); cs != nil {
		for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			cs.log(w.level, line)
		}
	}
	return len(p), nil
}

// log captures one plugin log line for the call's report and the host log.
func (cs *callState) log(level, msg string) {
	cs.mu.Lock()
	max := cs.m.h.cfg.MaxLogBytes
	if cs.logBytes+len(msg) > max {
		cs.report.LogsTruncated = true
		cs.mu.Unlock()
		return
	}
	cs.logBytes += len(msg)
	cs.report.Logs = append(cs.report.Logs, LogLine{Level: level, Message: msg})
	cs.mu.Unlock()

	lvl := slog.LevelInfo
	switch level {
	case "error":
		lvl = slog.LevelError
	case "warn":
		lvl = slog.LevelWarn
	case "debug", "trace":
		lvl = slog.LevelDebug
	}
	man := cs.m.manifest
	cs.m.h.log.Log(context.Background(), lvl, msg, "source", "plugin", "connector", man.Name, "version", man.Version,
		"connection", cs.connectionID(), "correlation_id", cs.correlationID())
}

func (cs *callState) correlationID() string {
	if cs.call == nil {
		return ""
	}
	return cs.call.CorrelationID
}

// sawOutOfMemory reports whether the guest runtime said it ran out of memory (Go prints
// "fatal error: out of memory" before it aborts).
func (cs *callState) sawOutOfMemory() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, l := range cs.report.Logs {
		if strings.Contains(l.Message, "out of memory") {
			return true
		}
	}
	return false
}
