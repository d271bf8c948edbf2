package host

import (
	"context"
	"fmt"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/plugboard/plugboard/abi"
)

// Output cap. Every document a guest hands the host goes through one of two Extism kernel
// functions, which a plugin imports from abi.ModuleExtismEnv (the upload checks refuse any
// other way in to the kernel):
//
//   - output_set(offset, length) names the call's output document: an action's result, a poll,
//     webhook or timer result, a servlet result, the manifest;
//   - error_set(offset) names the call's Extism error message, a block whose length the
//     kernel knows.
//
// The Extism SDK copies both out of guest memory once the export returns, whatever their size
// (Plugin.CallWithContext, GetOutput). So the cap is enforced earlier, when the guest calls the
// function: a wazero function listener on those two imports reads the length and, over the
// call's cap, records it in the call's state and aborts the call, so nothing is ever copied.
// The call then fails with ErrPluginFailed naming the size and the cap (callState.overCap).

// outputListeners is the wazero function listener factory of compiled modules: a listener on
// the two kernel imports above, none on any other function (wazero calls nothing for those).
type outputListeners struct{}

var _ experimental.FunctionListenerFactory = outputListeners{}

// NewFunctionListener implements [experimental.FunctionListenerFactory].
func (outputListeners) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	if def.ModuleName() != abi.ModuleExtismEnv {
		return nil
	}
	switch def.Name() {
	case "output_set":
		return experimental.FunctionListenerFunc(beforeOutputSet)
	case "error_set":
		return experimental.FunctionListenerFunc(beforeErrorSet)
	}
	return nil
}

// errOverCap aborts a guest call that wrote a document over its cap; callState.overCap has the
// figures for the call's error.
type errOverCap struct{ what string }

func (e errOverCap) Error() string { return e.what + " over the output cap" }

// beforeOutputSet checks output_set(offset, length) against the call's cap.
func beforeOutputSet(ctx context.Context, _ api.Module, _ api.FunctionDefinition, params []uint64, _ experimental.StackIterator) {
	if cs := callFrom(ctx); cs != nil && len(params) == 2 {
		cs.checkOutput("an output document", params[1])
	}
}

// beforeErrorSet checks error_set(offset) against the call's cap, with the block's length from
// the kernel (0 for an offset that is not a block).
func beforeErrorSet(ctx context.Context, _ api.Module, _ api.FunctionDefinition, params []uint64, _ experimental.StackIterator) {
	cs := callFrom(ctx)
	kernel, _ := ctx.Value(extism.PluginCtxKey("extism")).(api.Module)
	if cs == nil || kernel == nil || len(params) != 1 || params[0] == 0 {
		return
	}
	length := kernel.ExportedFunction("length")
	if length == nil {
		return
	}
	res, err := length.Call(ctx, params[0])
	if err != nil || len(res) != 1 {
		return
	}
	cs.checkOutput("an error message", res[0])
}

// checkOutput aborts the call when a document of n bytes is over its cap.
func (cs *callState) checkOutput(what string, n uint64) {
	if n <= uint64(cs.outputCap) {
		return
	}
	cs.mu.Lock()
	cs.overCap = &overCap{what: what, size: n}
	cs.mu.Unlock()
	panic(errOverCap{what: what})
}

// overCap is the document that made a call fail its output cap.
type overCap struct {
	what string
	size uint64
}

// overCapError is the error of a call whose guest wrote a document over the cap, nil if none.
func (cs *callState) overCapError(export string) error {
	cs.mu.Lock()
	oc := cs.overCap
	cs.mu.Unlock()
	if oc == nil {
		return nil
	}
	return fmt.Errorf("%w: %s wrote %s of %d bytes, over the cap of %d bytes (limits.output_bytes or the server's --max-output-bytes); return less, page through it with more calls, or raise the cap",
		ErrPluginFailed, export, oc.what, oc.size, cs.outputCap)
}

// outputCap is the cap of the module's output documents: the server's maximum, lowered by the
// manifest's limits.output_bytes.
func (m *Module) outputCap() int64 {
	c := int64(m.h.cfg.MaxOutputBytes)
	if l := m.manifest.Limits; l != nil && l.OutputBytes > 0 {
		c = min(c, l.OutputBytes)
	}
	return c
}
