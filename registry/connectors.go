package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/plugboard/plugboard/registry/storage"
)

// Connector summarises one connector: its versions and the active one.
type Connector struct {
	Name          string
	Title         string
	ActiveVersion string
	Versions      []storage.Version // SemVer order, oldest first
	// Canary is the running canary with its statistics; nil without one.
	Canary *CanaryStatus
	// LastCanary says how the previous canary ended; nil when there was none since the start.
	LastCanary *CanaryOutcome
}

// Connectors lists every connector with at least one stored version.
func (r *Registry) Connectors(ctx context.Context) ([]Connector, error) {
	names, err := r.st.Connectors(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Connector, 0, len(names))
	for _, n := range names {
		c, err := r.Connector(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Connector returns one connector; [ErrConnectorNotFound] when it has no version.
func (r *Registry) Connector(ctx context.Context, name string) (Connector, error) {
	vs, err := r.st.Versions(ctx, name)
	if err != nil {
		return Connector{}, err
	}
	if len(vs) == 0 {
		return Connector{}, fmt.Errorf("%w: %s", ErrConnectorNotFound, name)
	}
	c := Connector{Name: name, Versions: vs}
	if act, err := r.st.Active(ctx, name); err == nil {
		c.ActiveVersion = act
	}
	if v := r.activeVersion(name); v != nil {
		c.Title = v.Manifest().Title
	}
	c.Canary, c.LastCanary = r.Canary(ctx, name)
	return c, nil
}

// Version returns one stored version and whether it is the active one.
func (r *Registry) Version(ctx context.Context, name, version string) (storage.Version, bool, error) {
	v, err := r.st.Version(ctx, name, version)
	if errors.Is(err, storage.ErrNotFound) {
		if _, cerr := r.Connector(ctx, name); cerr != nil {
			return storage.Version{}, false, cerr
		}
		return storage.Version{}, false, fmt.Errorf("%w: %s %s", ErrVersionNotFound, name, version)
	}
	if err != nil {
		return storage.Version{}, false, err
	}
	act, _ := r.st.Active(ctx, name)
	return v, act == version, nil
}

// DeleteVersion removes a version that is neither active nor canary, and unloads it if a pinned
// call loaded it.
func (r *Registry) DeleteVersion(ctx context.Context, name, version string) error {
	if _, _, err := r.Version(ctx, name, version); err != nil {
		return err
	}
	if rt := r.route(name); rt != nil && rt.canary != nil && rt.canary.Info.Version == version {
		return fmt.Errorf("%w: %s %s is the canary version; end the canary first", storage.ErrActive, name, version)
	}
	if err := r.st.DeleteVersion(ctx, name, version); err != nil {
		if errors.Is(err, storage.ErrActive) {
			return fmt.Errorf("%w: %s %s is the active version", storage.ErrActive, name, version)
		}
		return err
	}
	r.mu.Lock()
	if v := r.loaded[name+"@"+version]; v != nil && !r.routedLocked(v) {
		delete(r.loaded, name+"@"+version)
		v.retire()
	}
	r.mu.Unlock()
	return nil
}

// Loaded returns every version loaded in memory (active, canary and pinned), sorted by name and
// version.
func (r *Registry) Loaded() []*Version {
	r.mu.Lock()
	out := make([]*Version, 0, len(r.loaded))
	for _, v := range r.loaded {
		out = append(out, v)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Info.Name != out[j].Info.Name {
			return out[i].Info.Name < out[j].Info.Name
		}
		return out[i].Info.Version < out[j].Info.Version
	})
	return out
}

// VersionWithDigest returns the stored version whose bytes have this digest ("sha256:<hex>")
// and whether it is its connector's active version; found is false when no version has it.
func (r *Registry) VersionWithDigest(ctx context.Context, digest string) (v storage.Version, active, found bool, err error) {
	names, err := r.st.Connectors(ctx)
	if err != nil {
		return storage.Version{}, false, false, err
	}
	for _, name := range names {
		vs, err := r.st.Versions(ctx, name)
		if err != nil {
			return storage.Version{}, false, false, err
		}
		for _, v := range vs {
			if v.Digest == digest {
				act, _ := r.st.Active(ctx, name)
				return v, act == v.Version, true, nil
			}
		}
	}
	return storage.Version{}, false, false, nil
}
