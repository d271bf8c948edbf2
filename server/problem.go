package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
)

// Problem is an RFC 9457 problem details document with Plugboard's extensions.
type Problem struct {
	Type          string              `json:"type"`
	Title         string              `json:"title"`
	Status        int                 `json:"status"`
	Detail        string              `json:"detail,omitempty"`
	Code          string              `json:"code"`
	CorrelationID string              `json:"correlation_id,omitempty"`
	Source        string              `json:"source"`
	Errors        []check.SchemaError `json:"errors,omitempty"`
	// Details carries a plugin error's details object as it was given.
	Details json.RawMessage `json:"details,omitempty"`
	// Retryable is set for plugin errors the plugin marked retryable.
	Retryable bool `json:"retryable,omitempty"`
	// Nodes names the cluster nodes a swap_timeout waited for.
	Nodes []string `json:"nodes,omitempty"`

	retryAfter int  // seconds, for a Retry-After header
	refusal    bool // a plugin passed on a host refusal that needs a configuration change (logged at WARN)
}

// Stable problem codes of Plugboard's own errors.
const (
	codeUnauthenticated      = "unauthenticated"
	codeNotFound             = "not_found"
	codeSwapTimeout          = "swap_timeout"
	codeStoreUnavailable     = "store_unavailable"
	codeMethodNotAllowed     = "method_not_allowed"
	codeInvalidRequest       = "invalid_request"
	codeInvalidInput         = "invalid_input"
	codeInvalidParams        = "invalid_params"
	codeTooLarge             = "too_large"
	codeUnsupportedMedia     = "unsupported_media_type"
	codeConnectorNotFound    = "connector_not_found"
	codeVersionNotFound      = "version_not_found"
	codeActionNotFound       = "action_not_found"
	codeConnectionNotFound   = "connection_not_found"
	codeConnectionExists     = "connection_exists"
	codeConnectionNotAllowed = "connection_not_allowed"
	codeConnectionRequired   = "connection_required"
	codeNeedsReauth          = "needs_reauth"
	codeVersionExists        = "version_exists"
	codeVersionActive        = "version_active"
	codePluginFailed         = "plugin_failed"
	codeTimeout              = "timeout"
	codeBusy                 = "busy"
	codeInternal             = "internal"
	// codeStoreCorrupt: 500, the data file is damaged (storage.ErrCorrupt); /readyz answers 503 from then on.
	codeStoreCorrupt = "store_corrupt"
	// codeInsufficientStorage: 507, the server's disk is full (storage.ErrNoSpace, host.ErrNoSpace).
	codeInsufficientStorage = "insufficient_storage"
)

// Details of the storage problems: fixed texts, so no server path or Go error reaches a client.
const (
	detailStoreCorrupt        = "the server's store is damaged; an operator should run `plugboard store check` (the server log names the problem)"
	detailInsufficientStorage = "the server's disk is full; free space on the server and retry (nothing of this request was stored)"
)

func newProblem(status int, code, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail, Source: "plugboard"}
}

func problemf(status int, code, format string, args ...any) *Problem {
	return newProblem(status, code, fmt.Sprintf(format, args...))
}

// Error implements the error interface so handlers can return a *Problem as an error.
func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// MaxPluginRetryAfter is the longest wait a plugin can ask clients for: a guest error's
// details.retry_after_s above it is clamped to it, in the Retry-After header and in the
// details the problem echoes. A plugin's hint is advice from third-party code; an hour is
// longer than any real upstream's throttle window and short enough that a wrong hint cannot
// park a client for days.
const MaxPluginRetryAfter = time.Hour

// pluginProblem turns a guest error document into the problem API.md prescribes.
//
// A guest error that passes on a host code (ABI.md section 4: details.host_code, as the Go PDK
// sets it, or the host's code reported unchanged) answers with that code and its status of the
// host code table ([abi.HostErrorStatus]: 403 for a refusal by policy, 502 and 504 for an
// upstream that failed, ...), and its detail says what to change ([hostAdvice]); source stays
// "plugin", since the plugin chose to report it. Any other guest error keeps its code with the
// status of [abi.GuestErrorStatus].
//
// details.retry_after_s, when the plugin gives it, is bounded (see [pluginRetryAfter]). A
// rate_limited error always carries Retry-After (1 s without a usable hint); unavailable and
// circuit_open carry it when the plugin gave a usable hint.
func pluginProblem(e *abi.Error) *Problem {
	code, status, detail := e.Code, abi.GuestErrorStatus(e.Code), e.Message
	hc := abi.HostCode(e)
	if hc != "" {
		code = hc
		status, _ = abi.HostErrorStatus(hc)
		if advice := hostAdvice(hc, e.Details); advice != "" {
			detail += "; " + advice
		}
	}
	p := newProblem(status, code, detail)
	p.Source = "plugin"
	p.Retryable = e.Retryable
	p.refusal = hostRefusal(hc)
	secs, details := pluginRetryAfter(e.Details)
	p.Details = details
	switch {
	case code == abi.CodeRateLimited:
		p.retryAfter = max(1, secs)
	case (code == abi.CodeUnavailable || code == abi.PolicyCircuitOpen) && secs > 0:
		p.retryAfter = secs
	}
	return p
}

