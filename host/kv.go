package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// plugboard_kv: small durable state scoped to (connector name, connection id), surviving
// restarts and version swaps (ABI.md section 5).
//
//   - {"op":"get","key":K} -> {"found":true,"value":V} or {"found":false}
//   - {"op":"set","key":K,"value":V,"ttl_s":T} -> {}
//   - {"op":"delete","key":K} -> {}
//
// Limits: key 256 bytes, value 64 KiB, 1 MiB per scope (too_large).
func (h *Host) importKV(ctx context.Context, cs *callState, raw []byte) any {
	var req abi.KVRequest
	if reply, ok := decodeRequest(abi.ImportKV, raw, &req); !ok {
		return reply
	}
	if h.cfg.State == nil {
		return errorReply(abi.CodeDenied, "kv is not available on this server")
	}
	if req.Key == "" {
		return errorReply(abi.CodeInvalidRequest, "key is required")
	}
	if len(req.Key) > abi.KVMaxKeyBytes {
		return errorReply(abi.CodeTooLarge, fmt.Sprintf("key is over %d bytes", abi.KVMaxKeyBytes))
	}
	conn, name := cs.connectionID(), cs.m.manifest.Name
	switch req.Op {
	case abi.KVGet:
		v, found, err := h.cfg.State.KVGet(ctx, name, conn, req.Key)
		if err != nil {
			return errorReply(abi.CodeInternal, "kv read failed")
		}
		if !found {
			return abi.KVResponse{Found: ptr(false)}
		}
		return abi.KVResponse{Found: ptr(true), Value: json.RawMessage(v)}
	case abi.KVSet:
		if len(req.Value) == 0 {
			return errorReply(abi.CodeInvalidRequest, "value is required")
		}
		if len(req.Value) > abi.KVMaxValueBytes {
			return errorReply(abi.CodeTooLarge, fmt.Sprintf("value is over %d bytes", abi.KVMaxValueBytes))
		}
		if req.TTLS < 0 {
			return errorReply(abi.CodeInvalidRequest, "ttl_s must not be negative")
		}
		err := h.cfg.State.KVSet(ctx, name, conn, req.Key, req.Value, time.Duration(req.TTLS)*time.Second)
		if errors.Is(err, ErrTooLarge) {
			return errorReply(abi.CodeTooLarge, fmt.Sprintf("the connection's kv scope would pass %d bytes", abi.KVMaxScopeBytes))
		}
		if err != nil {
			return errorReply(abi.CodeInternal, "kv write failed")
		}
		return struct{}{}
	case abi.KVDelete:
		if err := h.cfg.State.KVDelete(ctx, name, conn, req.Key); err != nil && !errors.Is(err, ErrNotFound) {
			return errorReply(abi.CodeInternal, "kv delete failed")
		}
		return struct{}{}
	default:
		return errorReply(abi.CodeInvalidRequest, "op must be \"get\", \"set\" or \"delete\"")
	}
}

func ptr[T any](v T) *T { return &v }
