package host

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/host/internal/egress"
)

// Module is one compiled connector version with its instance pools. Calls are safe for
// concurrent use. Close starts a drain: calls in flight finish, new calls get [ErrClosed], and the
// compiled code is released when the last call returns.
type Module struct {
	h        *Host
	manifest *abi.Manifest
	digest   string
	memoryMB int

	mu sync.Mutex
	// compiled is the code new instances start from: the interpreter's for a module from
	// [Host.Prepare] until its optimized code is compiled (tiered.go), then that.
	compiled *compiled
	pools    map[string]*pool // by connection id; "" for calls without a connection
	inflight int
	closed   bool
	done     chan struct{}

	// tiered marks a module from [Host.Prepare]: its first call starts the background compile
	// of wasm (optimizeStart, tiered.go).
	tiered        bool
	wasm          []byte
	optimizeStart sync.Once
}

// Manifest returns the module's manifest. Callers must not modify it.
func (m *Module) Manifest() *abi.Manifest { return m.manifest }

// Digest returns the sha256 digest of the module's bytes, as given to [Host.Load].
func (m *Module) Digest() string { return m.digest }

// MemoryMB returns the memory limit instances of this module run with.
func (m *Module) MemoryMB() int { return m.memoryMB }

// compiled is a module's wazero runtime (its memory limit and deadline enforcement) with the
// host modules every instance links to (WASI, the Extism kernel, Plugboard's imports) and the
// plugin's compiled code.
type compiled struct {
	rt   wazero.Runtime
	code wazero.CompiledModule
	// cache is the compilation cache the code lives in when this compiled owns it (see
	// [Host.moduleCache]), closed after the runtime; nil when it is the Host's.
	cache wazero.CompilationCache
	// interpreted is true for code run by wazero's interpreter ([Host.Prepare]).
	interpreted bool

	// live counts the instances started from this code and not closed yet. Once retired
	// (replaced by optimized code), the code is released when the last of them closes.
	live      atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
}

// Close releases the runtime and everything instantiated in it, then the cache it owns, which
// is what frees the machine code wazero keeps in memory. Later calls do nothing.
func (c *compiled) Close(ctx context.Context) {
	c.closeOnce.Do(func() {
		ctx = context.WithoutCancel(ctx)
		c.rt.Close(ctx)
		if c.cache != nil {
			c.cache.Close(ctx)
		}
	})
}

// retire marks the code replaced, releasing it now when no instance of it is left and otherwise
// when the last one closes ([compiled.instanceClosed]).
func (c *compiled) retire(ctx context.Context) {
	c.retired.Store(true)
	if c.live.Load() == 0 {
		c.Close(ctx)
	}
}

// instanceClosed counts one instance of this code closed.
func (c *compiled) instanceClosed(ctx context.Context) {
	if c.live.Add(-1) == 0 && c.retired.Load() {
		c.Close(ctx)
	}
}

// compile builds a version's runtime with Plugboard's host modules and compiles wasm in it
// with wazero's optimizing compiler. The compiled code owns the compilation cache it was
// compiled with when [Host.moduleCache] says so.
func (h *Host) compile(ctx context.Context, wasm []byte, memoryMB int) (*compiled, error) {
	cc, owned, err := h.moduleCache()
	if err != nil {
		return nil, err
	}
	return h.compileWith(ctx, wasm, h.runtimeConfig(memoryMB, cc), cc, owned)
}

// compileWith builds a runtime of config (whose compilation cache is cache) with Plugboard's
// host modules and compiles wasm in it. With owned, the compiled code owns cache, and on
// failure cache is closed.
func (h *Host) compileWith(ctx context.Context, wasm []byte, config wazero.RuntimeConfig, cache wazero.CompilationCache, owned bool) (c *compiled, err error) {
	ctx = context.WithoutCancel(ctx) // a compile is not abandoned half-way
	rt := wazero.NewRuntimeWithConfig(ctx, config)
	err = func() error {
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			return err
		}
		if err := instantiateKernel(ctx, rt); err != nil {
			return err
		}
		if err := h.instantiateImports(ctx, rt); err != nil {
			return err
		}
		code, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			return err
		}
		c = &compiled{rt: rt, code: code}
		return nil
	}()
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		err = fmt.Errorf("%w: %w", ErrNoSpace, err) // not the module's fault: the server's disk is full
	}
	if err != nil {
		rt.Close(ctx)
		if owned {
			cache.Close(ctx)
		}
		return nil, err
	}
	if owned {
		c.cache = cache
	}
	return c, nil
}

