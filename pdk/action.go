package pdk

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// Action registers a synchronous operation of the connector, like the MCP Go SDK's AddTool:
// the input and output JSON Schemas are derived from In and Out (see [SchemaFor] for the
// rules and the struct tags), the input is decoded into an In, and the Out the handler returns
// becomes the output object. Call it from an init function:
//
//	type GetRepoInput struct {
//		Owner string `json:"owner" jsonschema:"The account owning the repository"`
//		Repo  string `json:"repo" jsonschema:"The repository name"`
//	}
//
//	func init() {
//		pdk.Action("get_repo", getRepo, pdk.Title("Get repository"), pdk.ReadOnly())
//	}
//
//	func getRepo(ctx *pdk.Context, in GetRepoInput) (Repo, error) { ... }
//
// In and Out must be structs (or pointers to structs, or maps with string keys), since action
// inputs and outputs are JSON objects; anything else, or a name that is not
// ^[a-z][a-z0-9_]{0,63}$ or is already taken, is a registration error that [Describe] reports.
//
// At call time the input is decoded strictly: unknown fields are invalid_input (the host has
// already validated the input against the schema). The handler's error becomes the result's
// error document: an *abi.Error (from [Errorf], [StatusError], ...) keeps its code, a host
// import error is mapped by [FromHostError], and any other error is internal. A panic in the
// handler is recovered and reported as internal, so the instance survives.
func Action[In, Out any](name string, handler func(ctx *Context, in In) (Out, error), opts ...Option) {
	defaultTable.addAction(newAction(name, handler, opts))
}

// actionEntry is one registered action.
type actionEntry struct {
	desc abi.Action
	call func(ctx *Context, input json.RawMessage) (json.RawMessage, error)
	err  error
}

func newAction[In, Out any](name string, handler func(*Context, In) (Out, error), opts []Option) *actionEntry {
	e := &actionEntry{desc: abi.Action{Name: name}}
	fail := func(format string, args ...any) *actionEntry {
		e.err = fmt.Errorf("pdk.Action(%q): "+format, append([]any{name}, args...)...)
		return e
	}
	if !validOpName(name) {
		return fail("the name must match ^[a-z][a-z0-9_]{0,63}$")
	}
	if handler == nil {
		return fail("the handler is nil")
	}
	o := options{kind: kindAction}
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return fail("%v", o.err)
	}
	inT, outT := reflect.TypeFor[In](), reflect.TypeFor[Out]()
	if err := checkObjectType(inT); err != nil && o.input == nil {
		return fail("input: %v", err)
	}
	if err := checkObjectType(outT); err != nil {
		return fail("output: %v", err)
	}
	var err error
	if e.desc.InputSchema = o.input; e.desc.InputSchema == nil {
		if e.desc.InputSchema, err = objectSchema(inT); err != nil {
			return fail("input: %v", err)
		}
	}
	if e.desc.OutputSchema = o.output; e.desc.OutputSchema == nil {
		if e.desc.OutputSchema, err = objectSchema(outT); err != nil {
			return fail("output: %v", err)
		}
	}
	e.desc.Title = o.title
	if e.desc.Title == "" {
		e.desc.Title = titleFromName(name)
	}
	e.desc.Description = o.description
	if o.annotations != (abi.Annotations{}) {
		a := o.annotations
		e.desc.Annotations = &a
	}
	e.desc.TimeoutMS = o.timeout.Milliseconds()

	e.call = func(ctx *Context, input json.RawMessage) (json.RawMessage, error) {
		in, err := decodeInto[In](input)
		if err != nil {
			return nil, Errorf(abi.CodeInvalidInput, "input: %v", err)
		}
		out, err := handler(ctx, in)
		if failed(err) {
			return nil, err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, errInternalf("encoding the output: %v", err)
		}
		if len(b) == 0 || b[0] != '{' {
			return nil, errInternalf("the handler returned %s, not a JSON object", b)
		}
		return b, nil
	}
	return e
}

func (t *table) addAction(e *actionEntry) {
	if e.err != nil {
		t.fail(e.err)
		return
	}
	if t.claim("Action", e.desc.Name) {
		t.actions = append(t.actions, e)
	}
}

