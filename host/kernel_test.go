package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"unsafe"
)

// kcall runs one kernel function the way a guest import would, on a fresh value stack, and
// returns the stack (results first) or the trap message.
func kcall(t *testing.T, k *kernel, name string, args ...uint64) (stack []uint64, trap string) {
	t.Helper()
	for _, f := range kernelFunctions {
		if f.name != name {
			continue
		}
		stack = make([]uint64, max(len(f.params), len(f.results)))
		copy(stack, args)
		func() {
			defer func() {
				if r := recover(); r != nil {
					kt, ok := r.(kernelTrap)
					if !ok {
						panic(r)
					}
					trap = kt.msg
				}
			}()
			f.fn(context.Background(), k, stack)
		}()
		return stack, trap
	}
	t.Fatalf("no kernel function %s", name)
	return nil, ""
}

// store writes p into a new block with store_u64 and store_u8, as the PDKs do.
func store(t *testing.T, k *kernel, p []byte) uint64 {
	t.Helper()
	s, _ := kcall(t, k, "alloc", uint64(len(p)))
	off := s[0]
	i := 0
	for ; i+8 <= len(p); i += 8 {
		if _, trap := kcall(t, k, "store_u64", off+uint64(i), binary.LittleEndian.Uint64(p[i:])); trap != "" {
			t.Fatal(trap)
		}
	}
	for ; i < len(p); i++ {
		if _, trap := kcall(t, k, "store_u8", off+uint64(i), uint64(p[i])); trap != "" {
			t.Fatal(trap)
		}
	}
	return off
}

// load reads a block back with length, load_u64 and load_u8.
func load(t *testing.T, k *kernel, off uint64) []byte {
	t.Helper()
	s, _ := kcall(t, k, "length", off)
	n := int(s[0])
	out := make([]byte, n)
	i := 0
	for ; i+8 <= n; i += 8 {
		s, trap := kcall(t, k, "load_u64", off+uint64(i))
		if trap != "" {
			t.Fatal(trap)
		}
		binary.LittleEndian.PutUint64(out[i:], s[0])
	}
	for ; i < n; i++ {
		s, trap := kcall(t, k, "load_u8", off+uint64(i))
		if trap != "" {
			t.Fatal(trap)
		}
		out[i] = byte(s[0])
	}
	return out
}

// TestKernelBlocks: a block holds what was stored in it, its length is known only at its start,
// and a block's offset is never 0.
func TestKernelBlocks(t *testing.T) {
	k := newKernel(1 << 20)
	if err := k.begin(nil); err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{"x", "exactly8", `{"action":"get","input":{"path":"/a/b/c"}}`} {
		off := store(t, k, []byte(doc))
		if off == 0 {
			t.Fatalf("alloc(%d) = 0", len(doc))
		}
		if got := string(load(t, k, off)); got != doc {
			t.Errorf("block = %q, want %q", got, doc)
		}
		if s, _ := kcall(t, k, "length", off+1); s[0] != 0 {
			t.Errorf("length inside a block = %d, want 0", s[0])
		}
	}
	if s, _ := kcall(t, k, "alloc", 0); s[0] != 0 {
		t.Errorf("alloc(0) = %d, want 0", s[0])
	}
	if s, _ := kcall(t, k, "length", 0); s[0] != 0 {
		t.Errorf("length(0) = %d, want 0", s[0])
	}
}

// TestKernelFreedOffsetsAreNotReused pins the double-free rule: within a call, a freed block's
// offset never names another block, so go-pdk's defer mem.Free() of a request block the host
// already freed cannot free the reply.
func TestKernelFreedOffsetsAreNotReused(t *testing.T) {
	k := newKernel(1 << 20)
	k.begin(nil)
	req := store(t, k, []byte(`{"method":"GET"}`))
	k.free(req) // the host frees the request block (ABI.md section 5)...
	reply := k.write([]byte(`{"status":200}`))
	if reply == req {
		t.Fatalf("the reply got the freed request's offset %d", req)
	}
	kcall(t, k, "free", req) // ...and the PDK frees it again
	if got := string(load(t, k, reply)); got != `{"status":200}` {
		t.Errorf("reply after the second free of the request = %q", got)
	}
	if s, _ := kcall(t, k, "length", req); s[0] != 0 {
		t.Errorf("length of a freed block = %d, want 0", s[0])
	}
	if _, trap := kcall(t, k, "load_u8", req); !strings.Contains(trap, "outside every allocated block") {
		t.Errorf("load from a freed block: trap %q", trap)
	}
}

// TestKernelLoadsAndStoresStayInsideBlocks: a load or store that reaches past a block's end,
// or into no block, traps the call instead of reading or writing anything.
func TestKernelLoadsAndStoresStayInsideBlocks(t *testing.T) {
	k := newKernel(1 << 20)
	k.begin(nil)
	off := store(t, k, []byte("twelve bytes"))
	for _, c := range []struct {
		name string
		args []uint64
	}{
		{"load_u64", []uint64{off + 5}},        // 8 bytes from 5 pass the end at 12
		{"load_u8", []uint64{off + 12}},        // the byte just past the end
		{"store_u64", []uint64{off + 8, 1}},    // straddles the end
		{"store_u8", []uint64{off - 1, 1}},     // before the block
		{"load_u64", []uint64{kernelBase / 2}}, // in no block
	} {
		if _, trap := kcall(t, k, c.name, c.args...); trap == "" {
			t.Errorf("%s%v did not trap", c.name, c.args)
		}
	}
	if got := string(load(t, k, off)); got != "twelve bytes" {
		t.Errorf("block after refused stores = %q", got)
	}
}

