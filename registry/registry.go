package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/store"
)

// Options configure a [Registry]. Zero values mean the documented defaults.
type Options struct {
	// Logger receives lifecycle events; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Registry is the live set of connector versions over a durable store.
type Registry struct {
	st  *store.Store
	h   *host.Host
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex // serialises activations and loads
	active  map[string]*atomic.Pointer[Version]
	pinned  map[string]*Version // name@version loaded for pinned calls
	loading sync.Map
}

// Version is a loaded connector version: its compiled module and its compiled schemas.
type Version struct {
	*host.Module
	Info   store.Version
	inputs map[string]*check.Schema
	params *check.Schema
}

// InputSchema returns the compiled input schema of an action.
func (v *Version) InputSchema(action string) *check.Schema { return v.inputs[action] }

// New returns a Registry over st, running plugins on h. Call [Registry.LoadActive] to bring the
// stored active versions back after a restart.
func New(st *store.Store, h *host.Host, opts *Options) *Registry {
	if opts == nil {
		opts = &Options{}
	}
	r := &Registry{st: st, h: h, log: opts.Logger, now: opts.Now,
		active: map[string]*atomic.Pointer[Version]{}, pinned: map[string]*Version{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// LoadActive loads every stored active version; compiled code comes from the compilation cache
// when it is warm. A version that fails to load is logged and skipped so the others serve.
func (r *Registry) LoadActive(ctx context.Context) error {
	act, err := r.st.ActiveAll(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for name, ver := range act {
		v, err := r.load(ctx, name, ver)
		if err != nil {
			r.log.Error("loading active connector version", "connector", name, "version", ver, "err", err)
			errs = append(errs, fmt.Errorf("%s %s: %w", name, ver, err))
			continue
		}
		r.mu.Lock()
		r.pointer(name).Store(v)
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Close drains every loaded version.
func (r *Registry) Close(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.active {
		if v := p.Swap(nil); v != nil {
			v.Close(ctx)
		}
	}
	for k, v := range r.pinned {
		v.Close(ctx)
		delete(r.pinned, k)
	}
}

func (r *Registry) pointer(name string) *atomic.Pointer[Version] {
	p := r.active[name]
	if p == nil {
		p = &atomic.Pointer[Version]{}
		r.active[name] = p
	}
	return p
}

func (r *Registry) activeVersion(name string) *Version {
	r.mu.Lock()
	p := r.active[name]
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Load()
}

// load compiles a stored version and its schemas.
func (r *Registry) load(ctx context.Context, name, version string) (*Version, error) {
	info, err := r.st.Version(ctx, name, version)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s %s", ErrVersionNotFound, name, version)
		}
		return nil, err
	}
	blob, err := r.st.Blob(ctx, info.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", info.Digest, err)
	}
	man, err := check.ParseManifest(info.Manifest)
	if err != nil {
		return nil, fmt.Errorf("stored manifest: %w", err)
	}
	mod, err := r.h.Load(ctx, blob, man, info.Digest)
	if err != nil {
		return nil, err
	}
	v := &Version{Module: mod, Info: info, inputs: map[string]*check.Schema{}}
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
	return v, nil
}

// UploadResult is the outcome of [Registry.Upload].
type UploadResult struct {
	Version store.Version
	// Created is false when the same bytes were already stored under that name and version.
	Created bool
	// Activated is true when the upload made this version the active one.
	Activated bool
}

// ErrVersionExists: the name and version are stored with other bytes.
var ErrVersionExists = errors.New("version exists with other content")

// Upload checks a plugin (API.md "upload checks"), stores it content-addressed, and activates
// it when it is the connector's first version or when activate is true. Check failures are
// *host.CheckError.
func (r *Registry) Upload(ctx context.Context, wasm []byte, activate bool) (UploadResult, error) {
	man, err := r.h.Inspect(ctx, wasm)
	if err != nil {
		return UploadResult{}, err
	}
	sum := sha256.Sum256(wasm)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	mj, err := json.Marshal(man)
	if err != nil {
		return UploadResult{}, err
	}
	if existing, err := r.st.Version(ctx, man.Name, man.Version); err == nil && existing.Digest != digest {
		return UploadResult{}, fmt.Errorf("%w: %s %s is stored with digest %s; bump the version to upload other bytes", ErrVersionExists, man.Name, man.Version, existing.Digest)
	}
	if _, err := r.st.PutBlob(ctx, wasm); err != nil {
		return UploadResult{}, err
	}
	info := store.Version{Name: man.Name, Version: man.Version, Digest: digest, Size: int64(len(wasm)), UploadedAt: r.now().UTC(), Manifest: mj}
	created, err := r.st.PutVersion(ctx, info)
	if errors.Is(err, store.ErrVersionExists) {
		return UploadResult{}, fmt.Errorf("%w: %s %s", ErrVersionExists, man.Name, man.Version)
	}
	if err != nil {
		return UploadResult{}, err
	}
	if !created {
		info, _ = r.st.Version(ctx, man.Name, man.Version)
	}
	res := UploadResult{Version: info, Created: created}
	_, activeErr := r.st.Active(ctx, man.Name)
	if activate || errors.Is(activeErr, store.ErrNotFound) {
		if _, err := r.Activate(ctx, man.Name, man.Version); err != nil {
			return res, err
		}
		res.Activated = true
	}
	return res, nil
}

// Activate makes version the active one: provision (compile, first instance, describe again),
// then move the pointer, then drain the old version. Any failure before the move leaves the old
// version serving.
func (r *Registry) Activate(ctx context.Context, name, version string) (store.Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.pointer(name).Load()
	if cur != nil && cur.Info.Version == version {
		return cur.Info, nil
	}
	next := r.pinned[name+"@"+version]
	if next != nil {
		delete(r.pinned, name+"@"+version)
	} else {
		v, err := r.load(ctx, name, version)
		if err != nil {
			return store.Version{}, err
		}
		next = v
	}
	if err := r.st.SetActive(ctx, name, version); err != nil {
		next.Close(ctx)
		return store.Version{}, err
	}
	r.pointer(name).Store(next)
	if cur != nil {
		cur.Close(ctx) // drains: calls in flight finish on it
	}
	r.log.Info("connector version active", "connector", name, "version", version)
	return next.Info, nil
}

// Resolve returns the version a call should run on: the active one, or a stored version pinned
// by the caller (loaded on first use and kept).
func (r *Registry) Resolve(ctx context.Context, name, version string) (*Version, error) {
	if v := r.activeVersion(name); v != nil && (version == "" || v.Info.Version == version) {
		return v, nil
	}
	if version == "" {
		if _, err := r.st.Versions(ctx, name); err == nil {
			// The connector exists but its active version failed to load.
		}
		return nil, fmt.Errorf("%w: %s", ErrConnectorNotFound, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if v := r.pinned[name+"@"+version]; v != nil {
		return v, nil
	}
	v, err := r.load(ctx, name, version)
	if err != nil {
		return nil, err
	}
	r.pinned[name+"@"+version] = v
	return v, nil
}

// Invoke runs an action on the resolved version. A call that raced a swap onto a version that
// had just begun draining is retried on the version now active, so swaps fail no call.
func (r *Registry) Invoke(ctx context.Context, name, version string, call *host.Call, action string, input json.RawMessage) (*abi.InvokeResult, *host.Report, *Version, error) {
	for attempt := 0; ; attempt++ {
		v, err := r.Resolve(ctx, name, version)
		if err != nil {
			return nil, nil, nil, err
		}
		res, rep, err := v.Invoke(ctx, call, action, input)
		if errors.Is(err, host.ErrClosed) && attempt < 5 {
			continue
		}
		return res, rep, v, err
	}
}
