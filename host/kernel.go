package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/plugboard/plugboard/abi"
)

// The Extism kernel, served by the host.
//
// Every Extism PDK moves bytes between guest and host through the kernel imports of
// abi.ModuleExtismEnv: the guest allocates blocks in the kernel's memory (alloc), copies bytes
// in and out eight at a time (store_u64, load_u64, and the _u8 forms for the tail), names its
// input and output (input_*, output_set), its error (error_set) and its log lines (log_*).
// Extism's SDK implements that memory as a second Wasm module whose every function the guest
// reaches through a Go trampoline that looks the function up and calls back into Wasm: each
// call allocates a fresh call stack, and a call copying a 1 KiB document makes about 130 of
// them. Here the kernel is plain Go (see RATIONALE.md): a block is a Go byte slice, a load is
// a bounds check and a copy.
//
// Offsets. A block's offset is a handle, not an address in a linear memory: offsets only grow
// for the life of an instance, so an offset is never reused, neither within a call nor by a
// later call. A late second free of a block (go-pdk's defer mem.Free() after the host freed a
// request block), a free of a block of an earlier call, or a free of an offset that was never a
// block cannot free another block. A byte at offset+i of a block is addressed as offset+i, as
// the PDKs expect. Offsets start at kernelBase and are 8-aligned, with a gap after each block
// so that the offset just past a block is never the start of the next.
//
// Freeing. free of anything but the start of a live block does nothing. The blocks the host
// reads when the call ends stay until then: free of the input block, or of the block named by
// output_set or error_set, does nothing (go-pdk's Output leaves a "defer mem.Free()" to come).
// Every block of a call is released when the next call begins, so a guest that never frees
// holds at most one call's blocks.
//
// Limits. The bytes of the live blocks of an instance, plus blockOverhead for each, are capped
// by the module's memory limit (the kernel memory of Extism has the same limit as the
// plugin's); alloc over the cap answers 0, as Extism's does. Freed blocks are forgotten, so a
// guest that allocates and frees in a loop holds no more host memory than its live blocks.
// Freed buffers are kept for reuse up to kernelSpareBytes.

// kernelBase is the first block offset of an instance; nothing is ever at offset 0.
const kernelBase = 1 << 16

// maxKernelOffset is where a call's first offset goes back to kernelBase: offsets stay below
// 2^53, exact in a float64 (a JavaScript PDK's number), and an instance would have to
// allocate 4 PiB before an offset comes round again.
const maxKernelOffset = 1 << 52

// blockOverhead is what the host holds for each block beyond its bytes (its entry in
// kernel.blocks), counted against the limit so that a million 1-byte blocks cost what they
// cost.
const blockOverhead = int64(unsafe.Sizeof(block{}))

// maxKeptBlockEntries caps the block entries an instance keeps allocated between calls.
const maxKeptBlockEntries = 1024

// kernelSpareBytes caps the freed block buffers an instance keeps for reuse between calls.
const kernelSpareBytes = 1 << 20

// maxVarBytes caps the bytes an instance keeps in Extism vars (var_set).
const maxVarBytes = 1 << 20

// kernel is the Extism kernel memory and call state of one instance. An instance serves one
// call at a time, so a kernel is never used by two goroutines at once and needs no lock.
type kernel struct {
	limit int64 // cap of live, the bytes of live blocks with their overhead

	blocks []block // the blocks of the current call, by ascending offset; some freed ones included
	freed  int     // how many entries of blocks are freed
	next   uint64  // offset of the next block; it only grows (see maxKernelOffset)
	live   int64   // bytes of live blocks, blockOverhead each included
	last   int     // index of the block the last lookup found

	spare      [][]byte // buffers of freed blocks, for reuse
	spareBytes int

	input     uint64 // offset of the input block, 0 when the input is empty
	inputLen  uint64
	output    uint64 // output_set's offset and length
	outputLen uint64
	errOff    uint64 // error_set's offset, 0 when no error was set

	vars     map[string][]byte
	varBytes int

	peak uint64 // the most bytes the kernel held at once since the instance started
}

