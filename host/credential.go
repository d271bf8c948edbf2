package host

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"slices"

	"github.com/plugboard/plugboard/abi"
)

// plugboard_credential: use a secret without seeing it (ABI.md section 5).
//
//   - {"op":"hmac_sha256","field":F,"data_base64":D} -> {"mac_base64":...}: HMAC-SHA256 of D keyed
//     with the connection's secret field F.
//   - {"op":"reveal","field":F} -> {"value":...}: only when the manifest lists F under
//     capabilities.reveal and an operator approved F for the connection; otherwise denied.
//
// Errors: invalid_request (bad op, bad base64), not_found (the connection has no such field),
// denied (no connection, or reveal not granted).
func importCredential(ctx context.Context, cs *callState, raw []byte) any {
	var req abi.CredentialRequest
	if reply, ok := decodeRequest(abi.ImportCredential, raw, &req); !ok {
		return reply
	}
	b := cs.call.Binding
	if b == nil {
		return errorReply(abi.CodeDenied, "this call has no connection, so there is no credential to use")
	}
	secret, ok := b.Secrets[req.Field]
	switch req.Op {
	case abi.CredentialHMACSHA256:
		data, err := base64.StdEncoding.DecodeString(req.DataBase64)
		if err != nil {
			return errorReply(abi.CodeInvalidRequest, "data_base64 is not valid base64")
		}
		if !ok {
			return errorReply(abi.CodeNotFound, "the connection has no secret field \""+req.Field+"\"")
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(data)
		return abi.CredentialResponse{MACBase64: base64.StdEncoding.EncodeToString(mac.Sum(nil))}
	case abi.CredentialReveal:
		var declared []string
		if c := cs.m.manifest.Capabilities; c != nil {
			declared = c.Reveal
		}
		if !slices.Contains(declared, req.Field) || !slices.Contains(b.RevealApproved, req.Field) {
			return errorReply(abi.CodeDenied, "reveal of \""+req.Field+"\" needs the manifest capability and an operator's approval")
		}
		if !ok {
			return errorReply(abi.CodeNotFound, "the connection has no secret field \""+req.Field+"\"")
		}
		return abi.CredentialResponse{Value: secret}
	default:
		return errorReply(abi.CodeInvalidRequest, "op must be \"hmac_sha256\" or \"reveal\"")
	}
}