// TestKernelLimit: live blocks are capped by the limit; alloc over it answers 0, and freed
// bytes count again.
func TestKernelLimit(t *testing.T) {
	k := newKernel(1000)
	k.begin(nil)
	a, _ := kcall(t, k, "alloc", 600)
	if a[0] == 0 {
		t.Fatal("alloc(600) under a 1000-byte limit = 0")
	}
	if s, _ := kcall(t, k, "alloc", 600); s[0] != 0 {
		t.Errorf("alloc over the limit = %d, want 0", s[0])
	}
	k.free(a[0])
	if s, _ := kcall(t, k, "alloc", 600); s[0] == 0 {
		t.Error("alloc after a free = 0")
	}
	if err := k.begin(make([]byte, 2000)); err == nil {
		t.Error("an input over the limit was accepted")
	}
}

// TestKernelInputAndCalls: the input is readable by index and as a block, and each call starts
// from a clean kernel (no output, no error, no block of the previous call), while vars stay.
func TestKernelInputAndCalls(t *testing.T) {
	k := newKernel(1 << 20)
	in := []byte(`{"action":"first call"}`)
	k.begin(in)
	n, _ := kcall(t, k, "input_length")
	got := make([]byte, n[0])
	for i := range got {
		s, _ := kcall(t, k, "input_load_u8", uint64(i))
		got[i] = byte(s[0])
	}
	if !bytes.Equal(got, in) {
		t.Errorf("input by index = %q", got)
	}
	if _, trap := kcall(t, k, "input_load_u64", n[0]-4); trap == "" {
		t.Error("input_load_u64 past the input did not trap")
	}
	io, _ := kcall(t, k, "input_offset")
	if !bytes.Equal(load(t, k, io[0]), in) {
		t.Error("the input block differs from the input")
	}
	out := store(t, k, []byte(`{"output":{}}`))
	kcall(t, k, "output_set", out, 13)
	key, val := store(t, k, []byte("counter")), store(t, k, []byte("41"))
	kcall(t, k, "var_set", key, val)

	k.begin([]byte("{}"))
	if k.outputLen != 0 || k.errOff != 0 {
		t.Errorf("output %d/%d and error %d survived into the next call", k.output, k.outputLen, k.errOff)
	}
	if k.length(out) != 0 && string(k.block(out)) == `{"output":{}}` {
		t.Error("a block of the previous call is still readable")
	}
	key = store(t, k, []byte("counter"))
	v, _ := kcall(t, k, "var_get", key)
	if v[0] == 0 || string(load(t, k, v[0])) != "41" {
		t.Errorf("var_get after a new call = %d", v[0])
	}
	missing := store(t, k, []byte("missing"))
	if v, _ := kcall(t, k, "var_get", missing); v[0] != 0 {
		t.Errorf("var_get of an unset var = %d, want 0", v[0])
	}
}

// TestKernelRefusesExtismHTTP: Extism's own http_request traps with a pointer to
// plugboard_http (ABI.md section 1).
func TestKernelRefusesExtismHTTP(t *testing.T) {
	k := newKernel(1 << 20)
	k.begin(nil)
	if _, trap := kcall(t, k, "http_request", 0, 0); !strings.Contains(trap, "plugboard_http") {
		t.Errorf("http_request trap = %q", trap)
	}
}

// TestKernelKeepsFewSpareBuffers: freed buffers are reused, but an instance keeps at most
// kernelSpareBytes of them between calls.
func TestKernelKeepsFewSpareBuffers(t *testing.T) {
	k := newKernel(64 << 20)
	for range 3 {
		k.begin(nil)
		for range 8 {
			k.alloc(1 << 20)
		}
	}
	k.begin(nil)
	if k.spareBytes > kernelSpareBytes {
		t.Errorf("kept %d spare bytes, cap %d", k.spareBytes, kernelSpareBytes)
	}
	before := k.spareBytes
	if before == 0 {
		t.Fatal("no buffer was kept for reuse")
	}
	if k.alloc(100) == 0 || k.spareBytes >= before {
		t.Errorf("a small block did not reuse a spare buffer (spare bytes %d, then %d)", before, k.spareBytes)
	}
}