// block is one allocation; buf is nil once it was freed.
type block struct {
	off uint64
	buf []byte
}

func newKernel(limitBytes int64) *kernel {
	return &kernel{limit: limitBytes, next: kernelBase}
}

// begin resets the kernel for a new call whose input is in (copied into an input block): the
// blocks of the previous call are released, but its offsets are not reused.
func (k *kernel) begin(in []byte) error {
	for i := range k.blocks {
		k.release(&k.blocks[i])
	}
	if cap(k.blocks) > maxKeptBlockEntries {
		k.blocks = nil
	}
	k.blocks = k.blocks[:0]
	k.freed, k.live, k.last = 0, 0, 0
	if k.next > maxKernelOffset {
		k.next = kernelBase
	}
	k.input, k.inputLen, k.output, k.outputLen, k.errOff = 0, 0, 0, 0, 0
	if len(in) == 0 {
		return nil
	}
	off := k.alloc(uint64(len(in)))
	if off == 0 {
		return fmt.Errorf("the input of %d bytes is over the kernel memory limit of %d bytes", len(in), k.limit)
	}
	copy(k.blocks[len(k.blocks)-1].buf, in)
	k.input, k.inputLen = off, uint64(len(in))
	return nil
}

// alloc returns the offset of a new zeroed block of n bytes, or 0 when n is 0 or the limit is
// reached.
func (k *kernel) alloc(n uint64) uint64 {
	if n == 0 || n > uint64(k.limit) || int64(n)+blockOverhead > k.limit-k.live {
		return 0
	}
	var buf []byte
	for i, s := range k.spare {
		if uint64(cap(s)) >= n {
			buf = s[:n]
			clear(buf)
			k.spare = slices.Delete(k.spare, i, i+1)
			k.spareBytes -= cap(s)
			break
		}
	}
	if buf == nil {
		buf = make([]byte, n)
	}
	off := k.next
	k.next = (off + n + 8 + 7) &^ 7 // one unused word after each block
	k.blocks = append(k.blocks, block{off: off, buf: buf})
	k.live += int64(n) + blockOverhead
	k.peak = max(k.peak, k.held())
	return off
}

// held is the memory the kernel holds now: live blocks, kept buffers and vars.
func (k *kernel) held() uint64 { return uint64(k.live) + uint64(k.spareBytes) + uint64(k.varBytes) }

// release frees a block's buffer, keeping it for reuse when there is room.
func (k *kernel) release(b *block) {
	if b.buf == nil {
		return
	}
	k.live -= int64(len(b.buf)) + blockOverhead
	if c := cap(b.buf); k.spareBytes+c <= kernelSpareBytes {
		k.spare = append(k.spare, b.buf[:0])
		k.spareBytes += c
	}
	b.buf = nil
	k.freed++
}

// forget drops the entries of freed blocks once they are half of them, so that an alloc and
// free loop does not grow blocks. No lookup needs them: an offset in no entry's range names no
// block, which is what a freed block's offset must name.
func (k *kernel) forget() {
	if k.freed < 64 || 2*k.freed < len(k.blocks) {
		return
	}
	k.blocks = slices.DeleteFunc(k.blocks, func(b block) bool { return b.buf == nil })
	k.freed, k.last = 0, 0
}

// find returns the index of the live block that holds offset, or -1.
func (k *kernel) find(off uint64) int {
	if k.last < len(k.blocks) {
		if b := &k.blocks[k.last]; off >= b.off && off < b.off+uint64(len(b.buf)) {
			return k.last
		}
	}
	i, exact := slices.BinarySearchFunc(k.blocks, off, func(b block, off uint64) int {
		switch {
		case b.off < off:
			return -1
		case b.off > off:
			return 1
		}
		return 0
	})
	if !exact {
		i-- // the block starting before off, if any
	}
	if i < 0 || i >= len(k.blocks) {
		return -1
	}
	b := &k.blocks[i]
	if b.buf == nil || off >= b.off+uint64(len(b.buf)) {
		return -1
	}
	k.last = i
	return i
}

