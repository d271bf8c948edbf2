package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
)

// Errors of [Registry.Prepare] about the connection of a call. They come wrapped in a
// [*BindError] that names the connector and the connection.
var (
	// ErrConnectionNotAllowed: the connection does not name the connector.
	ErrConnectionNotAllowed = errors.New("connection not bound to the connector")
	// ErrConnectionRequired: the connector needs a connection and none was named.
	ErrConnectionRequired = errors.New("connection required")
)

// Errors of [Registry.Prepare] about what a call names in the leased version's manifest. They
// come wrapped in a [*DeclarationError].
var (
	// ErrActionNotFound: the version declares no action of that name.
	ErrActionNotFound = errors.New("action not found")
	// ErrTriggerNotFound: the version declares no trigger of that name, or one of another kind.
	ErrTriggerNotFound = errors.New("trigger not found")
)

// BindError says why a call cannot run with its connection. Err is [ErrConnectionRequired],
// [ErrConnectionNotAllowed] or [ErrNeedsReauth].
type BindError struct {
	Err        error
	Connector  string
	Connection string
	// Allowed lists the connectors the connection names (ErrConnectionNotAllowed).
	Allowed []string
	// AuthTypes lists the connector's auth types (ErrConnectionRequired).
	AuthTypes []string
}

func (e *BindError) Error() string {
	switch {
	case errors.Is(e.Err, ErrConnectionRequired):
		return fmt.Sprintf("connector %s needs a connection (auth %s)", e.Connector, strings.Join(e.AuthTypes, " or "))
	case errors.Is(e.Err, ErrConnectionNotAllowed):
		return fmt.Sprintf("connection %s is not bound to connector %s (it allows %s)", e.Connection, e.Connector, strings.Join(e.Allowed, ", "))
	}
	return fmt.Sprintf("connection %s needs consent again", e.Connection)
}

// Unwrap returns Err.
func (e *BindError) Unwrap() error { return e.Err }

// DeclarationError says that the leased version does not declare what a call names. Err is
// [ErrActionNotFound] or [ErrTriggerNotFound].
type DeclarationError struct {
	Err       error
	Connector string
	Version   string
	Name      string
	// Declared lists what the version declares instead: action names, or "name (kind)" for
	// triggers.
	Declared []string
	// Kind is set when a trigger of that name exists with another kind than WantKind.
	Kind, WantKind string
}

func (e *DeclarationError) Error() string {
	what := "action"
	if errors.Is(e.Err, ErrTriggerNotFound) {
		what = "trigger"
	}
	if e.Kind != "" {
		return fmt.Sprintf("trigger %s.%s is now a %s trigger, not %s", e.Connector, e.Name, e.Kind, e.WantKind)
	}
	declared := "none"
	if len(e.Declared) > 0 {
		declared = strings.Join(e.Declared, ", ")
	}
	return fmt.Sprintf("connector %s %s has no %s %q (%ss: %s)", e.Connector, e.Version, what, e.Name, what, declared)
}

// Unwrap returns Err.
func (e *DeclarationError) Unwrap() error { return e.Err }

// CallSpec names one guest call for [Registry.Prepare].
type CallSpec struct {
	// Connector is the connector's name.
	Connector string
	// Version pins a stored version; "" runs on the active version or the canary, by weight.
	Version string
	// Connection is the connection's id; "" for a call without one, which only a connector
	// with auth type "none" may make.
	Connection string
	// CorrelationID is passed to the plugin and tags its logs.
	CorrelationID string
	// Action names the action of an action call: the version must declare it, and its
	// timeout_ms and idempotent annotation apply to the call.
	Action string
	// Trigger names the trigger of a poll or webhook call: the version must declare it, of
	// TriggerKind unless that is empty.
	Trigger, TriggerKind string
	// AllowNeedsReauth lets the call run while its connection waits for consent again (see
	// [Prepared.NeedsReauth]); without it Prepare refuses such a call with [ErrNeedsReauth].
	// Only calls that need no credential upstream should set it: a webhook receive checks a
	// signature with the source's own secret.
	AllowNeedsReauth bool
}

// Prepared is a guest call made ready by [Registry.Prepare]: its version leased, its
// connection bound and checked. Each of its run methods runs one export on the leased version
// and counts the outcome for the version's side of a canary; a Prepared may run several
// exports (a poll that pages) until [Prepared.Release]. A Prepared is for one goroutine.
type Prepared struct {
	lease       *callLease
	call        host.Call
	action      *abi.Action
	trigger     *abi.Trigger
	needsReauth bool
}

