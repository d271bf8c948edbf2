package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
)

// Options configure a [Registry]. Zero values mean the documented defaults.
type Options struct {
	// Logger receives lifecycle events; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Retention bounds what loaded versions keep in memory; see [Retention].
	Retention Retention
}

// Retention bounds the memory that loaded versions hold. Zero values mean the documented
// defaults.
type Retention struct {
	// PoolIdle is how long an idle instance stays warm in its pool before it is closed; 0 means
	// 5 minutes.
	PoolIdle time.Duration
	// UnloadAfter is how long a version that is neither active nor canary stays loaded after the
	// last call pinned to it; then its compiled code and pools are released (its blob stays
	// stored, and the next pinned call loads it again). 0 means 10 minutes.
	UnloadAfter time.Duration
	// MaxPinned bounds the versions kept loaded for pinned calls besides the active and canary
	// ones; the least recently used is unloaded first. 0 means 8.
	MaxPinned int
	// Interval is how often the registry trims pools and unloads versions; 0 means a quarter of
	// the smaller of PoolIdle and UnloadAfter, kept between 10 ms and 30 s.
	Interval time.Duration
}

func (r Retention) withDefaults() Retention {
	if r.PoolIdle <= 0 {
		r.PoolIdle = 5 * time.Minute
	}
	if r.UnloadAfter <= 0 {
		r.UnloadAfter = 10 * time.Minute
	}
	if r.MaxPinned <= 0 {
		r.MaxPinned = 8
	}
	if r.Interval <= 0 {
		r.Interval = min(max(min(r.PoolIdle, r.UnloadAfter)/4, 10*time.Millisecond), 30*time.Second)
	}
	return r
}

// Registry is the live set of connector versions over a durable store.
//
// Every connector has a route (the active version and an optional canary) that calls read
// without a lock; [Registry.SetActive] replaces it atomically after provisioning the new
// versions. Versions a route no longer names drain: calls that hold a lease on them finish,
// then their pools and compiled code are released.
type Registry struct {
	st  storage.Store
	h   *host.Host
	log *slog.Logger
	now func() time.Time
	ret Retention

	conns sync.Map // connector name -> *connector; read on every call without a lock

	mu      sync.Mutex          // guards the maps below; never held while compiling or calling a plugin
	loaded  map[string]*Version // by name@version: every version in memory, routed or pinned
	loading map[string]*loadCall
	// prepared holds, by digest, the modules that dev uploads checked with [host.Host.Prepare]
	// while their activation runs, for [Registry.load] to take instead of compiling again.
	prepared map[string]*host.Module
	closed   bool

	stop        chan struct{}
	janitorDone chan struct{}

	oauth oauthRuntime // OAuth2 options and per-connection refresh locks (oauth.go)

	node atomic.Pointer[node] // cluster membership after Join (cluster.go)
}

// New returns a Registry over st, running plugins on h. Call [Registry.LoadActive] to bring the
// stored active versions back after a restart, and [Registry.Close] to release them.
func New(st storage.Store, h *host.Host, opts *Options) *Registry {
	if opts == nil {
		opts = &Options{}
	}
	r := &Registry{st: st, h: h, log: opts.Logger, now: opts.Now, ret: opts.Retention.withDefaults(),
		loaded: map[string]*Version{}, loading: map[string]*loadCall{}, prepared: map[string]*host.Module{},
		stop: make(chan struct{}), janitorDone: make(chan struct{})}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	go r.janitor()
	return r
}