// block returns the bytes of the live block starting at off, or nil.
func (k *kernel) block(off uint64) []byte {
	i := k.find(off)
	if i < 0 || k.blocks[i].off != off {
		return nil
	}
	return k.blocks[i].buf
}

// free frees the block starting at off. Freeing 0, an offset inside a block or in none, a freed
// block, or a block the host reads when the call ends (the input, output_set's, error_set's)
// does nothing.
func (k *kernel) free(off uint64) {
	i := k.find(off)
	if i < 0 || k.blocks[i].off != off || k.kept(k.blocks[i]) {
		return
	}
	k.release(&k.blocks[i])
	k.forget()
}

// kept reports whether b is one of the blocks the host reads when the call ends: the input,
// the block holding the output document, the error message.
func (k *kernel) kept(b block) bool {
	end := b.off + uint64(len(b.buf))
	return b.off == k.input || b.off == k.errOff || k.outputLen > 0 && k.output >= b.off && k.output < end
}

// length returns the length of the live block starting at off, 0 for any other offset.
func (k *kernel) length(off uint64) uint64 { return uint64(len(k.block(off))) }

// bytes returns n bytes at off, which must lie within one live block.
func (k *kernel) bytes(off, n uint64) ([]byte, bool) {
	i := k.find(off)
	if i < 0 {
		return nil, false
	}
	b := k.blocks[i]
	start := off - b.off
	if n > uint64(len(b.buf))-start {
		return nil, false
	}
	return b.buf[start : start+n], true
}

// write copies p into a new block and returns its offset, 0 when p is empty or the limit is
// reached.
func (k *kernel) write(p []byte) uint64 {
	off := k.alloc(uint64(len(p)))
	if off != 0 {
		copy(k.blocks[len(k.blocks)-1].buf, p)
	}
	return off
}

// size is the most memory the kernel held at once since the instance started, like a linear
// memory's size (which never shrinks).
func (k *kernel) size() uint64 { return k.peak }

// kernelTrap is the panic of a kernel function the guest called wrongly; wazero turns it into
// the call's error, so the call fails as the plugin's fault with this message.
type kernelTrap struct{ msg string }

func (t kernelTrap) Error() string { return "extism kernel: " + t.msg }

func trapf(format string, args ...any) { panic(kernelTrap{fmt.Sprintf(format, args...)}) }

// kernelOf returns the kernel of the instance running the call in ctx.
func kernelOf(ctx context.Context) *kernel {
	cs := callFrom(ctx)
	if cs == nil || cs.k == nil {
		panic(kernelTrap{"called outside a Plugboard call"})
	}
	return cs.k
}

// load returns the n bytes (1 or 8) at off for load_u8 and load_u64, trapping outside a block.
func (k *kernel) load(off, n uint64) []byte {
	b, ok := k.bytes(off, n)
	if !ok {
		trapf("load of %d bytes at offset %d is outside every allocated block", n, off)
	}
	return b
}

