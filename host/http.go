package host

import (
	"context"

	"github.com/plugboard/plugboard/abi"
)

// plugboard_http: capability-scoped outbound HTTP (ABI.md section 5).
//
// Request: abi.HTTPRequest. Reply: abi.HTTPResponse, or an error document with one of
// host_not_allowed, private_address, timeout, network, invalid_request, denied,
// too_many_redirects, too_large, too_many_requests. The egress package does every step: origin allowlist, address
// checks after resolution (dialing the checked address), credential injection, redirects, caps.

func (h *Host) maxHTTPRequest() int64 {
	n := h.cfg.Egress.MaxRequestBytes
	if n <= 0 {
		n = 10 << 20
	}
	return n*4/3 + 64<<10 // base64 body plus headers
}

func (h *Host) importHTTP(ctx context.Context, cs *callState, raw []byte) any {
	var req abi.HTTPRequest
	if reply, ok := decodeRequest(abi.ImportHTTP, raw, &req); !ok {
		return reply
	}
	if cs.grant != nil && cs.call != nil {
		cs.grant.Idempotent = cs.call.Idempotent // the action's annotation: retry any method
	}
	resp := h.egress.Do(ctx, cs.grant, cs.budget, &req, cs.recordOutbound)
	if resp.Error != nil {
		return abi.ErrorReply{Error: resp.Error}
	}
	return resp
}