// titleFromName turns "create_issue" into "Create issue", the default title.
func titleFromName(name string) string {
	s := strings.ReplaceAll(name, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func validOpName(name string) bool {
	if len(name) == 0 || len(name) > 64 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Option configures an action or a trigger at registration. An option that does not apply to
// what it is given (Timeout on a trigger, say) is a registration error.
type Option func(*options)

type optKind int

const (
	kindAction optKind = iota
	kindPoll
	kindWebhook
)

// String names the kind in plural, for error messages.
func (k optKind) String() string {
	switch k {
	case kindAction:
		return "actions"
	case kindPoll:
		return "poll triggers"
	}
	return "webhook triggers"
}

type options struct {
	kind        optKind
	title       string
	description string
	annotations abi.Annotations
	timeout     time.Duration
	input       json.RawMessage // input or params schema override
	output      json.RawMessage // output or event schema override
	defInterval time.Duration
	minInterval time.Duration
	err         error
}

func (o *options) only(name string, kinds ...optKind) bool {
	for _, k := range kinds {
		if o.kind == k {
			return true
		}
	}
	if o.err == nil {
		o.err = fmt.Errorf("option %s does not apply to %s", name, o.kind)
	}
	return false
}

func (o *options) setErr(err error) {
	if o.err == nil {
		o.err = err
	}
}

// Title sets the short human-readable name shown in UIs and MCP tool lists. The default is the
// name with underscores as spaces and a capital first letter ("create_issue": "Create issue").
func Title(title string) Option { return func(o *options) { o.title = title } }

// Description sets what the action or trigger does; for actions it becomes the MCP tool
// description, so write it for a model choosing a tool.
func Description(description string) Option {
	return func(o *options) { o.description = description }
}

// ReadOnly marks an action that changes nothing upstream.
func ReadOnly() Option {
	return func(o *options) {
		if o.only("ReadOnly", kindAction) {
			o.annotations.ReadOnly = true
		}
	}
}

// Idempotent marks an action that has the same effect when repeated with the same input.
func Idempotent() Option {
	return func(o *options) {
		if o.only("Idempotent", kindAction) {
			o.annotations.Idempotent = true
		}
	}
}

// Destructive marks an action that may delete or overwrite upstream data.
func Destructive() Option {
	return func(o *options) {
		if o.only("Destructive", kindAction) {
			o.annotations.Destructive = true
		}
	}
}

// Timeout sets the action's timeout_ms; the call's deadline is the smallest of it, the
// manifest's limits.timeout_ms and the server's maximum. It must be at least a millisecond.
func Timeout(d time.Duration) Option {
	return func(o *options) {
		if !o.only("Timeout", kindAction) {
			return
		}
		if d < time.Millisecond {
			o.setErr(fmt.Errorf("Timeout(%v) must be at least 1ms", d))
			return
		}
		o.timeout = d
	}
}

// InputSchema replaces the derived input schema of an action, or the params schema of a
// trigger, with schema (JSON text, a json.RawMessage or any value encoding to the schema). It
// must have "type": "object". Inputs are still decoded into the handler's Go type.
func InputSchema(schema any) Option {
	return func(o *options) {
		raw, err := rawSchema(schema)
		if err != nil {
			o.setErr(fmt.Errorf("InputSchema: %w", err))
			return
		}
		o.input = raw
	}
}

// OutputSchema replaces the derived output schema of an action with schema (JSON text, a
// json.RawMessage or any value encoding to the schema). It must have "type": "object".
func OutputSchema(schema any) Option {
	return func(o *options) {
		if !o.only("OutputSchema", kindAction) {
			return
		}
		raw, err := rawSchema(schema)
		if err != nil {
			o.setErr(fmt.Errorf("OutputSchema: %w", err))
			return
		}
		o.output = raw
	}
}

// EventSchema sets a trigger's event_schema, the schema of its events' data, from JSON text, a
// json.RawMessage or any value encoding to the schema. See [EventType] to derive it.
func EventSchema(schema any) Option {
	return func(o *options) {
		if !o.only("EventSchema", kindPoll, kindWebhook) {
			return
		}
		raw, err := rawSchema(schema)
		if err != nil {
			o.setErr(fmt.Errorf("EventSchema: %w", err))
			return
		}
		o.output = raw
	}
}

// EventType sets a trigger's event_schema to the schema derived from T, the Go type of its
// events' data.
func EventType[T any]() Option {
	return func(o *options) {
		if !o.only("EventType", kindPoll, kindWebhook) {
			return
		}
		raw, err := objectSchema(reflect.TypeFor[T]())
		if err != nil {
			o.setErr(fmt.Errorf("EventType: %w", err))
			return
		}
		o.output = raw
	}
}

// Interval sets a poll trigger's default and minimum polling intervals (whole seconds; zero
// keeps the ABI defaults of 60 s and 15 s).
func Interval(def, min time.Duration) Option {
	return func(o *options) {
		if !o.only("Interval", kindPoll) {
			return
		}
		if def < 0 || min < 0 || (def > 0 && min > 0 && def < min) {
			o.setErr(fmt.Errorf("Interval(%v, %v): intervals must be positive with default >= minimum", def, min))
			return
		}
		o.defInterval, o.minInterval = def, min
	}
}
