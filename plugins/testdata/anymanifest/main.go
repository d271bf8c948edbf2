//go:build wasip1

// Command anymanifest is a test plugin whose manifest is data, not code: manifest.txt is
// embedded as a 16384-byte block that starts with the ASCII marker "PLUGBOARD-MANIFEST:" and
// holds the manifest JSON padded with spaces. A test rewrites the block in the built .wasm with
// the patch package to get a plugin describing any manifest, valid or not, without building
// again.
//
// It uses the Extism Go PDK directly rather than Plugboard's pdk, so it exports only
// plugboard_describe and plugboard_invoke: patching in a trigger gives a module that lacks
// the export its manifest requires (missing_export).
//
//   - plugboard_describe returns the block's JSON (spaces trimmed) as it is. A block whose
//     JSON starts with "!fail:" makes describe return 1 with the rest as the error message.
//   - plugboard_invoke answers {"output": {"version": <the manifest's version>, "action":
//     <the action>, "input": <the input>}} for any action.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o anymanifest.wasm ./plugins/testdata/anymanifest
package main

import (
	_ "embed"
	"encoding/json"
	"strings"

	extism "github.com/extism/go-pdk"
)

func main() {}

// block is the patchable manifest block. The marker is never written as a separate literal
// in this program, so it occurs exactly once in the binary.
//
//go:embed manifest.txt
var block string

// markerLen is the length of the marker at the start of block.
const markerLen = 19

func document() string { return strings.TrimRight(block[markerLen:], " ") }

//go:wasmexport plugboard_describe
func describe() int32 {
	doc := document()
	if msg, ok := strings.CutPrefix(doc, "!fail:"); ok {
		extism.SetErrorString(msg)
		return 1
	}
	extism.OutputString(doc)
	return 0
}

//go:wasmexport plugboard_invoke
func invoke() int32 {
	var req struct {
		Action string          `json:"action"`
		Input  json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(extism.Input(), &req); err != nil {
		extism.SetErrorString("anymanifest: the invoke request does not decode: " + err.Error())
		return 1
	}
	var m struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal([]byte(document()), &m)
	if len(req.Input) == 0 {
		req.Input = json.RawMessage("null")
	}
	out, err := json.Marshal(map[string]any{"output": map[string]any{"version": m.Version, "action": req.Action, "input": req.Input}})
	if err != nil {
		extism.SetErrorString(err.Error())
		return 1
	}
	extism.Output(out)
	return 0
}
