package host

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/plugboard/plugboard/abi"
)

// maxImportRequest caps the request document of any host import except plugboard_http, whose
// bodies are capped by the egress configuration.
const maxImportRequest = 1 << 20

// importFunc handles one host import: it gets the decoded-from-guest request bytes and returns
// the reply document. It never panics on guest input; denials are error documents.
type importFunc func(ctx context.Context, cs *callState, req []byte) any

// instantiateImports defines Plugboard's host imports (module abi.ModuleHost) in rt, bound to
// this host.
func (h *Host) instantiateImports(ctx context.Context, rt wazero.Runtime) error {
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
	b := rt.NewHostModuleBuilder(abi.ModuleHost)
	for _, d := range defs {
		b.NewFunctionBuilder().
			WithGoModuleFunction(adapt(d.name, d.fn, d.max), []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}).
			Export(d.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// adapt implements the calling convention of ABI.md section 5 around an importFunc: read and
// free the request block, run the import, write the reply block. A bad offset, an oversized or
// undecodable request, or a panic become error replies instead of traps.
func adapt(name string, fn importFunc, max uint64) api.GoModuleFunc {
	return func(ctx context.Context, _ api.Module, stack []uint64) {
		start := time.Now()
		cs := callFrom(ctx)
		if cs == nil || cs.k == nil {
			panic(kernelTrap{name + " called outside a Plugboard call"})
		}
		defer func() { cs.hostNanos.Add(int64(time.Since(start))) }()
		k := cs.k
		reply := func() (reply any) {
			defer func() {
				if r := recover(); r != nil {
					reply = errorReply(abi.CodeInvalidRequest, fmt.Sprintf("%s: request could not be processed", name))
				}
			}()
			if cs.describe {
				return errorReply(abi.CodeDenied, name+" is not available during plugboard_describe")
			}
			off := stack[0]
			b := k.block(off)
			if len(b) == 0 {
				return errorReply(abi.CodeInvalidRequest, name+": request offset is not an allocated block")
			}
			if uint64(len(b)) > max {
				k.free(off)
				return errorReply(abi.CodeTooLarge, fmt.Sprintf("%s: request of %d bytes is over the %d-byte limit", name, len(b), max))
			}
			req := slices.Clone(b)
			k.free(off)
			return fn(ctx, cs, req)
		}()
		b, err := json.Marshal(reply)
		if err != nil {
			b, _ = json.Marshal(errorReply(abi.CodeInvalidRequest, name+": encoding reply failed"))
		}
		off := k.write(b)
		if off == 0 {
			// The guest is out of memory: no reply can be written, and ABI.md promises a reply
			// offset is never 0, so the call fails as the plugin's memory failure it is.
			panic(fmt.Errorf("%s: writing the reply of %d bytes: guest kernel memory exhausted (limit %d bytes)", name, len(b), k.limit))
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
