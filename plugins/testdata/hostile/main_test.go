package main

import (
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
)

// Only the well-behaved actions run natively; loop, bomb, trap and exit_nonzero are for the
// host's sandbox tests on the built module.
func TestNativeActions(t *testing.T) {
	h := pdktest.New(t, pdktest.Options{})
	if l := h.Describe().Limits; l == nil || l.MemoryMB != 32 || l.TimeoutMS != 2000 {
		t.Errorf("limits = %+v", l)
	}
	if out, err := h.Invoke("ok", nil); err != nil || string(out) != `{"ok":true}` {
		t.Errorf("ok = %s %+v", out, err)
	}
	if _, err := h.Invoke("panic", nil); err == nil || err.Code != abi.CodeInternal {
		t.Errorf("panic = %+v", err)
	}
}
