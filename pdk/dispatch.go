package pdk

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/plugboard/plugboard/abi"
)

// Dispatch runs one export of the plugin natively: it is what the plugin's Wasm exports do with
// their input, and what test harnesses such as pdktest call instead of loading Wasm. export is
// one of the abi.Export* names, input the request document, host what the handlers' Context
// reaches (nil for a host that denies everything, as during describe).
//
// The output is the export's JSON document. Expected failures, including a handler's error or
// panic and a request that does not decode, are error documents in the output. err is non-nil
// only when the export itself fails, which makes the Wasm export return non-zero: describe with
// registration errors, or an unknown export.
func Dispatch(host Host, export string, input []byte) (output []byte, err error) {
	return defaultTable.dispatch(host, export, input)
}

func (t *table) dispatch(host Host, export string, input []byte) ([]byte, error) {
	if host == nil {
		host = denyHost{}
	}
	switch export {
	case abi.ExportDescribe:
		m, err := t.manifest()
		if err != nil {
			return nil, err
		}
		return json.Marshal(m)
	case abi.ExportInvoke:
		return json.Marshal(t.invoke(host, input))
	case abi.ExportPoll:
		return json.Marshal(t.poll(host, input))
	case abi.ExportWebhook:
		return json.Marshal(t.webhook(host, input))
	case abi.ExportOnTimer:
		return json.Marshal(t.timer(host, input))
	}
	return nil, fmt.Errorf("pdk: unknown export %q", export)
}

func (t *table) invoke(host Host, input []byte) (res abi.InvokeResult) {
	var req abi.InvokeRequest
	if err := json.Unmarshal(input, &req); err != nil {
		return abi.InvokeResult{Error: errInternalf("the invoke request does not decode: %v", err)}
	}
	a := t.action(req.Action)
	if a == nil {
		return abi.InvokeResult{Error: Errorf(abi.CodeInvalidInput, "unknown action %q", req.Action)}
	}
	ctx := newContext(host, req.Common, input)
	out, err := protect(ctx, func() (json.RawMessage, error) { return a.call(ctx, req.Input) })
	if err != nil {
		return abi.InvokeResult{Error: err}
	}
	return abi.InvokeResult{Output: out}
}

func (t *table) poll(host Host, input []byte) abi.PollResult {
	var req abi.PollRequest
	if err := json.Unmarshal(input, &req); err != nil {
		return abi.PollResult{Error: errInternalf("the poll request does not decode: %v", err)}
	}
	tr := t.trigger(req.Trigger)
	if tr == nil || tr.poll == nil {
		return abi.PollResult{Error: Errorf(abi.CodeInvalidInput, "unknown poll trigger %q", req.Trigger)}
	}
	ctx := newContext(host, req.Common, input)
	res, err := protect(ctx, func() (*abi.PollResult, error) { return tr.poll(ctx, &req) })
	if err != nil {
		return abi.PollResult{Error: err}
	}
	return *res
}

func (t *table) webhook(host Host, input []byte) abi.WebhookResult {
	var req abi.WebhookRequest
	if err := json.Unmarshal(input, &req); err != nil {
		return abi.WebhookResult{Error: errInternalf("the webhook request does not decode: %v", err)}
	}
	tr := t.trigger(req.Trigger)
	if tr == nil || tr.webhook == nil {
		return abi.WebhookResult{Error: Errorf(abi.CodeInvalidInput, "unknown webhook trigger %q", req.Trigger)}
	}
	ctx := newContext(host, req.Common, input)
	res, err := protect(ctx, func() (*abi.WebhookResult, error) { return tr.webhook(ctx, &req) })
	if err != nil {
		return abi.WebhookResult{Error: err}
	}
	return *res
}

func (t *table) timer(host Host, input []byte) abi.TimerResult {
	var ev abi.TimerEvent
	if err := json.Unmarshal(input, &ev); err != nil {
		return abi.TimerResult{Error: errInternalf("the timer event does not decode: %v", err)}
	}
	if t.onTimer == nil {
		return abi.TimerResult{Error: errInternalf("timer %q fired but the plugin registered no pdk.OnTimer handler", ev.Name)}
	}
	ctx := newContext(host, ev.Common, input)
	_, err := protect(ctx, func() (struct{}, error) { return struct{}{}, t.onTimer(ctx, ev) })
	if err != nil {
		return abi.TimerResult{Error: err}
	}
	return abi.TimerResult{}
}

// protect runs f and turns its error into the result's error document (see guestError). A
// panic, in f or while reading its error, becomes an internal error logged with its stack, so
// a bug in a handler is an error document rather than a trap that discards the instance. A
// typed nil *abi.Error counts as no error.
func protect[T any](ctx *Context, f func() (T, error)) (v T, e *abi.Error) {
	defer func() {
		if r := recover(); r != nil {
			ctx.Logf(LogError, "panic in handler: %v\n%s", r, debug.Stack())
			var zero T
			v, e = zero, errInternalf("the connector panicked: %v", r)
		}
	}()
	v, err := f()
	if !failed(err) {
		return v, nil
	}
	return v, guestError(err)
}