// Prepare is the one way a guest call starts, whatever its kind (action, MCP tool, hosted MCP
// server, poll, webhook, timer). It leases the version (the pinned one, or the active version or
// the canary by weight; a swap meanwhile does not release it), checks that the version declares
// the action or trigger the call names, that a connector needing a connection has one, that the
// connection names the connector, and that the connection does not wait for consent again.
// Every refusal is a [*BindError] or a [*DeclarationError], or the error of leasing or of
// reading the connection. The caller releases the Prepared.
func (r *Registry) Prepare(ctx context.Context, spec CallSpec) (*Prepared, error) {
	lease, err := r.acquire(ctx, spec.Connector, spec.Version)
	if err != nil {
		return nil, err
	}
	p := &Prepared{lease: lease, call: host.Call{CorrelationID: spec.CorrelationID}}
	if err := r.prepare(ctx, p, spec); err != nil {
		lease.Release()
		return nil, err
	}
	return p, nil
}

func (r *Registry) prepare(ctx context.Context, p *Prepared, spec CallSpec) error {
	v := p.lease.Version
	man := v.Manifest()
	if spec.Action != "" {
		a, ok := man.Action(spec.Action)
		if !ok {
			names := make([]string, len(man.Actions))
			for i, a := range man.Actions {
				names[i] = a.Name
			}
			return &DeclarationError{Err: ErrActionNotFound, Connector: spec.Connector, Version: v.Info.Version, Name: spec.Action, Declared: names}
		}
		p.action = a
		p.call.Timeout = time.Duration(a.TimeoutMS) * time.Millisecond
		p.call.Idempotent = a.Annotations != nil && a.Annotations.Idempotent
	}
	if spec.Trigger != "" {
		i := slices.IndexFunc(man.Triggers, func(t abi.Trigger) bool { return t.Name == spec.Trigger })
		if i < 0 {
			names := make([]string, len(man.Triggers))
			for i, t := range man.Triggers {
				names[i] = t.Name + " (" + t.Kind + ")"
			}
			return &DeclarationError{Err: ErrTriggerNotFound, Connector: spec.Connector, Version: v.Info.Version, Name: spec.Trigger, Declared: names}
		}
		if k := man.Triggers[i].Kind; spec.TriggerKind != "" && k != spec.TriggerKind {
			return &DeclarationError{Err: ErrTriggerNotFound, Connector: spec.Connector, Version: v.Info.Version, Name: spec.Trigger, Kind: k, WantKind: spec.TriggerKind}
		}
		p.trigger = &man.Triggers[i]
	}
	if spec.Connection == "" {
		if !man.HasAuthType(abi.AuthNone) {
			return &BindError{Err: ErrConnectionRequired, Connector: spec.Connector, AuthTypes: man.Auth.Types}
		}
		return nil
	}
	b, conn, err := r.Binding(ctx, spec.Connection)
	if err != nil {
		return err
	}
	if !slices.Contains(conn.Connectors, spec.Connector) {
		return &BindError{Err: ErrConnectionNotAllowed, Connector: spec.Connector, Connection: conn.ID, Allowed: conn.Connectors}
	}
	if conn.Status == StatusNeedsReauth {
		if !spec.AllowNeedsReauth {
			return &BindError{Err: ErrNeedsReauth, Connector: spec.Connector, Connection: conn.ID}
		}
		p.needsReauth = true
	}
	p.call.Binding = b
	return nil
}

// Version returns the leased version.
func (p *Prepared) Version() *Version { return p.lease.Version }

// CorrelationID returns the call's correlation id.
func (p *Prepared) CorrelationID() string { return p.call.CorrelationID }

// Role says why the call runs on its version: "active", "canary" or "pinned".
func (p *Prepared) Role() string { return p.lease.Role() }

// Trigger returns the declaration of the trigger the call names; the zero Trigger when it
// names none.
func (p *Prepared) Trigger() abi.Trigger {
	if p.trigger == nil {
		return abi.Trigger{}
	}
	return *p.trigger
}

// NeedsReauth reports a connection that waits for consent again, for a call prepared with
// [CallSpec.AllowNeedsReauth].
func (p *Prepared) NeedsReauth() bool { return p.needsReauth }

// Release ends the call's lease on its version. It is idempotent.
func (p *Prepared) Release() { p.lease.Release() }

