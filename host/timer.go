package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// plugboard_timer: durable timers and bounded sleep (ABI.md section 5).
//
//   - {"op":"set","name":N,"delay_ms":D,"payload":P} -> {"id":"t_..."}: persisted; fires
//     plugboard_on_timer even after a restart; scoped to (connector, connection); delay at least
//     1 s; at most 100 pending per scope (too_many_requests).
//   - {"op":"cancel","id":ID} -> {}; not_found when no such timer is pending in the scope.
//   - {"op":"sleep","ms":M} -> {}; deadline when the sleep would pass the call deadline.
func (h *Host) importTimer(ctx context.Context, cs *callState, raw []byte) any {
	var req abi.TimerRequest
	if reply, ok := decodeRequest(abi.ImportTimer, raw, &req); !ok {
		return reply
	}
	switch req.Op {
	case abi.TimerSleep:
		d := time.Duration(req.MS) * time.Millisecond
		if req.MS < 0 {
			return errorReply(abi.CodeInvalidRequest, "ms must not be negative")
		}
		if time.Now().Add(d).After(cs.deadline) {
			return errorReply(abi.CodeDeadline, fmt.Sprintf("sleeping %s would pass the call deadline", d))
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return struct{}{}
		case <-ctx.Done():
			return errorReply(abi.CodeDeadline, "the call deadline passed while sleeping")
		}
	case abi.TimerSet, abi.TimerCancel:
	default:
		return errorReply(abi.CodeInvalidRequest, "op must be \"set\", \"cancel\" or \"sleep\"")
	}
	if h.cfg.State == nil {
		return errorReply(abi.CodeDenied, "durable timers are not available on this server")
	}
	man := cs.m.manifest
	if req.Op == abi.TimerCancel {
		err := h.cfg.State.CancelTimer(ctx, man.Name, cs.connectionID(), req.ID)
		if errors.Is(err, ErrNotFound) {
			return errorReply(abi.CodeNotFound, "no pending timer "+req.ID)
		}
		if err != nil {
			return errorReply(abi.CodeInternal, "cancelling timer failed")
		}
		return struct{}{}
	}
	if req.Name == "" {
		return errorReply(abi.CodeInvalidRequest, "name is required")
	}
	if req.DelayMS < abi.TimerMinDelayMS {
		return errorReply(abi.CodeInvalidRequest, fmt.Sprintf("delay_ms must be at least %d", abi.TimerMinDelayMS))
	}
	id, err := h.cfg.State.SetTimer(ctx, Timer{Connector: man.Name, Connection: cs.connectionID(), Name: req.Name,
		FireAt: time.Now().Add(time.Duration(req.DelayMS) * time.Millisecond), Payload: req.Payload})
	switch {
	case errors.Is(err, ErrTooMany):
		return errorReply(abi.CodeTooManyRequests, fmt.Sprintf("at most %d timers may be pending per connection", abi.TimerMaxPerScope))
	case err != nil:
		return errorReply(abi.CodeInternal, "storing the timer failed")
	}
	return abi.TimerResponse{ID: id}
}