// inputAt returns the n input bytes at index i for input_load_u8 and input_load_u64.
func (k *kernel) inputAt(i, n uint64) []byte {
	if i > k.inputLen || n > k.inputLen-i {
		trapf("input load of %d bytes at %d is past the input's %d bytes", n, i, k.inputLen)
	}
	b, _ := k.bytes(k.input+i, n)
	if b == nil {
		trapf("the input block was freed")
	}
	return b
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// kernelFunctions are the functions of abi.ModuleExtismEnv. Each is a wazero Go function on
// the value stack: no reflection and no allocation per call.
var kernelFunctions = []struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(ctx context.Context, k *kernel, stack []uint64)
}{
	{"alloc", []api.ValueType{i64}, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = k.alloc(s[0]) }},
	{"free", []api.ValueType{i64}, nil, func(_ context.Context, k *kernel, s []uint64) { k.free(s[0]) }},
	{"length", []api.ValueType{i64}, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = k.length(s[0]) }},
	{"length_unsafe", []api.ValueType{i64}, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = k.length(s[0]) }},
	{"load_u8", []api.ValueType{i64}, []api.ValueType{i32}, func(_ context.Context, k *kernel, s []uint64) { s[0] = uint64(k.load(s[0], 1)[0]) }},
	{"load_u64", []api.ValueType{i64}, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) {
		s[0] = binary.LittleEndian.Uint64(k.load(s[0], 8))
	}},
	{"store_u8", []api.ValueType{i64, i32}, nil, func(_ context.Context, k *kernel, s []uint64) { k.load(s[0], 1)[0] = byte(s[1]) }},
	{"store_u64", []api.ValueType{i64, i64}, nil, func(_ context.Context, k *kernel, s []uint64) {
		binary.LittleEndian.PutUint64(k.load(s[0], 8), s[1])
	}},
	{"input_offset", nil, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = k.input }},
	{"input_length", nil, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = k.inputLen }},
	{"input_load_u8", []api.ValueType{i64}, []api.ValueType{i32}, func(_ context.Context, k *kernel, s []uint64) { s[0] = uint64(k.inputAt(s[0], 1)[0]) }},
	{"input_load_u64", []api.ValueType{i64}, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) {
		s[0] = binary.LittleEndian.Uint64(k.inputAt(s[0], 8))
	}},
	{"output_set", []api.ValueType{i64, i64}, nil, outputSet},
	{"output_offset", nil, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = k.output }},
	{"output_length", nil, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = k.outputLen }},
	{"error_set", []api.ValueType{i64}, nil, errorSet},
	{"error_get", nil, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = k.errOff }},
	{"reset", nil, nil, func(_ context.Context, k *kernel, _ []uint64) {
		in := k.input
		for i := range k.blocks {
			if k.blocks[i].off != in {
				k.release(&k.blocks[i])
			}
		}
		k.forget()
		k.output, k.outputLen, k.errOff = 0, 0, 0
	}},
	{"memory_bytes", nil, []api.ValueType{i64}, func(_ context.Context, k *kernel, s []uint64) { s[0] = uint64(k.limit) }},
	{"config_get", []api.ValueType{i64}, []api.ValueType{i64}, func(_ context.Context, _ *kernel, s []uint64) { s[0] = 0 }}, // ABI.md: no config keys
	{"var_get", []api.ValueType{i64}, []api.ValueType{i64}, varGet},
	{"var_set", []api.ValueType{i64, i64}, nil, varSet},
	{"http_request", []api.ValueType{i64, i64}, []api.ValueType{i64}, func(context.Context, *kernel, []uint64) {
		trapf("Extism's http_request is disabled in Plugboard; call %s.%s instead (ABI.md section 5)", abi.ModuleHost, abi.ImportHTTP)
	}},
	{"http_status_code", nil, []api.ValueType{i32}, func(_ context.Context, _ *kernel, s []uint64) { s[0] = 0 }},
	{"http_headers", nil, []api.ValueType{i64}, func(_ context.Context, _ *kernel, s []uint64) { s[0] = 0 }},
	{"get_log_level", nil, []api.ValueType{i32}, func(_ context.Context, _ *kernel, s []uint64) { s[0] = logLevelInfo }},
	{"log_trace", []api.ValueType{i64}, nil, logAt("trace")},
	{"log_debug", []api.ValueType{i64}, nil, logAt("debug")},
	{"log_info", []api.ValueType{i64}, nil, logAt("info")},
	{"log_warn", []api.ValueType{i64}, nil, logAt("warn")},
	{"log_error", []api.ValueType{i64}, nil, logAt("error")},
}