// Load compiles a version whose manifest was checked by [Host.Inspect] and provisions it: a first
// instance is started and plugboard_describe runs again to confirm the manifest. Any failure
// leaves nothing behind.
func (h *Host) Load(ctx context.Context, wasm []byte, manifest *abi.Manifest, digest string) (*Module, error) {
	memMB := 0
	if manifest.Limits != nil {
		memMB = manifest.Limits.MemoryMB
	}
	memMB = h.memoryMB(memMB)
	compiled, err := h.compile(ctx, wasm, memMB)
	if err != nil {
		return nil, fmt.Errorf("compiling %s %s: %w", manifest.Name, manifest.Version, err)
	}
	m := h.newModule(manifest, digest, memMB, compiled)
	got, err := m.describe(ctx)
	if err == nil && !sameManifest(got, manifest) {
		err = errors.New("plugboard_describe answered a different manifest than at upload; describe must be deterministic")
	}
	if err != nil {
		m.closeCompiled(ctx)
		return nil, fmt.Errorf("provisioning %s %s: %w", manifest.Name, manifest.Version, err)
	}
	h.mu.Lock()
	h.modules[m] = struct{}{}
	h.mu.Unlock()
	return m, nil
}

// newModule returns a module serving from compiled, not yet counted among the Host's.
func (h *Host) newModule(manifest *abi.Manifest, digest string, memoryMB int, c *compiled) *Module {
	return &Module{h: h, manifest: manifest, digest: digest, memoryMB: memoryMB, compiled: c,
		pools: map[string]*pool{}, done: make(chan struct{})}
}

func sameManifest(a, b *abi.Manifest) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// describe runs plugboard_describe with no capabilities on a fresh instance of the "" pool.
func (m *Module) describe(ctx context.Context) (*abi.Manifest, error) {
	out, _, err := m.call(ctx, &Call{}, abi.ExportDescribe, "", nil, true)
	if err != nil {
		return nil, err
	}
	return check.ParseManifest(out)
}

// Close starts the module's drain. It returns at once; [Module.Done] is closed when the last
// call has returned and the compiled code is released.
func (m *Module) Close(ctx context.Context) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	idle := m.inflight == 0
	m.mu.Unlock()
	if idle {
		m.release(ctx)
	}
}

// closeCompiled releases the compiled code instances start from (see [compiled.Close]). Code
// it replaced was released with its last instance.
func (m *Module) closeCompiled(ctx context.Context) {
	m.mu.Lock()
	c := m.compiled
	m.mu.Unlock()
	c.Close(ctx)
}

// Done is closed once a closed module has drained and released its resources.
func (m *Module) Done() <-chan struct{} { return m.done }

func (m *Module) release(ctx context.Context) {
	m.mu.Lock()
	pools := m.pools
	m.pools = map[string]*pool{}
	m.mu.Unlock()
	for _, p := range pools {
		p.closeIdle(ctx)
	}
	m.closeCompiled(ctx)
	m.h.mu.Lock()
	delete(m.h.modules, m)
	m.h.mu.Unlock()
	close(m.done)
}

func (m *Module) acquire() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.inflight++
	return nil
}

func (m *Module) leave() {
	m.mu.Lock()
	m.inflight--
	last := m.closed && m.inflight == 0
	m.mu.Unlock()
	if last {
		m.release(context.Background())
	}
}

// PoolStats reports the instances a module holds: idle and busy, over all its pools.
func (m *Module) PoolStats() (pools, idle, busy int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pools {
		i, b := p.stats()
		idle += i
		busy += b
	}
	return len(m.pools), idle, busy
}

func (m *Module) pool(connection string) *pool {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pools[connection]
	if p == nil {
		p = &pool{m: m, sem: make(chan struct{}, m.h.cfg.MaxInstancesPerPool)}
		m.pools[connection] = p
	}
	return p
}

// timeout is the deadline of a call: the smallest of the action's, the manifest's and the
// server's limits, or the default when neither the action nor the manifest names one.
func (m *Module) timeout(action time.Duration) time.Duration {
	cfg := m.h.cfg
	t := cfg.MaxTimeout
	given := false
	if action > 0 {
		t, given = min(t, action), true
	}
	if l := m.manifest.Limits; l != nil && l.TimeoutMS > 0 {
		t, given = min(t, time.Duration(l.TimeoutMS)*time.Millisecond), true
	}
	if !given {
		t = cfg.DefaultTimeout
	}
	return t
}