// LoadActive loads every stored active version and canary; compiled code comes from the
// compilation cache when it is warm. A version that fails to load is logged and skipped so the
// others serve; a canary that fails to load is dropped (logged) and the active version takes
// every call. A canary's statistics start again from zero.
func (r *Registry) LoadActive(ctx context.Context) error {
	act, err := r.st.ActiveAll(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for name, ver := range act {
		c := r.connector(name, true)
		c.swap.Lock()
		v, err := r.getOrLoad(ctx, name, ver)
		rt := &route{active: v, since: r.now(), stats: [2]*sideStats{{}, {}}}
		if err == nil {
			err = r.withStoredCanary(ctx, rt)
		}
		if err == nil {
			err = r.publish(c, rt)
		}
		c.swap.Unlock()
		if err != nil {
			r.log.Error("loading active connector version", "connector", name, "version", ver, "err", err)
			errs = append(errs, fmt.Errorf("%s %s: %w", name, ver, err))
		}
	}
	return errors.Join(errs...)
}

// Close drains every loaded version: calls in flight finish, new calls fail.
func (r *Registry) Close(ctx context.Context) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.stop)
	r.mu.Unlock()
	r.leave(ctx)
	r.mu.Lock()
	r.conns.Range(func(_, c any) bool {
		c.(*connector).route.Store(nil)
		return true
	})
	vs := make([]*Version, 0, len(r.loaded))
	for k, v := range r.loaded {
		vs = append(vs, v)
		delete(r.loaded, k)
	}
	r.mu.Unlock()
	<-r.janitorDone
	for _, v := range vs {
		v.retire()
	}
}

// activeVersion returns the version serving a connector's unpinned calls, nil when none.
func (r *Registry) activeVersion(name string) *Version {
	if rt := r.route(name); rt != nil {
		return rt.active
	}
	return nil
}

// Version is a loaded connector version: its compiled module and its compiled schemas.
type Version struct {
	mod *host.Module // runs guest calls only through Prepared (call.go)
	// Info is the stored version: name, version, digest, manifest.
	Info   storage.Version
	inputs map[string]*check.Schema
	params *check.Schema

	// state counts the leases in flight; retiredBit is set once the version is retired.
	state atomic.Int64
	// loadedAt and pinnedAt are unix nanoseconds of the load and of the last pinned call.
	loadedAt, pinnedAt atomic.Int64
}

// Manifest returns the version's manifest. Callers must not modify it.
func (v *Version) Manifest() *abi.Manifest { return v.mod.Manifest() }

// Interpreted reports whether the version's new instances start in wazero's interpreter: the
// version of a dev upload until its optimized code is compiled ([host.Host.Prepare]).
func (v *Version) Interpreted() bool { return v.mod.Interpreted() }

// PoolStats reports the instances the version holds: pools, idle and busy instances.
func (v *Version) PoolStats() (pools, idle, busy int) { return v.mod.PoolStats() }

// Done is closed once the version was unloaded (retired and drained) and its compiled code
// released.
func (v *Version) Done() <-chan struct{} { return v.mod.Done() }

// InputSchema returns the compiled input schema of an action.
func (v *Version) InputSchema(action string) *check.Schema { return v.inputs[action] }

// load compiles a stored version and its schemas and provisions it: [host.Host.Load] starts a
// first instance and runs plugboard_describe again to confirm the stored manifest.
func (r *Registry) load(ctx context.Context, name, version string) (*Version, error) {
	info, err := r.st.Version(ctx, name, version)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s %s", ErrVersionNotFound, name, version)
		}
		return nil, err
	}
	man, err := check.ParseManifest(info.Manifest)
	if err != nil {
		return nil, fmt.Errorf("stored manifest: %w", err)
	}
	mod := r.takePrepared(info)
	if mod == nil {
		blob, err := r.st.Blob(ctx, info.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading blob %s: %w", info.Digest, err)
		}
		if mod, err = r.h.Load(ctx, blob, man, info.Digest); err != nil {
			return nil, err
		}
	}
	v := &Version{mod: mod, Info: info, inputs: map[string]*check.Schema{}}
	for _, a := range man.Actions {
		s, err := check.CompileSchema(a.InputSchema)
		if err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("action %s: %w", a.Name, err)
		}
		v.inputs[a.Name] = s
	}
	if len(man.ConnectionParams) > 0 {
		if v.params, err = check.CompileSchema(man.ConnectionParams); err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("connection_params: %w", err)
		}
	}
	v.loadedAt.Store(r.now().UnixNano())
	return v, nil
}

// UploadResult is the outcome of [Registry.Upload].
type UploadResult struct {
	Version storage.Version
	// Created is false when the same bytes were already stored under that name and version.
	Created bool
	// Activated is true when the upload made this version the active one.
	Activated bool
	// Checked, Stored and Activating are how long the upload checks (compilation included),
	// storing the version, and its activation took; Activating is zero when it was not
	// activated.
	Checked, Stored, Activating time.Duration
}

// ErrVersionExists: the name and version are stored with other bytes.
var ErrVersionExists = errors.New("version exists with other content")