// TestKernelOffsetsAreNeverReusedAcrossCalls: a block's offset names nothing in the calls after
// its own, even once as many bytes were allocated again, so a handle a guest kept (in a global,
// or from its initialisation) cannot free or read a block of a later call. Offsets go back to
// kernelBase only at a call's start past maxKernelOffset.
func TestKernelOffsetsAreNeverReusedAcrossCalls(t *testing.T) {
	k := newKernel(1 << 20)
	k.begin([]byte(`{"call":1}`))
	in1 := k.input
	kept := store(t, k, []byte("kept by call 1"))
	k.begin([]byte(`{"call":2}`))
	if k.input == in1 || k.input <= kept {
		t.Errorf("call 2's input at %d; call 1's input was at %d, its last block at %d", k.input, in1, kept)
	}
	fresh := store(t, k, []byte("call 2's block"))
	kcall(t, k, "free", kept)
	kcall(t, k, "free", in1)
	if got := string(load(t, k, fresh)); got != "call 2's block" {
		t.Errorf("call 2's block after freeing call 1's offsets = %q", got)
	}
	if n, _ := kcall(t, k, "input_length"); !bytes.Equal(k.block(k.input), []byte(`{"call":2}`)) || n[0] != 10 {
		t.Errorf("call 2's input after freeing call 1's offsets = %q", k.block(k.input))
	}
	if _, trap := kcall(t, k, "load_u8", kept); trap == "" {
		t.Error("call 1's block is readable in call 2")
	}

	k.next = maxKernelOffset + 8
	k.begin([]byte("{}"))
	if k.input != kernelBase {
		t.Errorf("a call starting past maxKernelOffset put its input at %d, want kernelBase", k.input)
	}
}

// TestKernelFreeSparesTheBlocksTheHostReads: the input block and the blocks named by
// output_set and error_set stay until the call ends, whoever frees them; a block output_set no
// longer names can be freed.
func TestKernelFreeSparesTheBlocksTheHostReads(t *testing.T) {
	k := newKernel(1 << 20)
	k.begin([]byte(`{"in":true}`))
	first := store(t, k, []byte(`{"output":1}`))
	kcall(t, k, "output_set", first+2, 8) // a range inside the block names it too
	errBlock := store(t, k, []byte("error message"))
	kcall(t, k, "error_set", errBlock)
	for _, off := range []uint64{k.input, first, errBlock} {
		kcall(t, k, "free", off)
		kcall(t, k, "free", off)
	}
	if string(k.block(k.input)) != `{"in":true}` || string(k.block(first)) != `{"output":1}` || string(k.block(errBlock)) != "error message" {
		t.Fatalf("after free: input %q, output %q, error %q", k.block(k.input), k.block(first), k.block(errBlock))
	}
	second := store(t, k, []byte(`{"output":2}`))
	kcall(t, k, "output_set", second, 12)
	kcall(t, k, "free", first)
	if k.block(first) != nil {
		t.Error("a block output_set no longer names was not freed")
	}
	kcall(t, k, "free", second)
	if out, ok := k.bytes(k.output, k.outputLen); !ok || string(out) != `{"output":2}` {
		t.Errorf("output after its block was freed = %q, %v", out, ok)
	}
}

// TestKernelCountsBlockOverhead: each block costs its bytes and blockOverhead against the limit,
// so tiny blocks cannot make the host hold many times the limit; an alloc of more than the
// limit (2^63 or 2^64-1 bytes included) answers 0.
func TestKernelCountsBlockOverhead(t *testing.T) {
	const limit = 64 << 10
	k := newKernel(limit)
	k.begin(nil)
	n := 0
	for k.alloc(1) != 0 {
		n++
	}
	if per := 1 + int(unsafe.Sizeof(block{})); n > limit/per || n < limit/(2*per) {
		t.Errorf("%d one-byte blocks under a %d-byte limit; each holds %d bytes of the host", n, limit, per)
	}
	k.begin(nil)
	for _, size := range []uint64{limit + 1, 1 << 63, ^uint64(0)} {
		if s, trap := kcall(t, k, "alloc", size); s[0] != 0 || trap != "" {
			t.Errorf("alloc(%d) = %d, trap %q; want 0", size, s[0], trap)
		}
	}
}

// TestKernelForgetsFreedBlocks: a guest that allocates and frees in a loop leaves a few block
// entries, and the offsets it freed still name nothing.
func TestKernelForgetsFreedBlocks(t *testing.T) {
	k := newKernel(1 << 20)
	k.begin([]byte("{}"))
	anchor := store(t, k, []byte("anchor"))
	var freed []uint64
	for range 10000 {
		s, _ := kcall(t, k, "alloc", 16)
		kcall(t, k, "free", s[0])
		freed = append(freed, s[0])
	}
	if len(k.blocks) > 128 {
		t.Errorf("%d block entries after 10000 blocks freed", len(k.blocks))
	}
	late := store(t, k, []byte("late"))
	for _, off := range freed {
		kcall(t, k, "free", off)
		if k.length(off) != 0 {
			t.Fatalf("freed offset %d has a length", off)
		}
	}
	if _, trap := kcall(t, k, "load_u8", freed[5000]); trap == "" {
		t.Error("a forgotten block is readable")
	}
	if string(load(t, k, anchor)) != "anchor" || string(load(t, k, late)) != "late" {
		t.Errorf("anchor %q, late %q", load(t, k, anchor), load(t, k, late))
	}
}
