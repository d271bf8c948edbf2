package host

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plugboard/plugboard/host/internal/egress"
)

// Config is the immutable configuration of a [Host]. Zero values mean the documented defaults.
type Config struct {
	// CacheDir holds wazero's compilation cache, shared by every module; "" keeps it in memory.
	CacheDir string
	// MaxMemoryMB caps a manifest's limits.memory_mb; 0 means 256. A manifest without a limit
	// gets DefaultMemoryMB.
	MaxMemoryMB int
	// DefaultMemoryMB is the memory limit of a module whose manifest names none; 0 means 128.
	DefaultMemoryMB int
	// MaxTimeout caps every call deadline; 0 means 60 s.
	MaxTimeout time.Duration
	// DefaultTimeout is the deadline when neither action nor manifest names one; 0 means 30 s.
	DefaultTimeout time.Duration
	// Egress configures plugboard_http: private networks allowed, resolver, size caps.
	Egress EgressConfig
	// MaxRequestsPerCall is the plugboard_http budget of one call; 0 means 100.
	MaxRequestsPerCall int
	// MaxOutputBytes caps every document a guest writes to the host (action output, poll,
	// webhook and timer results, servlet results, describe's manifest) and every Extism error
	// message; a manifest's limits.output_bytes may only lower it. 0 means
	// [DefaultMaxOutputBytes]. A call over it fails with [ErrPluginFailed] before the host
	// copies the document out of guest memory.
	MaxOutputBytes int
	// MaxLogBytes caps the log captured per call; 0 means 64 KiB.
	MaxLogBytes int
	// MaxIdlePerPool is how many idle instances a (version, connection) pool keeps; 0 means
	// MaxInstancesPerPool, so a pool stays as warm as the concurrency it has seen and no steady
	// load pays for new instances. Idle instances are closed by [Module.Trim].
	MaxIdlePerPool int
	// MaxInstancesPerPool bounds concurrent instances of one pool; 0 means 16. Further calls
	// wait for a free instance until their deadline.
	MaxInstancesPerPool int
	// State backs plugboard_kv and plugboard_timer; nil makes both answer "denied".
	State State
	// Logger receives plugin logs and host events; nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider makes the spans of guest calls (one per export call) and of their
	// outbound requests (one per plugboard_http hop, whose traceparent goes upstream); nil
	// means no spans, though a caller's trace context in the call's context still reaches
	// the upstream.
	TracerProvider trace.TracerProvider
}

// DefaultMaxOutputBytes is the cap of a guest's output documents when [Config.MaxOutputBytes]
// is 0: 10 MiB, like upstream responses.
const DefaultMaxOutputBytes = 10 << 20

// tracerName is the instrumentation scope of the host's spans.
const tracerName = "github.com/plugboard/plugboard/host"

// EgressConfig is the part of [Config] that governs outbound HTTP; see package egress.
type EgressConfig = egress.Config

// Host compiles and runs plugins. It is safe for concurrent use.
type Host struct {
	cfg    Config
	cache  wazero.CompilationCache
	egress *egress.Client
	log    *slog.Logger
	tracer trace.Tracer

	mu      sync.Mutex
	modules map[*Module]struct{}
	closing bool // set by Close: no background compile starts after it

	// optimizing runs the background compiles of [Host.Prepare] one at a time; background
	// counts them, for Close to wait.
	optimizing sync.Mutex
	background sync.WaitGroup
}

// New returns a Host. Close it to release the compilation cache.
func New(cfg Config) (*Host, error) {
	if cfg.MaxMemoryMB <= 0 {
		cfg.MaxMemoryMB = 256
	}
	if cfg.DefaultMemoryMB <= 0 {
		cfg.DefaultMemoryMB = 128
	}
	cfg.DefaultMemoryMB = min(cfg.DefaultMemoryMB, cfg.MaxMemoryMB)
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 60 * time.Second
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 30 * time.Second
	}
	cfg.DefaultTimeout = min(cfg.DefaultTimeout, cfg.MaxTimeout)
	if cfg.MaxRequestsPerCall <= 0 {
		cfg.MaxRequestsPerCall = 100
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if cfg.MaxLogBytes <= 0 {
		cfg.MaxLogBytes = 64 << 10
	}
	if cfg.MaxInstancesPerPool <= 0 {
		cfg.MaxInstancesPerPool = 16
	}
	if cfg.MaxIdlePerPool <= 0 {
		cfg.MaxIdlePerPool = cfg.MaxInstancesPerPool
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	tracer := cfg.TracerProvider.Tracer(tracerName)
	if cfg.Egress.Tracer == nil {
		cfg.Egress.Tracer = tracer
	}
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("opening compilation cache %s: %w", cfg.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	return &Host{
		cfg:     cfg,
		cache:   cache,
		egress:  egress.New(cfg.Egress),
		log:     cfg.Logger,
		tracer:  tracer,
		modules: map[*Module]struct{}{},
	}, nil
}

// Close closes every module still loaded, waits for a background compile of [Host.Prepare] in
// progress, and closes the compilation cache.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	mods := make([]*Module, 0, len(h.modules))
	for m := range h.modules {
		mods = append(mods, m)
	}
	h.mu.Unlock()
	for _, m := range mods {
		m.Close(ctx)
	}
	h.background.Wait() // a background compile sees its module closed and releases its code
	return h.cache.Close(ctx)
}

// runtimeConfig is the wazero configuration of one compiled module: its compilation cache,
// deadline enforcement, and the module's memory limit.
func (h *Host) runtimeConfig(memoryMB int, cache wazero.CompilationCache) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(uint32(memoryMB) * 16) // 64 KiB pages
}

// moduleCache returns the compilation cache for one compiled module and whether the module owns
// it. wazero keeps a module's machine code in memory for as long as the cache it was compiled
// with lives (closing the runtime does not release it), so with a CacheDir each module gets its
// own cache over the shared directory, closed with the module: an unloaded version gives its
// memory back, and the files on disk still make every later compile of the same bytes warm.
// Without a CacheDir the in-memory cache is shared and lives as long as the Host.
func (h *Host) moduleCache() (wazero.CompilationCache, bool, error) {
	if h.cfg.CacheDir == "" {
		return h.cache, false, nil
	}
	c, err := wazero.NewCompilationCacheWithDir(h.cfg.CacheDir)
	if err != nil {
		return nil, false, fmt.Errorf("opening compilation cache %s: %w", h.cfg.CacheDir, err)
	}
	return c, true, nil
}

// inspectConfig is the configuration of the first upload checks (valid Wasm, imports):
// wazero's interpreter decodes and validates without compiling, so an upload refused there
// costs no compilation. Describe then runs compiled, since the compiled code lands in the cache
// that Load reuses; measured, describe in the interpreter is 3x slower than a warm compile.
func (h *Host) inspectConfig() wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigInterpreter().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(uint32(h.cfg.MaxMemoryMB) * 16)
}

// memoryMB returns the memory limit for a manifest, capped by the server's maximum.
func (h *Host) memoryMB(limits int) int {
	if limits <= 0 {
		return h.cfg.DefaultMemoryMB
	}
	return min(limits, h.cfg.MaxMemoryMB)
}