// run runs one export and counts its outcome for the canary statistics: failed when the host
// failed the call or guest (given the decoded result's error) is a guest error of a 5xx status.
// A canceled call is not counted.
func (p *Prepared) run(ctx context.Context, export string, build func(abi.Common) any, decode func([]byte) (*abi.Error, error)) (*host.Report, error) {
	start := time.Now()
	out, rep, err := p.lease.Version.mod.Call(ctx, &p.call, export, build)
	var guest *abi.Error
	if err == nil && decode != nil {
		guest, err = decode(out)
	}
	p.lease.count(time.Since(start), err, guest)
	return rep, err
}

// Invoke runs plugboard_invoke for the action the call was prepared for, with input the
// caller validated against [Version.InputSchema]. The result holds output or a guest error.
func (p *Prepared) Invoke(ctx context.Context, input json.RawMessage) (*abi.InvokeResult, *host.Report, error) {
	if p.action == nil {
		return nil, nil, errors.New("registry: Invoke on a call prepared without an action")
	}
	start := time.Now()
	res, rep, err := p.lease.Version.mod.Invoke(ctx, &p.call, p.action.Name, input)
	var guest *abi.Error
	if res != nil {
		guest = res.Error
	}
	p.lease.count(time.Since(start), err, guest)
	return res, rep, err
}

// Poll runs plugboard_poll for the trigger the call was prepared for. The result holds events
// or a guest error; a document that does not decode is [host.ErrPluginFailed].
func (p *Prepared) Poll(ctx context.Context, req abi.PollRequest) (*abi.PollResult, *host.Report, error) {
	var res abi.PollResult
	rep, err := p.run(ctx, abi.ExportPoll, func(c abi.Common) any { req.Common = c; return req }, func(out []byte) (*abi.Error, error) {
		if err := abi.DecodeStrict(out, &res); err != nil {
			return nil, fmt.Errorf("%w: plugboard_poll wrote an invalid result document: %v", host.ErrPluginFailed, err)
		}
		return res.Error, nil
	})
	if err != nil {
		return nil, rep, err
	}
	return &res, rep, nil
}

// Webhook runs one step (req.Op) of plugboard_webhook for the trigger the call was prepared for.
func (p *Prepared) Webhook(ctx context.Context, req abi.WebhookRequest) (*abi.WebhookResult, *host.Report, error) {
	var res abi.WebhookResult
	rep, err := p.run(ctx, abi.ExportWebhook, func(c abi.Common) any { req.Common = c; return req }, func(out []byte) (*abi.Error, error) {
		if err := abi.DecodeStrict(out, &res); err != nil {
			return nil, fmt.Errorf("%w: plugboard_webhook (%s) wrote an invalid result document: %v", host.ErrPluginFailed, req.Op, err)
		}
		return res.Error, nil
	})
	if err != nil {
		return nil, rep, err
	}
	return &res, rep, nil
}

// OnTimer runs plugboard_on_timer with a timer that fired.
func (p *Prepared) OnTimer(ctx context.Context, ev abi.TimerEvent) (*abi.TimerResult, *host.Report, error) {
	var res abi.TimerResult
	rep, err := p.run(ctx, abi.ExportOnTimer, func(c abi.Common) any { ev.Common = c; return ev }, func(out []byte) (*abi.Error, error) {
		if err := abi.DecodeStrict(out, &res); err != nil {
			return nil, fmt.Errorf("%w: plugboard_on_timer wrote an invalid result document: %v", host.ErrPluginFailed, err)
		}
		return res.Error, nil
	})
	if err != nil {
		return nil, rep, err
	}
	return &res, rep, nil
}

// Servlet runs the call export of a hosted MCP server (manifest kind "mcp") with the request
// build makes from the common fields, and returns the raw CallToolResult for the caller to
// decode. Only host failures count as errors for the canary: a tool's isError is the tool's.
func (p *Prepared) Servlet(ctx context.Context, build func(abi.Common) any) ([]byte, *host.Report, error) {
	var out []byte
	rep, err := p.run(ctx, abi.ExportMCPCall, build, func(b []byte) (*abi.Error, error) { out = b; return nil, nil })
	return out, rep, err
}

// ServletTools runs the describe export of a hosted MCP server's version, with no connection
// (like plugboard_describe, it lists what the version offers), and returns the raw
// ListToolsResult.
func (v *Version) ServletTools(ctx context.Context) ([]byte, error) {
	out, _, err := v.mod.Call(ctx, &host.Call{}, abi.ExportMCPDescribe, nil)
	return out, err
}