// Invoke runs plugboard_invoke for action with input, which the caller validated. It returns the
// decoded result (output or guest error) and what the call did. A non-nil error wraps one of
// the sentinel errors of this package.
func (m *Module) Invoke(ctx context.Context, call *Call, action string, input json.RawMessage) (*abi.InvokeResult, *Report, error) {
	req := abi.InvokeRequest{Action: action, Input: input}
	out, rep, err := m.call(ctx, call, abi.ExportInvoke, action, func(c abi.Common) any { req.Common = c; return req }, false)
	if err != nil {
		return nil, rep, err
	}
	var res abi.InvokeResult
	if err := abi.DecodeStrict(out, &res); err != nil {
		return nil, rep, fmt.Errorf("%w: plugboard_invoke wrote an invalid result document: %v", ErrPluginFailed, err)
	}
	if err := checkResult(res.Output, res.Error); err != nil {
		return nil, rep, err
	}
	return &res, rep, nil
}

// Call runs any export with a request document built from the call's common fields; triggers
// use it for plugboard_poll, plugboard_webhook and plugboard_on_timer. The raw output is
// returned for the caller to decode.
func (m *Module) Call(ctx context.Context, call *Call, export string, build func(abi.Common) any) ([]byte, *Report, error) {
	return m.call(ctx, call, export, "", build, false)
}

// checkResult enforces "exactly one of output (an object) and error (with code and message)".
func checkResult(output json.RawMessage, e *abi.Error) error {
	switch {
	case e != nil && len(output) > 0:
		return fmt.Errorf("%w: result has both output and error", ErrPluginFailed)
	case e != nil:
		if e.Code == "" || e.Message == "" {
			return fmt.Errorf("%w: error document needs code and message", ErrPluginFailed)
		}
	case len(output) == 0:
		return fmt.Errorf("%w: result has neither output nor error", ErrPluginFailed)
	case !isObject(output):
		return fmt.Errorf("%w: output must be a JSON object", ErrPluginFailed)
	}
	return nil
}

func isObject(raw json.RawMessage) bool {
	s := strings.TrimLeft(string(raw), " \t\r\n")
	return strings.HasPrefix(s, "{")
}

