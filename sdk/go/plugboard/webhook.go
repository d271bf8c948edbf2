package plugboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// WebhookTolerance is how far a push's webhook-timestamp may be from now, either way, before
// [VerifyWebhook] refuses it as a replay.
const WebhookTolerance = 5 * time.Minute

// The reasons a push fails [VerifyWebhook], for errors.Is on the [*WebhookError] it returns.
var (
	// ErrWebhookMissingHeader: webhook-id, webhook-timestamp or webhook-signature is absent.
	ErrWebhookMissingHeader = errors.New("missing header")
	// ErrWebhookBadTimestamp: webhook-timestamp is not Unix seconds.
	ErrWebhookBadTimestamp = errors.New("webhook-timestamp is not a Unix time in seconds")
	// ErrWebhookStaleTimestamp: webhook-timestamp is more than [WebhookTolerance] from now.
	ErrWebhookStaleTimestamp = errors.New("webhook-timestamp is too far from now")
	// ErrWebhookNoMatchingSignature: no v1 entry of webhook-signature is the body's signature
	// under the secret (a tampered body, another subscription's secret, a rotated secret).
	ErrWebhookNoMatchingSignature = errors.New("no signature matches")
	// ErrWebhookBadSecret: the secret is not "whsec_" followed by base64.
	ErrWebhookBadSecret = errors.New("the signing secret is not whsec_ and base64")
	// ErrWebhookBadBody: the signature matches but the body is not a delivered event.
	ErrWebhookBadBody = errors.New("the body is not a delivered event")
)

// WebhookError is why a push failed [VerifyWebhook]. Answer such a push with a 4xx and do not
// act on it. errors.Is(err, ErrWebhook...) tells the reasons apart.
type WebhookError struct {
	// Reason is one of the ErrWebhook* errors.
	Reason error
	// Header is the header concerned, when there is one.
	Header string
	// Detail says more, for a log line; it never holds the secret.
	Detail string
}

// Error reads like "webhook verification failed: missing header webhook-signature".
func (e *WebhookError) Error() string {
	msg := "webhook verification failed: " + e.Reason.Error()
	if e.Header != "" && errors.Is(e.Reason, ErrWebhookMissingHeader) {
		msg += " " + e.Header
	}
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Unwrap returns Reason, so errors.Is matches the ErrWebhook* errors.
func (e *WebhookError) Unwrap() error { return e.Reason }

// VerifyWebhook checks a push of a webhook subscription as Standard Webhooks
// (https://www.standardwebhooks.com) defines it, and returns the delivered event it carries.
// h is the request's header (names in any case), body its raw bytes as received (read it
// whole, before any JSON decoding), and secret the subscription's signing_secret ("whsec_...",
// shown once in the answer to [Client.CreateSubscription]).
//
// It checks that webhook-id, webhook-timestamp and webhook-signature are present, that the
// timestamp is within [WebhookTolerance] of now, and that one of the signature's
// space-separated "v1,<base64>" entries is the HMAC-SHA256 of "{id}.{timestamp}.{body}" under
// the secret (compared in constant time). A failure is a [*WebhookError] naming what was wrong.
//
// A push may be delivered more than once: use [Event.ID] (equal to webhook-id) to skip the ones
// already handled.
func VerifyWebhook(h http.Header, body []byte, secret string) (Event, error) {
	return VerifyWebhookAt(h, body, secret, time.Now())
}

// VerifyWebhookAt is [VerifyWebhook] with now as the current time, for tests of a receiver with
// recorded pushes.
func VerifyWebhookAt(h http.Header, body []byte, secret string, now time.Time) (Event, error) {
	var vals [3]string
	for i, name := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		if vals[i] = headerFold(h, name); vals[i] == "" {
			return Event{}, &WebhookError{Reason: ErrWebhookMissingHeader, Header: name}
		}
	}
	id, tsText, sigs := vals[0], vals[1], vals[2]
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return Event{}, &WebhookError{Reason: ErrWebhookBadTimestamp, Header: "webhook-timestamp", Detail: fmt.Sprintf("%.40q", tsText)}
	}
	if skew := now.Sub(time.Unix(ts, 0)); skew > WebhookTolerance || skew < -WebhookTolerance {
		return Event{}, &WebhookError{Reason: ErrWebhookStaleTimestamp, Header: "webhook-timestamp",
			Detail: fmt.Sprintf("it is %s from now; the tolerance is %s", skew.Abs().Round(time.Second), WebhookTolerance)}
	}
	b64, ok := strings.CutPrefix(secret, "whsec_")
	key, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(key) == 0 {
		return Event{}, &WebhookError{Reason: ErrWebhookBadSecret, Detail: "pass the signing_secret of the subscription's create answer"}
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + tsText + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	matched := false
	for _, entry := range strings.Fields(sigs) {
		v, sig, ok := strings.Cut(entry, ",")
		if !ok || v != "v1" {
			continue // another scheme (v1a, a later version) is not ours to check
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			matched = true // keep going: the time taken does not tell which entry matched
		}
	}
	if !matched {
		return Event{}, &WebhookError{Reason: ErrWebhookNoMatchingSignature, Header: "webhook-signature",
			Detail: "the body was changed, or the secret is not this subscription's"}
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		detail := "no id"
		if err != nil {
			detail = err.Error()
		}
		return Event{}, &WebhookError{Reason: ErrWebhookBadBody, Detail: detail}
	}
	return ev, nil
}

// headerFold returns the first value of header name in h, matching the name in any case (a
// header built by hand may not use the canonical form).
func headerFold(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