// UploadOptions are the choices of [Registry.UploadWith]. The zero value stores the version
// and activates it only when it is the connector's first.
type UploadOptions struct {
	// Activate makes the version active once stored, as [Registry.SetActive] does, capability
	// review included.
	Activate bool
	// ApproveCapabilities accepts the origins, auth types and reveal capabilities the version
	// asks for beyond the active one.
	ApproveCapabilities bool
	// DevBuild stores a plugin whose name and version are already stored with other bytes as
	// VERSION+dev.<first 8 hex digits of its digest> (SemVer build metadata) instead of failing
	// with [ErrVersionExists], so an author can rebuild without bumping the version. Once such
	// a build is activated, older dev builds of the same version that no route serves are
	// deleted.
	DevBuild bool
}

// takePrepared returns the module a dev upload prepared for info's bytes, nil when there is
// none or it describes another manifest than the stored one. The caller owns it.
func (r *Registry) takePrepared(info storage.Version) *host.Module {
	r.mu.Lock()
	mod := r.prepared[info.Digest]
	delete(r.prepared, info.Digest)
	r.mu.Unlock()
	if mod == nil {
		return nil
	}
	if mj, err := json.Marshal(mod.Manifest()); err != nil || !bytes.Equal(mj, info.Manifest) {
		mod.Close(context.Background())
		return nil
	}
	return mod
}

// keepPrepared offers mod, prepared for the bytes of digest, to the loads of the activation
// that follows; the returned function closes it unless a load took it.
func (r *Registry) keepPrepared(digest string, mod *host.Module) (drop func()) {
	r.mu.Lock()
	prev := r.prepared[digest]
	r.prepared[digest] = mod
	r.mu.Unlock()
	if prev != nil {
		prev.Close(context.Background()) // the same bytes uploaded twice at once: one is enough
	}
	return func() {
		r.mu.Lock()
		unused := r.prepared[digest] == mod
		if unused {
			delete(r.prepared, digest)
		}
		r.mu.Unlock()
		if unused {
			mod.Close(context.Background())
		}
	}
}

// Upload checks a plugin (API.md "upload checks"), stores it content-addressed, and activates
// it when it is the connector's first version or when activate is true. It is the entry point
// of the operator's own tooling (the --connectors-dir loader, benchmarks): a version it
// activates has its capability changes approved. The HTTP API uses [Registry.UploadWith].
func (r *Registry) Upload(ctx context.Context, wasm []byte, activate bool) (UploadResult, error) {
	return r.UploadWith(ctx, wasm, UploadOptions{Activate: activate, ApproveCapabilities: true})
}

// UploadWith checks a plugin (API.md "upload checks"), stores it content-addressed, and
// activates it when it is the connector's first version or when o.Activate is set. Check
// failures are *host.CheckError; an activation that fails leaves the version stored and the
// previous version serving, with a *[CapabilitiesError] or an *[ActivationError].
func (r *Registry) UploadWith(ctx context.Context, wasm []byte, o UploadOptions) (UploadResult, error) {
	start := time.Now()
	sum := sha256.Sum256(wasm)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	var man *abi.Manifest
	var err error
	if o.DevBuild && o.Activate {
		// A dev build is to answer at once: checked and served by the interpreter while the
		// optimizing compiler runs in the background (host.Host.Prepare).
		var mod *host.Module
		if man, mod, err = r.h.Prepare(ctx, wasm, digest); err == nil {
			defer r.keepPrepared(digest, mod)()
		}
	} else {
		man, err = r.h.Inspect(ctx, wasm)
	}
	if err != nil {
		return UploadResult{}, err
	}
	checked := time.Now()
	mj, err := json.Marshal(man)
	if err != nil {
		return UploadResult{}, err
	}
	version := man.Version
	if existing, err := r.st.Version(ctx, man.Name, version); err == nil && existing.Digest != digest {
		if !o.DevBuild {
			return UploadResult{}, fmt.Errorf("%w: %s %s is stored with digest %s; bump the version to upload other bytes", ErrVersionExists, man.Name, man.Version, existing.Digest)
		}
		version = devVersion(man.Version, digest)
	}
	if _, err := r.st.PutBlob(ctx, wasm); err != nil {
		return UploadResult{}, err
	}
	info := storage.Version{Name: man.Name, Version: version, Digest: digest, Size: int64(len(wasm)), UploadedAt: r.now().UTC(), Manifest: mj}
	created, err := r.st.PutVersion(ctx, info)
	if errors.Is(err, storage.ErrVersionExists) {
		return UploadResult{}, fmt.Errorf("%w: %s %s", ErrVersionExists, man.Name, version)
	}
	if err != nil {
		return UploadResult{}, err
	}
	if !created {
		info, _ = r.st.Version(ctx, man.Name, version)
	}
	res := UploadResult{Version: info, Created: created, Checked: checked.Sub(start)}
	_, activeErr := r.st.Active(ctx, man.Name)
	first := errors.Is(activeErr, storage.ErrNotFound)
	if o.Activate || first {
		stored := time.Now()
		res.Stored = stored.Sub(checked)
		_, err := r.SetActive(ctx, man.Name, Rollout{Version: version, ApproveCapabilities: o.ApproveCapabilities || first})
		res.Activating = time.Since(stored)
		if err != nil {
			return res, err
		}
		res.Activated = true
		if version != man.Version {
			r.pruneDevBuilds(ctx, man.Name, version)
		}
	} else {
		res.Stored = time.Since(checked)
	}
	return res, nil
}

