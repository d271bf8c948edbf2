package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/plugboard/plugboard/abi"
)

// Capability review: a version that asks for more than the active one (origins it may reach,
// auth types, credential fields it may reveal) needs an operator's approval before it takes
// traffic, as the active version or as a canary. Connections keep the hosts recorded on them:
// an approved version reaches its new origins, but no connection's credentials go there until
// the connection is patched (API.md "Connections").

// ErrCapabilitiesChanged is matched by a *[CapabilitiesError].
var ErrCapabilitiesChanged = errors.New("capabilities changed")

// ErrActivationFailed is matched by an *[ActivationError].
var ErrActivationFailed = errors.New("activation failed")

// Changes are the capabilities versions ask for beyond the active version.
type Changes struct {
	// Against is the active version the others were compared with.
	Against string `json:"against"`
	// Versions are the versions that ask for more.
	Versions []string `json:"versions"`
	// HostsAdded are manifest hosts (origins, wildcard origins or {param} templates) the
	// active version does not list.
	HostsAdded []string `json:"hosts_added,omitempty"`
	// AuthTypesAdded are auth types the active version does not accept.
	AuthTypesAdded []string `json:"auth_types_added,omitempty"`
	// RevealAdded are credential fields the active version may not reveal.
	RevealAdded []string `json:"reveal_added,omitempty"`
}

// Empty reports whether nothing needs approval.
func (c Changes) Empty() bool {
	return len(c.HostsAdded) == 0 && len(c.AuthTypesAdded) == 0 && len(c.RevealAdded) == 0
}

// add merges the changes one version asks for.
func (c *Changes) add(version string, more Changes) {
	if more.Empty() {
		return
	}
	c.Versions = append(c.Versions, version)
	c.HostsAdded = union(c.HostsAdded, more.HostsAdded)
	c.AuthTypesAdded = union(c.AuthTypesAdded, more.AuthTypesAdded)
	c.RevealAdded = union(c.RevealAdded, more.RevealAdded)
}

// String renders the changes as "hosts +a, +b; auth types +oauth2; reveal +api_key".
func (c Changes) String() string {
	var parts []string
	for _, p := range []struct {
		what string
		list []string
	}{{"hosts", c.HostsAdded}, {"auth types", c.AuthTypesAdded}, {"reveal", c.RevealAdded}} {
		if len(p.list) > 0 {
			parts = append(parts, p.what+" +"+strings.Join(p.list, ", +"))
		}
	}
	return strings.Join(parts, "; ")
}

func union(a, b []string) []string {
	for _, x := range b {
		if !slices.Contains(a, x) {
			a = append(a, x)
		}
	}
	return a
}