// call runs one export on a pooled instance under the call's deadline, in a span of its own.
// action names the action of a plugboard_invoke call, "" for other exports.
func (m *Module) call(ctx context.Context, call *Call, export, action string, build func(abi.Common) any, describe bool) (out []byte, rep *Report, err error) {
	if err := m.acquire(); err != nil {
		return nil, nil, err
	}
	defer m.leave()
	if m.tiered {
		m.optimizeStart.Do(m.startOptimize)
	}
	if call == nil {
		call = &Call{}
	}
	ctx, span := m.startSpan(ctx, call, export, action)
	defer func() { endSpan(span, rep, err) }()
	timeout := m.timeout(call.Timeout)
	if describe {
		timeout = m.h.cfg.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	cs := &callState{m: m, call: call, describe: describe, deadline: deadline, timeout: timeout,
		budget: egress.NewBudget(m.h.cfg.MaxRequestsPerCall), outputCap: m.outputCap()}
	cs.report.Started = time.Now()
	if !describe {
		cs.grant = buildGrant(m.manifest, call.Binding)
	}
	var input []byte
	if build != nil {
		var err error
		if input, err = json.Marshal(build(cs.common())); err != nil {
			return nil, nil, fmt.Errorf("encoding %s request: %w", export, err)
		}
	}
	var guest time.Duration
	var memBefore, memAfter uint64
	finish := func() *Report {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		r := cs.report
		r.Duration = time.Since(r.Started)
		r.HostTime = time.Duration(cs.hostNanos.Load())
		if guest > 0 {
			r.GuestTime = max(0, guest-r.HostTime)
		}
		r.MemoryBytes = memAfter
		if memAfter > memBefore {
			r.MemoryGrowth = memAfter - memBefore
		}
		return &r
	}

	p := m.pool(cs.connectionID())
	inst, fresh, err := p.get(ctx, cs)
	cs.report.Instantiated = fresh
	if err != nil {
		return nil, finish(), m.callError(ctx, cs, export, err)
	}
	if !fresh {
		memBefore = inst.size()
	}
	inst.cur.Store(cs)
	cs.k = inst.k
	start := time.Now()
	out, err = inst.call(withCall(ctx, cs), export, input)
	guest = time.Since(start)
	inst.cur.Store(nil)
	memAfter = inst.size() // before put: a discarded instance frees its memory
	if code, ended := inst.exited(); ended && ctx.Err() == nil {
		// The guest closed its own instance (WASI proc_exit), whatever its status: even a
		// call that looked fine left nothing to call again.
		err = fmt.Errorf("%s exited with status %d (WASI proc_exit) instead of returning; return from the export, do not call exit", export, code)
	}
	p.put(inst, err == nil)
	if err != nil {
		return nil, finish(), m.callError(ctx, cs, export, err)
	}
	return out, finish(), nil
}

// callError maps a failed call to the package's sentinel errors with a message an author can
// act on.
func (m *Module) callError(ctx context.Context, cs *callState, export string, err error) error {
	switch {
	case errors.Is(err, ErrClosed), errors.Is(err, ErrBusy):
		return err
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: %s ran past its deadline of %s and was stopped", ErrTimeout, export, cs.timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %v", ErrCanceled, ctx.Err())
	}
	if err := cs.overCapError(export); err != nil {
		return err
	}
	msg := firstLine(err.Error())
	if cs.sawOutOfMemory() {
		msg = fmt.Sprintf("ran out of memory (limit %d MiB): %s", m.memoryMB, msg)
	}
	return fmt.Errorf("%w: %s: %s", ErrPluginFailed, export, msg)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

// pool holds the warm instances of one (version, connection).
type pool struct {
	m   *Module
	sem chan struct{} // one token per live instance in use

	mu   sync.Mutex
	idle []*instance // oldest first: get takes the newest
	dead bool        // dropped by Trim; instances coming back are closed
}

// instance is one live plugin instance. cur is the call it serves, for log routing.
type instance struct {
	mod     api.Module
	k       *kernel
	exports map[string]api.Function // resolved once per instance: an instance serves one call at a time
	stack   []uint64                // the value stack of export calls (no parameters, one result)
	cur     atomicCall
	mem     *memoryMeter // the instance's linear memory
	idleAt  time.Time    // when it last went back to its pool
	// ended is set when wazero closes the instance's module: proc_exit, a deadline, or our own
	// Close. exitCode is the status it closed with.
	ended    atomic.Bool
	exitCode atomic.Uint32
	// code is the compiled code the instance started from; closed makes close run once.
	code   *compiled
	closed atomic.Bool
}

// exited reports whether wazero closed the instance, and with which exit status.
func (inst *instance) exited() (code uint32, ended bool) {
	return inst.exitCode.Load(), inst.ended.Load()
}

func (p *pool) get(ctx context.Context, cs *callState) (*instance, bool, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false, fmt.Errorf("%w: waited for an instance until the deadline", ErrBusy)
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		inst := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return inst, false, nil
	}
	p.mu.Unlock()
	inst, err := p.m.newInstance(ctx, cs)
	if err != nil {
		<-p.sem
		return nil, true, err
	}
	return inst, true, nil
}

// put returns an instance after a call. A failed one (error, non-zero return, trap, timeout,
// out of memory, exit) is closed, and so is any instance wazero closed, whatever the call said:
// only a live instance after a successful call goes back to the pool.
func (p *pool) put(inst *instance, ok bool) {
	defer func() { <-p.sem }()
	p.m.mu.Lock()
	closed := p.m.closed
	current := inst.code == p.m.compiled // not code that optimized code replaced
	p.m.mu.Unlock()
	if _, ended := inst.exited(); ok && !closed && !ended && current {
		p.mu.Lock()
		if len(p.idle) < p.m.h.cfg.MaxIdlePerPool && !p.dead {
			inst.idleAt = time.Now()
			p.idle = append(p.idle, inst)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
	inst.close(context.Background())
}

func (p *pool) closeIdle(ctx context.Context) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, inst := range idle {
		inst.close(ctx)
	}
}

// Trim closes the idle instances that have served no call for idleFor and forgets the pools
// left with no instance, so the memory a version holds follows its traffic. It returns how many
// instances it closed. Calls in flight are not disturbed.
func (m *Module) Trim(ctx context.Context, idleFor time.Duration) int {
	cutoff := time.Now().Add(-idleFor)
	m.mu.Lock()
	pools := make(map[string]*pool, len(m.pools))
	for k, p := range m.pools {
		pools[k] = p
	}
	m.mu.Unlock()
	closed := 0
	for conn, p := range pools {
		p.mu.Lock()
		n := 0
		for n < len(p.idle) && p.idle[n].idleAt.Before(cutoff) {
			n++
		}
		stale := append([]*instance(nil), p.idle[:n]...)
		p.idle = append(p.idle[:0], p.idle[n:]...)
		p.mu.Unlock()
		for _, inst := range stale {
			inst.close(ctx)
		}
		closed += len(stale)
		m.mu.Lock()
		p.mu.Lock()
		if len(p.idle) == 0 && len(p.sem) == 0 && m.pools[conn] == p {
			delete(m.pools, conn)
			p.dead = true
		}
		p.mu.Unlock()
		m.mu.Unlock()
	}
	return closed
}

func (p *pool) stats() (idle, busy int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle), len(p.sem)
}

