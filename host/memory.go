package host

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// memoryMeter is the wazero memory allocator of one instance: it backs each linear memory
// (the plugin's and the Extism kernel's) with a Go slice grown exactly as wazero's default
// allocator grows it, and keeps the sum of their sizes so a call can report its memory.
//
// Wasm memories never shrink, so the size after a call is the instance's high-water mark since
// it started, which bounds the call's peak from above.
type memoryMeter struct{ bytes atomic.Int64 }

var _ experimental.MemoryAllocator = (*memoryMeter)(nil)

// Allocate implements [experimental.MemoryAllocator].
func (mm *memoryMeter) Allocate(capacity, _ uint64) experimental.LinearMemory {
	return &meteredMemory{meter: mm, buf: make([]byte, 0, capacity)}
}

// size returns the bytes the instance's linear memories hold now.
func (mm *memoryMeter) size() uint64 { return uint64(max(0, mm.bytes.Load())) }

// meteredMemory is one linear memory of an instance.
type meteredMemory struct {
	meter *memoryMeter
	buf   []byte
}

// Reallocate implements [experimental.LinearMemory]: like wazero's default, within capacity it
// reslices (the bytes past the old length are still zero: Wasm cannot write past its length),
// beyond it it appends zeroes.
func (m *meteredMemory) Reallocate(size uint64) []byte {
	old := uint64(len(m.buf))
	switch {
	case size <= uint64(cap(m.buf)):
		m.buf = m.buf[:size]
	default:
		m.buf = append(m.buf, make([]byte, size-old)...)
	}
	m.meter.bytes.Add(int64(size) - int64(old))
	return m.buf
}

// Free implements [experimental.LinearMemory].
func (m *meteredMemory) Free() {
	m.meter.bytes.Add(-int64(len(m.buf)))
	m.buf = nil
}
