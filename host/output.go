package host

import "fmt"

// Output cap. Every document a guest hands the host goes through one of two Extism kernel
// functions (kernel.go):
//
//   - output_set(offset, length) names the call's output document: an action's result, a poll,
//     webhook or timer result, a servlet result, the manifest;
//   - error_set(offset) names the call's Extism error message, a block whose length the
//     kernel knows.
//
// Both check the size against the call's cap before anything is copied: over it, the kernel
// records it in the call's state and aborts the call (errOverCap), which then fails with
// ErrPluginFailed naming the size and the cap (callState.overCapError).

// errOverCap aborts a guest call that wrote a document over its cap; callState.overCap has the
// figures for the call's error.
type errOverCap struct{ what string }

func (e errOverCap) Error() string { return e.what + " over the output cap" }

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
