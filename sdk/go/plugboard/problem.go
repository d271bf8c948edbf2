package plugboard

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Problem is an error answer from the server: RFC 9457 problem details as API.md defines them.
// When the body was not a problem document, Problem is built from the HTTP status and Code is
// empty (every Plugboard problem has a code).
type Problem struct {
	// Type is a URI naming the problem type; "about:blank" when the status says it all.
	Type string `json:"type,omitempty"`
	// Title is the short summary of the type, usually the status text.
	Title string `json:"title,omitempty"`
	// Status is the HTTP status code.
	Status int `json:"status,omitempty"`
	// Detail explains this occurrence, for humans.
	Detail string `json:"detail,omitempty"`
	// Instance is a URI naming this occurrence; optional.
	Instance string `json:"instance,omitempty"`
	// Code is the stable machine-readable code, one of the Code* constants or a guest error
	// code (ABI.md section 4).
	Code string `json:"code,omitempty"`
	// CorrelationID identifies the request in the server's logs and invocation log. It is taken
	// from the X-Correlation-ID response header when the body has none.
	CorrelationID string `json:"correlation_id,omitempty"`
	// Errors lists schema failures, each at a JSON Pointer into the checked document.
	Errors []FieldError `json:"errors,omitempty"`
	// Source is "plugin" for errors a plugin reported and "plugboard" for the server's own.
	Source string `json:"source,omitempty"`
	// Details is the details object a plugin gave with its error, as it gave it.
	Details json.RawMessage `json:"details,omitempty"`
	// Retryable says the same call may succeed later, as the plugin marked its error.
	Retryable bool `json:"retryable,omitempty"`

	// RetryAfter is the wait the Retry-After header asks for (429, 503); zero when absent.
	RetryAfter time.Duration `json:"-"`
	// Location is the Location header of a redirect answer; a client made by New does not
	// follow redirects.
	Location string `json:"-"`
	// Raw is the body of the answer as the server sent it (at most 1 MiB), problem document
	// or not.
	Raw []byte `json:"-"`
}

// FieldError is one schema failure: the JSON Pointer of the offending value and what is wrong.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Sources of a problem.
const (
	SourcePlugin    = "plugin"
	SourcePlugboard = "plugboard"
)

// Problem codes API.md defines, and the server's own that callers act on. Guest error codes
// (ABI.md section 4) pass through as the plugin reported them, with Source "plugin".
const (
	CodeUnauthenticated      = "unauthenticated"
	CodeForbidden            = "forbidden"
	CodeTooLarge             = "too_large"
	CodeInvalidInput         = "invalid_input"
	CodeInvalidWasm          = "invalid_wasm"
	CodeImportNotAllowed     = "import_not_allowed"
	CodeMissingExport        = "missing_export"
	CodeDescribeFailed       = "describe_failed"
	CodeInvalidManifest      = "invalid_manifest"
	CodeVersionExists        = "version_exists"
	CodeCapabilitiesChanged  = "capabilities_changed"
	CodeConnectorNotFound    = "connector_not_found"
	CodeActionNotFound       = "action_not_found"
	CodeConnectionNotFound   = "connection_not_found"
	CodeConnectionNotAllowed = "connection_not_allowed"
	CodePluginFailed         = "plugin_failed"
	CodeTimeout              = "timeout"
	CodeRateLimited          = "rate_limited"
	CodeNeedsReauth          = "needs_reauth"
	CodePrivateAddress       = "private_address"
	CodeVersionNotFound      = "version_not_found"
	CodeVersionActive        = "version_active"
	CodeConnectionExists     = "connection_exists"
	CodeConnectionRequired   = "connection_required"
)

// Error returns one line: the code, the detail (or the first schema error, or the title) and
// the status, e.g. "invalid_input: input.title: missing property (HTTP 400)".
func (p *Problem) Error() string {
	msg := p.Detail
	if msg == "" && len(p.Errors) > 0 {
		msg = p.Errors[0].Path + ": " + p.Errors[0].Message
		if n := len(p.Errors) - 1; n > 0 {
			msg += fmt.Sprintf(" (and %d more)", n)
		}
	}
	if msg == "" {
		msg = p.Title
	}
	if msg == "" {
		msg = http.StatusText(p.Status)
	}
	var b strings.Builder
	if p.Code != "" {
		b.WriteString(p.Code)
		if msg != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(msg)
	if p.Location != "" {
		b.WriteString(" to " + p.Location)
	}
	fmt.Fprintf(&b, " (HTTP %d", p.Status)
	if p.Source == SourcePlugin {
		b.WriteString(", reported by the plugin")
	}
	b.WriteString(")")
	return oneLine(b.String())
}

// Is reports whether target is a *Problem whose non-zero Code and Status both match p, so
// errors.Is(err, &plugboard.Problem{Code: plugboard.CodeTooLarge}) tests for a code.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	if !ok || (t.Code == "" && t.Status == 0) {
		return false
	}
	return (t.Code == "" || t.Code == p.Code) && (t.Status == 0 || t.Status == p.Status)
}

// newProblem builds the error for a non-2xx answer.
func newProblem(resp *http.Response, body []byte) *Problem {
	p := &Problem{}
	if isJSON(resp.Header.Get("Content-Type")) {
		// A problem document, or failing that the {"error": ...} or {"message": ...} shapes
		// that proxies and frameworks answer.
		var doc struct {
			Problem
			Error   any    `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &doc) == nil {
			*p = doc.Problem
			if p.Detail == "" {
				if s, ok := doc.Error.(string); ok {
					p.Detail = s
				} else if doc.Message != "" {
					p.Detail = doc.Message
				}
			}
		}
	} else if ct := mediaType(resp.Header.Get("Content-Type")); ct == "" || ct == "text/plain" {
		p.Detail = excerpt(body)
	} // anything else, typically an HTML error page, says nothing worth a line
	if p.Status == 0 {
		p.Status = resp.StatusCode
	}
	if p.Title == "" {
		p.Title = http.StatusText(resp.StatusCode)
	}
	if p.CorrelationID == "" {
		p.CorrelationID = resp.Header.Get("X-Correlation-ID")
	}
	p.RetryAfter, _ = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	p.Raw = body
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		p.Location = resp.Header.Get("Location")
		if p.Detail == "" {
			p.Detail = "the server answered a redirect"
		}
	}
	return p
}

func mediaType(contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt
}

func isJSON(contentType string) bool {
	mt := mediaType(contentType)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date (a date passed is a
// wait of 0). ok is false when v is absent or neither.
func retryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now).Round(time.Second), 0), true
	}
	return 0, false
}

// excerpt returns the start of a text body on one line, at most 200 characters.
func excerpt(body []byte) string {
	s := oneLine(strings.ToValidUTF8(string(body), "?"))
	if utf8.RuneCountInString(s) > 200 {
		s = string([]rune(s)[:200]) + "..."
	}
	return s
}

// oneLine collapses runs of white space, newlines included, into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
