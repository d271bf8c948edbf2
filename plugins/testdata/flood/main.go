//go:build wasip1

// Command flood is a test plugin that writes output documents as large as asked, to show the
// host caps every document a guest writes. It uses the Extism Go PDK directly and builds each
// document in the Extism kernel's memory 1 MiB at a time, so a 40 MiB document costs the guest
// 1 MiB of its own memory, as a plugin streaming a large upstream body into its output would.
// Its limits are 64 MiB of memory (the kernel's memory holds the document) and 60 s per call
// (writing 40 MiB through the kernel's store_u64 takes seconds).
//
//   - action "big" with input {"bytes": n} answers a valid result document of n bytes,
//     {"output":{"s":"xxx…"}};
//   - action "ok" answers {"output":{"ok":true}};
//   - poll trigger "big_poll" with params {"bytes": n} answers a valid poll result of n bytes with one
//     event, and cursor "big" (a cursor must not move when the poll fails).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o flood.wasm ./plugins/testdata/flood
package main

import (
	"encoding/json"

	extism "github.com/extism/go-pdk"
)

func main() {}

const manifest = `{"abi":1,"name":"flood","version":"1.0.0","title":"Flood",
"description":"Test plugin that writes output documents as large as asked.",
"auth":{"types":["none"]},
"actions":[
 {"name":"big","input_schema":{"type":"object","properties":{"bytes":{"type":"integer","minimum":32}},"required":["bytes"]}},
 {"name":"ok","input_schema":{"type":"object"}}],
"triggers":[{"name":"big_poll","kind":"poll","params_schema":{"type":"object","properties":{"bytes":{"type":"integer","minimum":64}},"required":["bytes"]}}],
"limits":{"memory_mb":64,"timeout_ms":60000}}`

//go:wasmexport plugboard_describe
func describe() int32 {
	extism.OutputString(manifest)
	return 0
}

//go:wasmexport plugboard_invoke
func invoke() int32 {
	var req struct {
		Action string `json:"action"`
		Input  struct {
			Bytes int `json:"bytes"`
		} `json:"input"`
	}
	if err := json.Unmarshal(extism.Input(), &req); err != nil {
		extism.SetErrorString("flood: the invoke request does not decode: " + err.Error())
		return 1
	}
	if req.Action == "ok" {
		extism.OutputString(`{"output":{"ok":true}}`)
		return 0
	}
	output(`{"output":{"s":"`, `"}}`, req.Input.Bytes)
	return 0
}

//go:wasmexport plugboard_poll
func poll() int32 {
	var req struct {
		Params struct {
			Bytes int `json:"bytes"`
		} `json:"params"`
	}
	if err := json.Unmarshal(extism.Input(), &req); err != nil {
		extism.SetErrorString("flood: the poll request does not decode: " + err.Error())
		return 1
	}
	output(`{"cursor":"big","events":[{"id":"e1","data":{"s":"`, `"}}]}`, req.Params.Bytes)
	return 0
}

// output sets the call's output to head, then x up to n bytes in all, then tail, written into
// one kernel block 1 MiB at a time.
func output(head, tail string, n int) {
	fill := max(0, n-len(head)-len(tail))
	mem := extism.Allocate(len(head) + fill + len(tail))
	off := mem.Offset()
	store := func(b []byte) {
		m := extism.NewMemory(off, uint64(len(b)))
		m.Store(b)
		off += uint64(len(b))
	}
	store([]byte(head))
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = 'x'
	}
	for fill > 0 {
		k := min(fill, len(chunk))
		store(chunk[:k])
		fill -= k
	}
	store([]byte(tail))
	extism.OutputMemory(mem)
}
