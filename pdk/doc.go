// Package pdk is the Plugboard plugin development kit for Go: what a connector author imports
// to turn a few typed Go functions into a Plugboard connector plugin.
//
// # What a connector is
//
// A connector is a WebAssembly module that Plugboard loads, sandboxes and calls. It declares
// what it is (a manifest: name, version, auth, the hosts it may reach) and what it can do
// (actions, which are synchronous operations such as "create an issue", and triggers, which
// produce events). Plugboard serves each action as an HTTP endpoint and as an MCP tool, keeps
// the connection credentials, and injects them into the connector's outbound requests, so the
// connector never sees a secret. The contract between the two is ABI.md; this package hides it.
//
// # Writing one
//
// A connector is a main package. Its init functions register the connector and its
// handlers; main is empty (in a Wasm reactor module it never runs):
//
//	package main
//
//	import (
//		"strconv"
//
//		"github.com/plugboard/plugboard/abi"
//		"github.com/plugboard/plugboard/pdk"
//	)
//
//	func main() {}
//
//	func init() {
//		pdk.Connector(pdk.Info{
//			Name:    "todo",
//			Version: "1.0.0",
//			Title:   "Todo",
//			Auth: abi.Auth{
//				Types:  []string{abi.AuthAPIKey},
//				APIKey: &abi.APIKeyAuth{In: "header", Name: "Authorization", Prefix: "Bearer "},
//			},
//			ConnectionParams: `{"type":"object","properties":{"base_url":{"type":"string","format":"uri"}},"required":["base_url"]}`,
//			Hosts:            []string{"{base_url}"},
//		})
//		pdk.Action("get_todo", getTodo, pdk.Title("Get a todo"), pdk.ReadOnly())
//		pdk.Action("list_todos", listTodos, pdk.ReadOnly())
//	}
//
//	type GetTodoInput struct {
//		ID int `json:"id" jsonschema:"The todo's id" minimum:"1"`
//	}
//
//	type Todo struct {
//		ID    int    `json:"id"`
//		Title string `json:"title"`
//		Done  bool   `json:"done"`
//	}
//
//	func getTodo(ctx *pdk.Context, in GetTodoInput) (Todo, error) {
//		var t Todo
//		// GetJSON maps a non-2xx answer to a guest error (404 becomes not_found, ...).
//		_, err := ctx.HTTP().GetJSON(ctx.Param("base_url")+"/todos/"+strconv.Itoa(in.ID), &t)
//		return t, err
//	}
//
//	type ListTodosInput struct {
//		Limit int `json:"limit,omitempty" minimum:"1" maximum:"500" default:"50"`
//	}
//
//	type TodoList struct {
//		Todos []Todo `json:"todos"`
//	}
//
//	func listTodos(ctx *pdk.Context, in ListTodosInput) (TodoList, error) {
//		if in.Limit == 0 {
//			in.Limit = 50 // defaults are documentation: apply them yourself
//		}
//		todos, err := pdk.Paginate(in.Limit, func(next string) ([]Todo, string, error) {
//			if next == "" {
//				next = ctx.Param("base_url") + "/todos?per_page=100"
//			}
//			var page []Todo
//			resp, err := ctx.HTTP().GetJSON(next, &page)
//			if err != nil {
//				return nil, "", err
//			}
//			return page, pdk.NextLink(resp), nil // follow Link: <...>; rel="next"
//		})
//		return TodoList{Todos: todos}, err
//	}
//
// Build it with the standard Go toolchain (no TinyGo):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o todo.wasm .
//
// and upload todo.wasm to Plugboard (POST /v1/connectors).
//
// The same code, compiled and validated, is the package's Example.
//
// # Schemas
//
// Each action's input and output JSON Schemas are derived from its Go types, as the MCP Go
// SDK's AddTool does: struct fields with json tags become properties, fields without
// omitempty are required, a `jsonschema:"..."` tag is the description, and a few more tags
// (enum, default, minimum, maximum, pattern, format, ...) add constraints. [SchemaFor] lists
// the rules. The host validates inputs against the schema before calling the handler, and the
// schemas become the MCP tool's inputSchema and outputSchema, so descriptions matter: a model
// reads them to decide how to call the tool. [InputSchema] and [OutputSchema] replace a derived
// schema when Go types cannot say enough.
//
// # Errors
//
// Handlers return ordinary Go errors. An *abi.Error (made with [Errorf], or by [StatusError]
// from an upstream answer) becomes the call's error document with its code, such as
// not_found or rate_limited; any other error is internal. Errors of the host imports (a host
// not in the manifest, a private address, a timeout) come back from the wrappers as *abi.Error
// values with the host's codes; returned unchanged (or wrapped with %w) they are mapped by
// [FromHostError], which keeps the host's code in details.host_code, so the API answers with it
// (403 private_address, 504 timeout, ... ABI.md section 4) and a detail saying what to change;
// [HostCode] reads it back in tests. A panic in a handler is recovered and reported as internal,
// so one bad input does not take the plugin down.
//
// # Talking to the host
//
// A handler's [Context] reaches the host imports of ABI.md section 5 through small clients:
// [Context.HTTP] for outbound requests (to the manifest's hosts only, credentials injected by
// the host), [Context.Credential] for HMACs with secrets the plugin never sees, [Context.Timer]
// for durable timers and bounded sleeps, and [Context.KV] for small durable state. Do not use
// net/http or os: a plugin has no sockets and no files, and importing net/http makes the
// module megabytes larger.
//
// # Triggers
//
// [PollTrigger] registers an event source the host polls with a cursor; [WebhookTrigger] one
// that upstream services push to; [OnTimer] handles timers set with [Timers.Set].
//
// # Testing
//
// Connector logic is tested natively with plain `go test`: package pdktest runs the registered
// handlers against a fake host that performs real HTTP (to httptest servers), injects a fake
// credential as the manifest says and refuses hosts outside the manifest, so no Wasm is needed.
//
//	h := pdktest.New(t, pdktest.Options{
//		Connection: &abi.Connection{ID: "todo", Params: map[string]any{"base_url": srv.URL}},
//		Credential: pdktest.Credential{APIKey: "test-key"},
//	})
//	out, err := h.Invoke("get_todo", map[string]any{"id": 1})
//
// # How it works
//
// Built for wasip1, the package provides the module's exports (plugboard_describe,
// plugboard_invoke, plugboard_poll, plugboard_webhook, plugboard_on_timer: Go cannot export
// conditionally, and the host ignores exports it does not need) and imports the host functions
// through the Extism Go PDK. Each export reads its request document, dispatches it to the
// registered handler and writes the result document. Natively the same dispatch is reachable
// through [Dispatch] with any [Host], which is how pdktest works. The registration table filled
// by init functions is the package's only state.
package pdk