// newInstance instantiates the module with WASI stdout/stderr routed to the call the instance
// serves, and runs the guest's initialisation (a WASI reactor's _initialize, or the C
// constructors of a module without WASI) under the call's deadline.
func (m *Module) newInstance(ctx context.Context, cs *callState) (*instance, error) {
	limit := int64(m.memoryMB) << 20
	inst := &instance{mem: &memoryMeter{}, k: newKernel(limit), exports: map[string]api.Function{}, stack: make([]uint64, 1)}
	ctx = experimental.WithCloseNotifier(ctx, experimental.CloseNotifyFunc(func(_ context.Context, code uint32) {
		inst.exitCode.Store(code)
		inst.ended.Store(true)
	}))
	mc := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module live in one runtime
		WithStartFunctions().
		WithStdout(logWriter{inst: inst, level: "info"}).
		WithStderr(logWriter{inst: inst, level: "error"}).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader)
	// The instance counts as live before it starts, under the lock that swaps the code, so the
	// code is never released under a starting instance.
	m.mu.Lock()
	c := m.compiled
	c.live.Add(1)
	m.mu.Unlock()
	mod, err := c.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, inst.mem), c.code, mc)
	if err != nil {
		c.instanceClosed(ctx)
		return nil, fmt.Errorf("instantiating: %w", err)
	}
	inst.mod, inst.code = mod, c
	for _, name := range []string{"_initialize", "__wasm_call_ctors"} {
		if fn := mod.ExportedFunction(name); fn != nil {
			init := &callState{m: m, call: cs.call, describe: true, k: inst.k}
			inst.cur.Store(cs)
			_, err := fn.Call(withCall(ctx, init))
			inst.cur.Store(nil)
			if err != nil {
				inst.close(context.WithoutCancel(ctx))
				return nil, fmt.Errorf("initialising the guest runtime (%s): %w", name, err)
			}
			break
		}
	}
	return inst, nil
}

// call runs one export with input and returns its output document. An Extism error
// (error_set) with a non-zero return is the call's error, as in Extism.
func (inst *instance) call(ctx context.Context, export string, input []byte) ([]byte, error) {
	fn, ok := inst.exports[export]
	if !ok {
		fn = inst.mod.ExportedFunction(export)
		if fn == nil {
			return nil, fmt.Errorf("the module does not export %s", export)
		}
		if n := len(fn.Definition().ResultTypes()); n > 1 || len(fn.Definition().ParamTypes()) > 0 {
			return nil, fmt.Errorf("%s must take no parameters and return at most one i32", export)
		}
		inst.exports[export] = fn
	}
	k := inst.k
	if err := k.begin(input); err != nil {
		return nil, err
	}
	stack := inst.stack[:1]
	stack[0] = 0
	err := fn.CallWithStack(ctx, stack)
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err = nil // proc_exit(0): the caller sees the instance ended
	}
	if err != nil {
		return nil, err
	}
	if rc := uint32(stack[0]); rc != 0 && len(fn.Definition().ResultTypes()) == 1 {
		if msg := k.block(k.errOff); k.errOff != 0 && msg != nil {
			return nil, fmt.Errorf("%s returned %d: %s", export, rc, msg)
		}
		return nil, fmt.Errorf("%s returned %d", export, rc)
	}
	if k.outputLen == 0 {
		return []byte{}, nil
	}
	out, ok := k.bytes(k.output, k.outputLen)
	if !ok {
		return nil, fmt.Errorf("%s freed its output block before returning", export)
	}
	return slices.Clone(out), nil
}

// size is the memory the instance holds: its linear memory and its kernel's blocks.
func (inst *instance) size() uint64 { return inst.mem.size() + inst.k.size() }

// close closes the instance's module, once.
func (inst *instance) close(ctx context.Context) {
	if inst.closed.Swap(true) {
		return
	}
	inst.mod.Close(ctx)
	inst.code.instanceClosed(ctx)
}
