// Command hostile is a test plugin that misbehaves on request, to show the host contains it:
// its limits are 32 MiB of memory and 2 s per call.
//
//   - loop spins forever (the deadline must stop it);
//   - bomb allocates until the memory limit is hit, keeping every block reachable;
//   - trap reads outside linear memory: a real Wasm trap, which no Go recover can catch;
//   - panic panics in the handler, which the pdk recovers into an internal error;
//   - exit_nonzero calls os.Exit(3) (WASI proc_exit with a non-zero code);
//   - exit_zero calls os.Exit(0) before writing any output (proc_exit(0): the call looks
//     successful but the instance is closed);
//   - ok answers {"ok": true}, to show the server still serves afterwards.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hostile.wasm ./plugins/testdata/hostile
package main

import (
	"os"
	"unsafe"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

func main() {}

func init() {
	pdk.Connector(pdk.Info{
		Name:        "hostile",
		Version:     "1.0.0",
		Title:       "Hostile",
		Description: "Test plugin that loops, allocates, traps and exits on request.",
		Auth:        abi.Auth{Types: []string{abi.AuthNone}},
		Limits:      &abi.Limits{MemoryMB: 32, TimeoutMS: 2000},
	})
	pdk.Action("loop", loop, pdk.Description("Never returns."))
	pdk.Action("bomb", bomb, pdk.Description("Allocates until memory runs out."))
	pdk.Action("trap", trap, pdk.Description("Traps (out-of-bounds memory access)."))
	pdk.Action("panic", panicAction, pdk.Description("Panics; the pdk recovers it as an internal error."))
	pdk.Action("exit_nonzero", exitNonzero, pdk.Description("Exits with status 3."))
	pdk.Action("exit_zero", exitZero, pdk.Description("Exits with status 0 without writing output."))
	pdk.Action("ok", ok, pdk.Description("Answers {\"ok\": true}."), pdk.ReadOnly())
}

// Empty is the input and output of the misbehaving actions.
type Empty struct{}

// OK is the output of ok.
type OK struct {
	OK bool `json:"ok"`
}

// Sinks keep the compiler from removing the loop's and the bomb's work.
var (
	spins  uint64
	hoard  [][]byte
	target byte
)

func loop(ctx *pdk.Context, _ Empty) (Empty, error) {
	for {
		spins++
	}
}

func bomb(ctx *pdk.Context, _ Empty) (Empty, error) {
	for {
		// Large chunks reach the limit in a few allocations, so the memory limit (not the
		// deadline) stops it even on a loaded machine.
		b := make([]byte, 4<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page
		}
		hoard = append(hoard, b)
	}
}

func trap(ctx *pdk.Context, _ Empty) (Empty, error) {
	// 2 GiB past a live variable is far outside the module's linear memory; Go checks only for
	// nil, so the load reaches the Wasm engine, which traps with an out-of-bounds access.
	p := (*byte)(unsafe.Add(unsafe.Pointer(&target), 1<<31))
	target = *p
	return Empty{}, nil
}

func panicAction(ctx *pdk.Context, _ Empty) (Empty, error) {
	panic("hostile: deliberate panic")
}

func exitNonzero(ctx *pdk.Context, _ Empty) (Empty, error) {
	os.Exit(3)
	return Empty{}, nil
}

func exitZero(ctx *pdk.Context, _ Empty) (Empty, error) {
	os.Exit(0)
	return Empty{}, nil
}

func ok(ctx *pdk.Context, _ Empty) (OK, error) {
	return OK{OK: true}, nil
}