// devVersion is the version a dev build of base is stored under.
func devVersion(base, digest string) string {
	sep := "+"
	if strings.Contains(base, "+") {
		sep = "."
	}
	return base + sep + "dev." + strings.TrimPrefix(digest, "sha256:")[:8]
}

// pruneDevBuilds deletes the dev builds of keep's base version other than keep that no route
// serves. Failures are logged: a leftover build costs only storage.
func (r *Registry) pruneDevBuilds(ctx context.Context, name, keep string) {
	i := strings.LastIndex(keep, "dev.")
	prefix := keep[:i+len("dev.")]
	vs, err := r.st.Versions(ctx, name)
	if err != nil {
		return
	}
	for _, v := range vs {
		if v.Version == keep || !strings.HasPrefix(v.Version, prefix) || r.routed(name, v.Version) {
			continue
		}
		if err := r.DeleteVersion(ctx, name, v.Version); err != nil {
			r.log.Warn("deleting an older dev build", "connector", name, "version", v.Version, "err", err)
		}
	}
}

// Activate makes version the only version serving unpinned calls, as [Registry.SetActive] does
// with no canary and no approval.
func (r *Registry) Activate(ctx context.Context, name, version string) (storage.Version, error) {
	res, err := r.SetActive(ctx, name, Rollout{Version: version})
	return res.Active, err
}

// Resolve returns the version a call naming version would run on: the active one when version
// is empty, or a stored version pinned by the caller (loaded on first use). It takes no lease:
// use it to read a manifest, and [Registry.Prepare] to run a call.
func (r *Registry) Resolve(ctx context.Context, name, version string) (*Version, error) {
	rt := r.route(name)
	if version == "" {
		if rt == nil {
			var err error
			if rt, err = r.servedRoute(ctx, name); err != nil {
				return nil, err
			}
		}
		return rt.active, nil
	}
	if rt != nil {
		for _, v := range []*Version{rt.active, rt.canary} {
			if v != nil && v.Info.Version == version {
				return v, nil
			}
		}
	}
	v, err := r.getOrLoad(ctx, name, version)
	if err != nil {
		return nil, err
	}
	v.pinnedAt.Store(r.now().UnixNano())
	return v, nil
}

// withStoredCanary adds the connector's stored canary to rt, loading its version.
func (r *Registry) withStoredCanary(ctx context.Context, rt *route) error {
	name := rt.active.Info.Name
	sc, err := r.st.Canary(ctx, name)
	if err != nil || sc == nil || sc.Version == rt.active.Info.Version {
		return err
	}
	cv, err := r.getOrLoad(ctx, name, sc.Version)
	if err != nil {
		r.log.Error("loading the stored canary; the active version takes every call", "connector", name, "canary", sc.Version, "err", err)
		return nil
	}
	rt.canary = cv
	rt.spec = CanarySpec{Version: sc.Version, Percent: sc.Percent, MaxErrorRate: sc.MaxErrorRate, MinCalls: sc.MinCalls}
	return nil
}
