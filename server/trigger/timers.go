package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// fireTimers fires the due plugin timers (plugboard_timer set), each at most once at a time.
// Only the holder of the timers lease calls it.
func (e *Engine) fireTimers(ctx context.Context, now time.Time) {
	due, err := e.st.DueTimers(ctx, now, 100)
	if err != nil {
		return
	}
	for _, tm := range due {
		e.mu.Lock()
		r := e.timers[tm.ID]
		e.mu.Unlock()
		if r.next.After(now) || !e.begin("timer:"+tm.ID) {
			continue
		}
		e.spawn(func() {
			defer e.end("timer:" + tm.ID)
			e.fire(e.work, tm)
		})
	}
}

// maxTimerAttempts is how often a timer whose firing fails in the host (trap, timeout, version
// not loaded) is tried before it is dropped. A guest error answer counts as fired.
const maxTimerAttempts = 5

// timerReauthRecheck is how often a due timer whose connection needs consent again is looked
// at again.
const timerReauthRecheck = 30 * time.Second

// codeNeedsReauth is the outcome label of a timer paused for consent (API.md's code).
const codeNeedsReauth = "needs_reauth"

// fire sends one timer to plugboard_on_timer and deletes it once the plugin answered (at least
// once: see the package documentation). It fires only after renewing the timers lease, so a
// node that lost the lease to another does not fire what the other fires.
func (e *Engine) fire(ctx context.Context, tm storage.Timer) {
	if !e.confirm(ctx, timersLease) {
		return
	}
	corr := e.newCorr()
	err := func() error {
		call, err := e.prepare(ctx, registry.CallSpec{Connector: tm.Connector, Connection: tm.Connection, CorrelationID: corr})
		if err != nil {
			return err
		}
		defer call.Release()
		payload := tm.Payload
		if len(payload) == 0 {
			payload = json.RawMessage("null")
		}
		res, _, err := call.OnTimer(ctx, abi.TimerEvent{Name: tm.Name, Payload: payload})
		if err != nil {
			return err
		}
		if res.Error != nil {
			e.log.Warn("plugin timer handler answered an error", "connector", tm.Connector, "timer", tm.Name, "code", res.Error.Code, "message", res.Error.Message, "correlation_id", corr)
		}
		return nil
	}()
	if errors.Is(err, registry.ErrNeedsReauth) {
		// Paused like polls while the connection waits for consent: kept, not counted as an
		// attempt, and looked at again later.
		e.mu.Lock()
		r := e.timers[tm.ID]
		r.next = time.Now().Add(timerReauthRecheck)
		e.timers[tm.ID] = r
		e.mu.Unlock()
		e.metrics.Add("plugboard_timers_fired_total", 1, "connector", tm.Connector, "outcome", codeNeedsReauth)
		return
	}
	outcome := "ok"
	drop := err == nil
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		outcome = e.code(err)
		e.mu.Lock()
		r := e.timers[tm.ID]
		r.attempts++
		r.next = time.Now().Add(time.Second << min(r.attempts, 8))
		e.timers[tm.ID] = r
		e.mu.Unlock()
		drop = r.attempts >= maxTimerAttempts || errors.Is(err, registry.ErrConnectorNotFound) || errors.Is(err, registry.ErrConnectionNotFound) ||
			errors.Is(err, registry.ErrConnectionNotAllowed) || errors.Is(err, registry.ErrConnectionRequired)
		e.log.Warn("firing a plugin timer failed", "connector", tm.Connector, "timer", tm.Name, "attempt", r.attempts, "dropped", drop, "err", err, "correlation_id", corr)
	}
	e.metrics.Add("plugboard_timers_fired_total", 1, "connector", tm.Connector, "outcome", outcome)
	if drop {
		e.mu.Lock()
		delete(e.timers, tm.ID)
		e.mu.Unlock()
		// The firing is done: delete it even when the engine is stopping meanwhile.
		if err := e.st.DeleteTimer(context.WithoutCancel(ctx), tm.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			e.log.Error("deleting a fired timer", "timer", tm.ID, "err", err)
		}
	}
}