// logLevelInfo is get_log_level's answer in Extism's numbering (trace 0, debug 1, info 2, warn
// 3, error 4): PDKs skip trace and debug lines before they reach the host.
const logLevelInfo = 2

// isKernelFunction reports whether name is a function of abi.ModuleExtismEnv.
func isKernelFunction(name string) bool {
	for _, f := range kernelFunctions {
		if f.name == name {
			return true
		}
	}
	return false
}

// kernelNames lists the kernel's functions, for error messages.
func kernelNames() []string {
	names := make([]string, len(kernelFunctions))
	for i, f := range kernelFunctions {
		names[i] = f.name
	}
	return names
}

// instantiateKernel defines abi.ModuleExtismEnv in rt.
func instantiateKernel(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.ModuleExtismEnv)
	for _, f := range kernelFunctions {
		fn := f.fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
				fn(ctx, kernelOf(ctx), stack)
			}), f.params, f.results).
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// outputSet is output_set(offset, length): the call's output document. The cap is checked
// before anything is copied.
func outputSet(ctx context.Context, k *kernel, s []uint64) {
	off, n := s[0], s[1]
	if cs := callFrom(ctx); cs != nil {
		cs.checkOutput("an output document", n)
	}
	if n > 0 {
		if _, ok := k.bytes(off, n); !ok {
			trapf("output_set(%d, %d) names bytes outside every allocated block", off, n)
		}
	}
	k.output, k.outputLen = off, n
}

// errorSet is error_set(offset): the call's error message, a block (0 clears it).
func errorSet(ctx context.Context, k *kernel, s []uint64) {
	off := s[0]
	if off != 0 {
		b := k.block(off)
		if b == nil {
			trapf("error_set(%d) is not an allocated block", off)
		}
		if cs := callFrom(ctx); cs != nil {
			cs.checkOutput("an error message", uint64(len(b)))
		}
	}
	k.errOff = off
}

func varGet(_ context.Context, k *kernel, s []uint64) {
	key := k.block(s[0])
	if key == nil {
		trapf("var_get(%d): the key is not an allocated block", s[0])
	}
	v, ok := k.vars[string(key)]
	if !ok {
		s[0] = 0
		return
	}
	s[0] = k.write(v)
}

func varSet(_ context.Context, k *kernel, s []uint64) {
	key := k.block(s[0])
	if key == nil {
		trapf("var_set(%d, _): the key is not an allocated block", s[0])
	}
	old, had := k.vars[string(key)]
	if s[1] == 0 {
		if had {
			k.varBytes -= len(key) + len(old)
			delete(k.vars, string(key))
		}
		return
	}
	v := k.block(s[1])
	if v == nil {
		trapf("var_set(_, %d): the value is not an allocated block", s[1])
	}
	grow := len(v) - len(old)
	if !had {
		grow += len(key)
	}
	if k.varBytes+grow > maxVarBytes {
		trapf("var_set: vars would hold %d bytes, over the %d-byte limit", k.varBytes+grow, maxVarBytes)
	}
	if k.vars == nil {
		k.vars = map[string][]byte{}
	}
	k.vars[string(key)] = slices.Clone(v)
	k.varBytes += grow
	k.peak = max(k.peak, k.held())
}

// logAt is log_<level>(offset): the block is one log line of the call, then freed, as Extism
// does.
func logAt(level string) func(context.Context, *kernel, []uint64) {
	return func(ctx context.Context, k *kernel, s []uint64) {
		msg := k.block(s[0])
		if msg == nil {
			trapf("log_%s(%d) is not an allocated block", level, s[0])
		}
		if cs := callFrom(ctx); cs != nil && level != "trace" && level != "debug" {
			cs.log(level, string(msg))
		}
		k.free(s[0])
	}
}
