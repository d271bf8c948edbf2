//go:build wasip1

package pdk

import (
	"encoding/json"

	extism "github.com/extism/go-pdk"

	"github.com/plugboard/plugboard/abi"
)

// The exports of ABI.md section 2. Go cannot export conditionally, so every plugin built with
// the pdk exports all five; the host only requires the ones its manifest needs, and an export
// with nothing registered answers an error document.

//go:wasmexport plugboard_describe
func exportDescribe() int32 { return runExport(abi.ExportDescribe) }

//go:wasmexport plugboard_invoke
func exportInvoke() int32 { return runExport(abi.ExportInvoke) }

//go:wasmexport plugboard_poll
func exportPoll() int32 { return runExport(abi.ExportPoll) }

//go:wasmexport plugboard_webhook
func exportWebhook() int32 { return runExport(abi.ExportWebhook) }

//go:wasmexport plugboard_on_timer
func exportOnTimer() int32 { return runExport(abi.ExportOnTimer) }

func runExport(export string) int32 {
	out, err := Dispatch(wasmHost{}, export, extism.Input())
	if err != nil {
		extism.SetErrorString(err.Error())
		return 1
	}
	extism.Output(out)
	return 0
}

// The host imports of ABI.md section 5: each takes and returns the offset of an Extism memory
// block holding JSON.

//go:wasmimport extism:host/user plugboard_http
func importHTTP(uint64) uint64

//go:wasmimport extism:host/user plugboard_credential
func importCredential(uint64) uint64

//go:wasmimport extism:host/user plugboard_timer
func importTimer(uint64) uint64

//go:wasmimport extism:host/user plugboard_kv
func importKV(uint64) uint64

// wasmHost is the real host, reached through the imports above and Extism's log functions.
type wasmHost struct{}

// Call sends request to the import named function and returns its reply, freeing the reply
// block.
func (wasmHost) Call(function string, request []byte) []byte {
	var f func(uint64) uint64
	switch function {
	case abi.ImportHTTP:
		f = importHTTP
	case abi.ImportCredential:
		f = importCredential
	case abi.ImportTimer:
		f = importTimer
	case abi.ImportKV:
		f = importKV
	default:
		b, _ := json.Marshal(abi.ErrorReply{Error: errInternalf("pdk: no host import %q", function)})
		return b
	}
	req := extism.AllocateBytes(request) // the host frees the request block
	off := f(req.Offset())
	reply := extism.FindMemory(off)
	if off == 0 || reply.Length() == 0 {
		b, _ := json.Marshal(abi.ErrorReply{Error: errInternalf("%s: the host returned no reply", function)})
		return b
	}
	out := reply.ReadBytes()
	reply.Free() // the reply block belongs to the guest
	return out
}

// Log writes message with Extism's log functions.
func (wasmHost) Log(level LogLevel, message string) {
	l := extism.LogInfo
	switch level {
	case LogDebug:
		l = extism.LogDebug
	case LogWarn:
		l = extism.LogWarn
	case LogError:
		l = extism.LogError
	}
	extism.Log(l, message)
}
