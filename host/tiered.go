package host

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/plugboard/plugboard/abi"
)

// Prepare runs the upload checks of [Host.Inspect] and returns, with the manifest, the module
// ready to serve: it is [Host.Inspect] and [Host.Load] in one, for a version that should answer
// as soon as it is checked (a dev build, pushed by `plugboard dev --watch` or `serve --watch`).
//
// Inspect and Load compile with wazero's optimizing compiler before the first call, which takes
// seconds for a Go plugin of a few MiB. Prepare instead decodes the module once for wazero's
// interpreter, runs plugboard_describe there, and serves from the interpreter at once, while the
// optimizing compiler runs in the background from the module's first call on (one compile at a
// time per Host). Once it is done,
// new instances start from the compiled code, idle interpreter instances are closed, and calls
// in flight finish where they started: no call fails for the change, calls only run slower until
// it (the interpreter runs a Go plugin about ten times slower). Should the background compile
// fail, the module keeps serving from the interpreter and the failure is logged.
//
// The checks and their errors are Inspect's; describe runs under the server's maximum memory
// limit as in Inspect, and instances under the manifest's as in Load. digest is the sha256
// digest of wasm, as given to Load. Close the module as any other; [Host.Close] waits for a
// background compile in progress.
func (h *Host) Prepare(ctx context.Context, wasm []byte, digest string) (*abi.Manifest, *Module, error) {
	if !bytes.HasPrefix(wasm, wasmMagic) {
		return nil, nil, notWasm()
	}
	// The describe runtime and the serving one share an interpreter cache, so the module is
	// compiled for the interpreter once; the serving code owns the cache.
	cache := wazero.NewCompilationCache()
	described, err := h.compileWith(ctx, wasm, h.interpreterConfig(h.cfg.MaxMemoryMB, cache), cache, false)
	if err != nil {
		cache.Close(context.WithoutCancel(ctx))
		return nil, nil, checkErr(CheckInvalidWasm, "the module does not compile: %v", firstLine(err.Error()))
	}
	described.interpreted = true
	man, err := h.check(ctx, described.code, func() (*compiled, error) { return described, nil })
	described.Close(ctx) // closed by check once it ran describe; not when a check before failed
	if err != nil {
		cache.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	memMB := 0
	if man.Limits != nil {
		memMB = man.Limits.MemoryMB
	}
	memMB = h.memoryMB(memMB)
	serving, err := h.compileWith(ctx, wasm, h.interpreterConfig(memMB, cache), cache, true)
	if err != nil {
		return nil, nil, fmt.Errorf("compiling %s %s: %w", man.Name, man.Version, err)
	}
	serving.interpreted = true
	m := h.newModule(man, digest, memMB, serving)
	m.tiered, m.wasm = true, wasm
	h.mu.Lock()
	h.modules[m] = struct{}{}
	h.mu.Unlock()
	return man, m, nil
}

// startOptimize starts the background compile of a prepared module; its first call does, so a
// module prepared for an upload that activates nothing (the bytes already active) compiles
// nothing. A Host that is closing starts none.
func (m *Module) startOptimize() {
	h, wasm := m.h, m.wasm
	m.wasm = nil
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return
	}
	h.background.Add(1) // under h.mu, before Close's Wait
	go func() {
		defer h.background.Done()
		m.optimize(wasm)
	}()
}

// Interpreted reports whether new instances of the module start in wazero's interpreter: a
// module from [Host.Prepare] whose optimized code is not compiled yet.
func (m *Module) Interpreted() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.compiled.interpreted
}

// optimize compiles the module with the optimizing compiler and makes that the code new
// instances start from. Idle instances of the interpreter are closed; busy ones are closed when
// their call returns ([pool.put]), and the interpreter's code is released with the last one.
func (m *Module) optimize(wasm []byte) {
	h := m.h
	h.optimizing.Lock() // a burst of rebuilds compiles one at a time, skipping those closed meanwhile
	defer h.optimizing.Unlock()
	ctx := context.Background()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return
	}
	start := time.Now()
	cache, err := h.ownedCache()
	var c *compiled
	if err == nil {
		c, err = h.compileWith(ctx, wasm, h.runtimeConfig(m.memoryMB, cache), cache, true)
	}
	if err != nil {
		h.log.Warn("compiling a prepared plugin with the optimizing compiler failed; it keeps running in the interpreter",
			"connector", m.manifest.Name, "version", m.manifest.Version, "err", err)
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		c.Close(ctx)
		return
	}
	old := m.compiled
	m.compiled = c
	var stale []*instance
	for _, p := range m.pools {
		p.mu.Lock()
		keep := p.idle[:0]
		for _, inst := range p.idle {
			if inst.code == c {
				keep = append(keep, inst)
			} else {
				stale = append(stale, inst)
			}
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		p.mu.Unlock()
	}
	m.mu.Unlock()
	for _, inst := range stale {
		inst.close(ctx)
	}
	old.retire(ctx)
	h.log.Debug("prepared plugin now runs compiled code", "connector", m.manifest.Name, "version", m.manifest.Version,
		"compile", time.Since(start).Round(time.Millisecond))
}

// interpreterConfig is the wazero configuration of a module run by the interpreter
// ([Host.Prepare]): as [Host.runtimeConfig], with cache holding the interpreter's code.
func (h *Host) interpreterConfig(memoryMB int, cache wazero.CompilationCache) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigInterpreter().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(uint32(memoryMB) * 16) // 64 KiB pages
}

// ownedCache returns a compilation cache for one module to own: over the CacheDir when there is
// one, so a later Load of the same bytes is warm, or in memory, released with the module (the
// Host's shared in-memory cache would keep the machine code of every dev build until it closes).
func (h *Host) ownedCache() (wazero.CompilationCache, error) {
	if h.cfg.CacheDir == "" {
		return wazero.NewCompilationCache(), nil
	}
	c, _, err := h.moduleCache()
	return c, err
}