// hostRefusal reports whether a guest error passing on the host code code is a refusal that
// needs a change of configuration or of the connector (logged at WARN), rather than an upstream
// that failed or was slow (not logged, like any other guest error).
func hostRefusal(code string) bool {
	switch code {
	case abi.CodeHostNotAllowed, abi.CodePrivateAddress, abi.CodeDenied, abi.CodeInvalidRequest, abi.CodeTooManyRequests:
		return true
	}
	return false
}

// hostAdvice says what to change after a guest error passing on the host code code, appended to
// the error's message in the problem's detail. For private_address it names the range to allow
// when the host's details give it ({"address": "127.0.0.1", "allow": "127.0.0.0/8"}); only
// values that parse as an address inside a prefix are repeated, so a plugin's details cannot put
// other words in Plugboard's advice.
func hostAdvice(code string, details json.RawMessage) string {
	switch code {
	case abi.CodeHostNotAllowed:
		return "Plugboard sent nothing. A connector reaches only origins in its manifest's hosts (a new version may add one) " +
			"and, with a connection, in the connection's hosts (an operator approves one with PATCH /v1/connections/ID {\"hosts\": [...]})"
	case abi.CodePrivateAddress:
		var d struct{ Address, Allow string }
		_ = json.Unmarshal(details, &d)
		a, aerr := netip.ParseAddr(d.Address)
		p, perr := netip.ParsePrefix(d.Allow)
		if aerr == nil && perr == nil && p.Contains(a.Unmap()) {
			return fmt.Sprintf("start the server with --egress-allow %s (make run EGRESS_ALLOW=%s), "+
				"or with plugboard serve --dev on a development machine, to allow it", p.Masked(), p.Masked())
		}
		return "to allow it, start the server with --egress-allow and a CIDR that covers the address (make run EGRESS_ALLOW=CIDR); " +
			"plugboard serve --dev allows the loopback and private ranges on a development machine"
	case abi.CodeDenied:
		return "Plugboard refused the capability; ABI.md section 5 says what grants it"
	case abi.CodeInvalidRequest:
		return "the connector sent a host import a request the host does not accept (ABI.md section 5): fix the connector"
	case abi.CodeTooManyRequests:
		return "the connector passed one of Plugboard's limits per call or per connection (ABI.md section 5): make it send fewer requests in one call, or keep fewer timers"
	case abi.CodeTooLarge:
		return "a body or value is over one of Plugboard's size limits (ABI.md section 5)"
	case abi.CodeTimeout:
		return "the upstream did not answer in time: retry later"
	case abi.CodeNetwork:
		return "the upstream could not be reached: check the connection's URL, or retry later"
	}
	return ""
}

// pluginRetryAfter reads a guest error's details.retry_after_s and returns the wait in whole
// seconds (rounded up, at most MaxPluginRetryAfter; 0 when absent or unusable) and the details
// to echo: unchanged when the value is a number in [0, MaxPluginRetryAfter], with the value
// replaced by the maximum when it is larger, and without it when it is not a finite
// non-negative number (a string, null, a negative number). Details that are not a JSON object
// are echoed as given.
func pluginRetryAfter(details json.RawMessage) (int, json.RawMessage) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(details, &fields) != nil || fields == nil {
		return 0, details
	}
	raw, ok := fields["retry_after_s"]
	if !ok {
		return 0, details
	}
	limit := MaxPluginRetryAfter.Seconds()
	var n json.Number
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		delete(fields, "retry_after_s") // not a number (json.Number would take "30", a string)
		return 0, remarshal(fields, details)
	}
	v, err := strconv.ParseFloat(n.String(), 64)
	switch {
	case err == nil && v >= 0 && v <= limit:
		return int(math.Ceil(v)), details
	case v > limit: // also a number beyond float64 (ParseFloat answers +Inf and an error)
		fields["retry_after_s"] = json.RawMessage(strconv.Itoa(int(limit)))
		return int(limit), remarshal(fields, details)
	}
	delete(fields, "retry_after_s") // negative
	return 0, remarshal(fields, details)
}

// remarshal encodes fields, falling back to the original document if that fails.
func remarshal(fields map[string]json.RawMessage, orig json.RawMessage) json.RawMessage {
	b, err := json.Marshal(fields)
	if err != nil {
		return orig
	}
	return b
}

