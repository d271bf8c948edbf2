package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/plugboard/plugboard/abi"
)

// finish reads the final response's body under the size cap and turns it into the reply.
func (k *call) finish(o Outbound, start time.Time, resp *http.Response) *abi.HTTPResponse {
	defer resp.Body.Close()
	limit := k.c.maxResponseBytes
	hint := resp.ContentLength
	if resp.Request.Method == http.MethodHead {
		hint = 0 // the length of the body a GET would get; this one has none
	}
	if hint > limit {
		o.Duration = time.Since(start)
		return k.refuse(o, tooLarge(limit))
	}
	body, err := readCapped(resp.Body, hint, limit)
	o.BytesIn += int64(len(body))
	o.Duration = time.Since(start)
	if err != nil {
		return k.refuse(o, k.transportError(o.Origin, err))
	}
	if int64(len(body)) > limit {
		return k.refuse(o, tooLarge(limit))
	}
	out := &abi.HTTPResponse{Status: resp.StatusCode, Headers: joinHeaders(resp.Header)}
	if utf8.Valid(body) {
		out.Body = string(body)
	} else {
		out.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	k.record(o)
	return out
}

func tooLarge(limit int64) *abi.Error {
	return abi.Errorf(abi.CodeTooLarge, "the response body is over the limit of %d bytes", limit)
}

// readCapped reads r to the end but never more than limit+1 bytes, so a body over the limit is
// detected without reading all of it. hint is the Content-Length (-1 if unknown); a body that
// announces a length within the limit (and under 1 MiB, so a lying server cannot make us
// allocate much up front) is read into one allocation.
func readCapped(r io.Reader, hint, limit int64) ([]byte, error) {
	size := 512
	if hint >= 0 && hint < limit && hint < 1<<20 {
		size = int(hint) + 1 // room to see EOF without growing
	}
	b := make([]byte, 0, size)
	r = io.LimitReader(r, limit+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// discard drains a little of a response we do not return (a redirect, a 401 before a retry) so
// its connection can be reused, closes it, and returns the bytes read.
func discard(resp *http.Response) int64 {
	n, _ := io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	return n
}

func bodyReader(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// joinHeaders turns response headers into the reply's map: canonical names, several values
// joined with ", ", Set-Cookie values with "\n" (a cookie may itself hold ", ").
func joinHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for name, values := range h {
		name = http.CanonicalHeaderKey(name)
		sep := ", "
		if name == "Set-Cookie" {
			sep = "\n"
		}
		v := strings.Join(values, sep)
		if prev, ok := out[name]; ok { // two raw names with one canonical form
			v = prev + sep + v
		}
		out[name] = v
	}
	return out
}

// transportError maps a failure to send a hop or read its body to an error document whose
// message is safe to show the guest and log: it never holds the URL (whose query may carry an
// api_key), only the origin. A private_address refusal carries details naming the first refused
// address and, for a loopback, private or shared one, the range that would allow it:
// {"address": "127.0.0.1", "allow": "127.0.0.0/8"}.
func (k *call) transportError(origin string, err error) *abi.Error {
	var ae *addressError
	if errors.As(err, &ae) {
		e := abi.Errorf(abi.CodePrivateAddress, "%s; plugins may reach it only if the server allows that range (--egress-allow)", ae)
		if len(ae.refused) > 0 {
			a := ae.refused[0]
			d := map[string]string{"address": a.String()}
			if p, ok := allowFor(a); ok {
				d["allow"] = p.String()
			}
			e.Details, _ = json.Marshal(d)
		}
		return e
	}
	if k.ctx.Err() != nil {
		return k.deadlineError()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return abi.Errorf(abi.CodeTimeout, "request to %s timed out: %s", origin, networkMessage(err))
	}
	return abi.Errorf(abi.CodeNetwork, "request to %s failed: %s", origin, networkMessage(err))
}

// deadlineError says which deadline ended the request: the plugin call's or the request's own
// timeout_ms.
func (k *call) deadlineError() *abi.Error {
	switch err := k.parent.Err(); {
	case errors.Is(err, context.Canceled):
		return abi.Errorf(abi.CodeTimeout, "the plugin call was cancelled")
	case err != nil:
		return abi.Errorf(abi.CodeTimeout, "the plugin call's deadline passed")
	}
	return abi.Errorf(abi.CodeTimeout, "the request's timeout_ms (%d ms) passed", k.timeout.Milliseconds())
}

// networkMessage describes a transport failure in a few words without the URL.
func networkMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var re *resolveError
	if errors.As(err, &re) {
		return re.Error()
	}
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the server"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the server closed the connection"
	case errors.As(err, &certErr):
		return "TLS certificate verification failed: " + certErr.Err.Error()
	case errors.As(err, &recErr):
		return "the server did not answer with TLS"
	case errors.As(err, &alert):
		return "TLS handshake failed: " + alert.Error()
	}
	return err.Error()
}