func added(old, next []string) []string {
	var out []string
	for _, x := range next {
		if !slices.Contains(old, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// ReviewCapabilities returns what next asks for beyond active: hosts, auth types and reveal
// capabilities. Hosts are compared as written in the manifests, so a wildcard or a {param}
// template that replaces a narrower host counts as added.
func ReviewCapabilities(active, next *abi.Manifest) Changes {
	var oldReveal, newReveal []string
	if active.Capabilities != nil {
		oldReveal = active.Capabilities.Reveal
	}
	if next.Capabilities != nil {
		newReveal = next.Capabilities.Reveal
	}
	return Changes{
		HostsAdded:     added(active.Hosts, next.Hosts),
		AuthTypesAdded: added(active.Auth.Types, next.Auth.Types),
		RevealAdded:    added(oldReveal, newReveal),
	}
}

// CapabilitiesError refuses a rollout whose versions ask for more than the active version
// without the operator's approval. The previous route keeps serving.
type CapabilitiesError struct {
	// Connector is the connector whose rollout was refused.
	Connector string
	// Changes is what needs approval.
	Changes Changes
}

// Error implements the error interface.
func (e *CapabilitiesError) Error() string {
	return fmt.Sprintf("%s %s asks for more than the active version %s: %s; approve with ?approve=capabilities",
		e.Connector, strings.Join(e.Changes.Versions, " and "), e.Changes.Against, e.Changes)
}

// Is matches [ErrCapabilitiesChanged].
func (e *CapabilitiesError) Is(target error) bool { return target == ErrCapabilitiesChanged }

// ActivationError is a version that could not be provisioned (compiled, instantiated,
// described again) or swapped in. The previous route keeps serving.
type ActivationError struct {
	// Connector and Version name the version that did not start.
	Connector, Version string
	// Err is the cause: a compile, instantiate or describe failure, or ErrVersionNotFound.
	Err error
}

// Error implements the error interface.
func (e *ActivationError) Error() string {
	return fmt.Sprintf("%s %s did not start, so the previous version keeps serving: %v", e.Connector, e.Version, e.Err)
}

// Unwrap returns the cause.
func (e *ActivationError) Unwrap() error { return e.Err }

// Is matches [ErrActivationFailed].
func (e *ActivationError) Is(target error) bool { return target == ErrActivationFailed }

// ManifestChange is one difference between two manifests, for people reviewing an upload.
type ManifestChange struct {
	// Op is "+" (added), "-" (removed) or "~" (changed).
	Op string `json:"op"`
	// Kind is "action", "trigger", "host", "auth type", "reveal", "connection params" or
	// "limits".
	Kind string `json:"kind"`
	// Name is the action, trigger, host, auth type or field; empty for connection params and
	// limits.
	Name string `json:"name,omitempty"`
	// Detail says what changed in a "~" entry, e.g. "input schema, timeout".
	Detail string `json:"detail,omitempty"`
	// NeedsApproval marks the additions the capability review asks an operator to approve.
	NeedsApproval bool `json:"needs_approval,omitempty"`
}

// String renders the change as one line, e.g. "~ action create_issue: input schema".
func (c ManifestChange) String() string {
	s := c.Op + " " + c.Kind
	if c.Name != "" {
		s += " " + c.Name
	}
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	if c.NeedsApproval {
		s += " (needs approval)"
	}
	return s
}

// DiffManifests lists what changed from old to next: actions and triggers added, removed or
// changed (schemas, kind, timeout, annotations), hosts, auth types and reveal capabilities
// added or removed, connection params schema and limits changed. Schemas are compared as JSON
// values, so formatting and key order do not count.
func DiffManifests(old, next *abi.Manifest) []ManifestChange {
	var out []ManifestChange
	// Actions.
	for _, a := range next.Actions {
		o, ok := old.Action(a.Name)
		if !ok {
			out = append(out, ManifestChange{Op: "+", Kind: "action", Name: a.Name})
			continue
		}
		var what []string
		if !sameJSON(o.InputSchema, a.InputSchema) {
			what = append(what, "input schema")
		}
		if !sameJSON(o.OutputSchema, a.OutputSchema) {
			what = append(what, "output schema")
		}
		if o.TimeoutMS != a.TimeoutMS {
			what = append(what, fmt.Sprintf("timeout %dms -> %dms", o.TimeoutMS, a.TimeoutMS))
		}
		if !sameValue(o.Annotations, a.Annotations) {
			what = append(what, "annotations")
		}
		if len(what) > 0 {
			out = append(out, ManifestChange{Op: "~", Kind: "action", Name: a.Name, Detail: strings.Join(what, ", ")})
		}
	}
	for _, a := range old.Actions {
		if _, ok := next.Action(a.Name); !ok {
			out = append(out, ManifestChange{Op: "-", Kind: "action", Name: a.Name})
		}
	}
	// Triggers.
	trigger := func(m *abi.Manifest, name string) *abi.Trigger {
		for i := range m.Triggers {
			if m.Triggers[i].Name == name {
				return &m.Triggers[i]
			}
		}
		return nil
	}
	for _, t := range next.Triggers {
		o := trigger(old, t.Name)
		if o == nil {
			out = append(out, ManifestChange{Op: "+", Kind: "trigger", Name: t.Name})
			continue
		}
		var what []string
		if o.Kind != t.Kind {
			what = append(what, "kind "+o.Kind+" -> "+t.Kind)
		}
		if !sameJSON(o.ParamsSchema, t.ParamsSchema) {
			what = append(what, "params schema")
		}
		if !sameJSON(o.EventSchema, t.EventSchema) {
			what = append(what, "event schema")
		}
		if len(what) > 0 {
			out = append(out, ManifestChange{Op: "~", Kind: "trigger", Name: t.Name, Detail: strings.Join(what, ", ")})
		}
	}
	for _, t := range old.Triggers {
		if trigger(next, t.Name) == nil {
			out = append(out, ManifestChange{Op: "-", Kind: "trigger", Name: t.Name})
		}
	}
	// Capabilities.
	caps := ReviewCapabilities(old, next)
	back := ReviewCapabilities(next, old)
	for _, l := range []struct {
		kind        string
		added, gone []string
	}{{"host", caps.HostsAdded, back.HostsAdded}, {"auth type", caps.AuthTypesAdded, back.AuthTypesAdded}, {"reveal", caps.RevealAdded, back.RevealAdded}} {
		for _, x := range l.added {
			out = append(out, ManifestChange{Op: "+", Kind: l.kind, Name: x, NeedsApproval: true})
		}
		for _, x := range l.gone {
			out = append(out, ManifestChange{Op: "-", Kind: l.kind, Name: x})
		}
	}
	if !sameJSON(old.ConnectionParams, next.ConnectionParams) {
		out = append(out, ManifestChange{Op: "~", Kind: "connection params", Detail: "schema"})
	}
	if !sameValue(old.Limits, next.Limits) {
		out = append(out, ManifestChange{Op: "~", Kind: "limits"})
	}
	return out
}

// sameJSON compares two JSON documents as values; absent and null are the same.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if len(a) > 0 {
		if json.Unmarshal(a, &x) != nil {
			return false
		}
	}
	if len(b) > 0 {
		if json.Unmarshal(b, &y) != nil {
			return false
		}
	}
	xj, _ := json.Marshal(x)
	yj, _ := json.Marshal(y)
	return bytes.Equal(xj, yj)
}

func sameValue(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