// toProblem is the one place that maps errors to problem documents.
func toProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	if be, ok := errors.AsType[*registry.BindError](err); ok {
		return bindProblem(be)
	}
	if de, ok := errors.AsType[*registry.DeclarationError](err); ok {
		switch {
		case de.Kind != "":
			return newProblem(http.StatusConflict, codeTriggerNotFound, de.Error()+"; subscribe again")
		case errors.Is(de, registry.ErrTriggerNotFound):
			return newProblem(http.StatusNotFound, codeTriggerNotFound, de.Error())
		}
		return newProblem(http.StatusNotFound, codeActionNotFound, de.Error())
	}
	var ce *host.CheckError
	if errors.As(err, &ce) {
		return newProblem(http.StatusBadRequest, ce.Code, ce.Error())
	}
	var se *registry.SchemaError
	if errors.As(err, &se) {
		p := newProblem(http.StatusBadRequest, codeInvalidParams, se.Error())
		p.Errors = se.Errors
		return p
	}
	if st, ok := errors.AsType[*registry.SwapTimeoutError](err); ok {
		p := newProblem(http.StatusGatewayTimeout, codeSwapTimeout, st.Error())
		p.Nodes = st.Nodes
		return p
	}
	msg := err.Error()
	switch {
	case errors.Is(err, storage.ErrUnavailable):
		p := newProblem(http.StatusServiceUnavailable, codeStoreUnavailable, "the store is unreachable from this node; nothing was written. Retry in a moment (GET /readyz says when the node is back)")
		p.retryAfter = 1
		return p
	case errors.Is(err, storage.ErrCorrupt):
		return newProblem(http.StatusInternalServerError, codeStoreCorrupt, detailStoreCorrupt)
	case errors.Is(err, storage.ErrNoSpace), errors.Is(err, host.ErrNoSpace):
		return newProblem(http.StatusInsufficientStorage, codeInsufficientStorage, detailInsufficientStorage)
	case errors.Is(err, registry.ErrVersionExists):
		return newProblem(http.StatusConflict, codeVersionExists, msg)
	case errors.Is(err, registry.ErrConnectorNotFound):
		return newProblem(http.StatusNotFound, codeConnectorNotFound, msg)
	case errors.Is(err, registry.ErrVersionNotFound):
		return newProblem(http.StatusNotFound, codeVersionNotFound, msg)
	case errors.Is(err, registry.ErrCapabilitiesChanged): // hot swap: server/connectors.go adds "changes"
		return newProblem(http.StatusConflict, codeCapabilitiesChanged, msg)
	case errors.Is(err, registry.ErrActivationFailed):
		return newProblem(http.StatusUnprocessableEntity, codeActivationFailed, msg)
	case errors.Is(err, registry.ErrConnectionNotFound):
		return newProblem(http.StatusNotFound, codeConnectionNotFound, msg)
	case errors.Is(err, registry.ErrConnectionInUse):
		return newProblem(http.StatusConflict, "connection_in_use", msg)
	case errors.Is(err, registry.ErrConnectionExists):
		return newProblem(http.StatusConflict, codeConnectionExists, msg)
	case errors.Is(err, registry.ErrPendingConsent):
		return newProblem(http.StatusConflict, "pending_consent", strings.TrimPrefix(msg, registry.ErrInvalid.Error()+": "))
	case errors.Is(err, registry.ErrInvalid):
		return newProblem(http.StatusBadRequest, codeInvalidRequest, strings.TrimPrefix(msg, registry.ErrInvalid.Error()+": "))
	case errors.Is(err, storage.ErrActive):
		return newProblem(http.StatusConflict, codeVersionActive, msg+"; activate another version first")
	case errors.Is(err, host.ErrTimeout):
		return newProblem(http.StatusGatewayTimeout, codeTimeout, msg)
	case errors.Is(err, host.ErrPluginFailed):
		return newProblem(http.StatusBadGateway, codePluginFailed, msg)
	case errors.Is(err, host.ErrBusy):
		p := newProblem(http.StatusServiceUnavailable, codeBusy, msg)
		p.retryAfter = 1
		return p
	case errors.Is(err, host.ErrCanceled):
		return newProblem(499, "canceled", msg)
	}
	return newProblem(http.StatusInternalServerError, codeInternal, "internal error; the server log has the details under this correlation id")
}

// bindProblem is the answer to a call whose connection cannot be used, with what to do.
func bindProblem(e *registry.BindError) *Problem {
	switch {
	case errors.Is(e, registry.ErrConnectionRequired):
		return problemf(http.StatusBadRequest, codeConnectionRequired, "%s: add \"connection\": \"<id>\"", e.Error())
	case errors.Is(e, registry.ErrConnectionNotAllowed):
		return problemf(http.StatusForbidden, codeConnectionNotAllowed, "%s; add it with PATCH /v1/connections/%s", e.Error(), e.Connection)
	}
	return problemf(http.StatusConflict, codeNeedsReauth, "%s: POST /v1/connections/%s/reauthorize", e.Error(), e.Connection)
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	p.CorrelationID = correlationID(r.Context())
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}
