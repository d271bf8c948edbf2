package host

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	extism "github.com/extism/go-sdk"

	"github.com/plugboard/plugboard/abi"
)

// maxImportRequest caps the request document of any host import except plugboard_http, whose
// bodies are capped by the egress configuration.
const maxImportRequest = 1 << 20

// importFunc handles one host import: it gets the decoded-from-guest request bytes and returns
// the reply document. It never panics on guest input; denials are error documents.
type importFunc func(ctx context.Context, cs *callState, req []byte) any

// hostFunctions returns Plugboard's host imports, bound to this host.
func (h *Host) hostFunctions() []extism.HostFunction {
	defs := []struct {
		name string
		fn   importFunc
		max  uint64
	}{
		{abi.ImportHTTP, h.importHTTP, uint64(h.maxHTTPRequest())},
		{abi.ImportCredential, importCredential, maxImportRequest},
		{abi.ImportTimer, h.importTimer, maxImportRequest},
		{abi.ImportKV, h.importKV, maxImportRequest},
	}
	out := make([]extism.HostFunction, 0, len(defs))
	for _, d := range defs {
		hf := extism.NewHostFunctionWithStack(d.name, adapt(d.name, d.fn, d.max),
			[]extism.ValueType{extism.ValueTypeI64}, []extism.ValueType{extism.ValueTypeI64})
		hf.SetNamespace(abi.ModuleHost)
		out = append(out, hf)
	}
	return out
}

// adapt implements the calling convention of ABI.md section 5 around an importFunc: read and
// free the request block, run the import, write the reply block. A bad offset, an oversized or
// undecodable request, or a panic become error replies instead of traps.
func adapt(name string, fn importFunc, max uint64) extism.HostFunctionStackCallback {
	return func(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
		start := time.Now()
		cs := callFrom(ctx)
		if cs != nil {
			defer func() { cs.hostNanos.Add(int64(time.Since(start))) }()
		}
		reply := func() (reply any) {
			defer func() {
				if r := recover(); r != nil {
					reply = errorReply(abi.CodeInvalidRequest, fmt.Sprintf("%s: request could not be processed", name))
				}
			}()
			if cs == nil || cs.describe {
				return errorReply(abi.CodeDenied, name+" is not available during plugboard_describe")
			}
			off := stack[0]
			n, err := p.Length(off)
			if err != nil || n == 0 {
				return errorReply(abi.CodeInvalidRequest, name+": request offset is not an allocated block")
			}
			if n > max {
				p.Free(off)
				return errorReply(abi.CodeTooLarge, fmt.Sprintf("%s: request of %d bytes is over the %d-byte limit", name, n, max))
			}
			req, err := p.ReadBytes(off)
			if err != nil {
				return errorReply(abi.CodeInvalidRequest, name+": reading request: "+err.Error())
			}
			p.Free(off)
			return fn(ctx, cs, req)
		}()
		b, err := json.Marshal(reply)
		if err != nil {
			b, _ = json.Marshal(errorReply(abi.CodeInvalidRequest, name+": encoding reply failed"))
		}
		off, err := p.WriteBytes(b)
		if err != nil {
			// The guest is out of memory: no reply can be written, and ABI.md promises a reply
			// offset is never 0, so the call fails as the plugin's memory failure it is.
			panic(fmt.Errorf("%s: writing the reply: guest memory exhausted: %w", name, err))
		}
		stack[0] = off
	}
}

func errorReply(code, msg string) abi.ErrorReply {
	return abi.ErrorReply{Error: &abi.Error{Code: code, Message: msg}}
}

// decodeRequest decodes a guest request strictly into v, or returns the error reply.
func decodeRequest(name string, req []byte, v any) (any, bool) {
	if err := abi.DecodeStrict(req, v); err != nil {
		return errorReply(abi.CodeInvalidRequest, name+": "+err.Error()), false
	}
	return nil, true
}
