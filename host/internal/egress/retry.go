package egress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/plugboard/plugboard/abi"
)

// RetryPolicy configures how a [Client] sends a request again after a failure worth retrying.
// Zero values mean the documented defaults.
type RetryPolicy struct {
	// MaxRetries is how many times one request may be sent again; 0 means 3, negative none.
	MaxRetries int
	// BaseDelay is the first backoff; each retry doubles it, with jitter. 0 means 200 ms.
	BaseDelay time.Duration
	// MaxDelay caps the backoff (not a Retry-After, which is honoured up to the deadline);
	// 0 means 5 s.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = 3
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 5 * time.Second
	}
	return p
}

// backoff is the wait before retry n (0 for the first): the exponential delay capped at
// MaxDelay, of which a random half is taken away ("equal jitter"), so concurrent callers spread
// out and still back off.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.BaseDelay << min(n, 30)
	if d <= 0 || d > p.MaxDelay {
		d = p.MaxDelay
	}
	half := d / 2
	return half + rand.N(half+1)
}

// maxRetryAfter bounds a Retry-After honoured by a request without a deadline (the host always
// has one; tests of the package may not).
const maxRetryAfter = time.Minute

// retryMargin is the time a retry must leave before the deadline after its wait: a retry that
// could only start as the deadline passes is not sent.
const retryMargin = 50 * time.Millisecond

// idempotentMethods are the methods RFC 9110 section 9.2.2 defines as idempotent (TRACE is
// refused anyway).
var idempotentMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true,
	http.MethodPut: true, http.MethodDelete: true,
}

// send hands one hop to the transport under the connection's policies and returns the
// upstream's response, the host's own answer in its place (429 rate_limited, 503
// circuit_open), or the error document of a refusal or failure:
//
//  1. The circuit breaker of (connection, origin) must admit the request: an open breaker
//     answers 503 at once, with Retry-After saying when it half-opens.
//  2. The connection's token bucket must hold a token: otherwise 429 with Retry-After.
//  3. The request is sent (taking one from the call's budget). A 429, 502, 503 or 504, or a
//     network error, is sent again after an exponential backoff with jitter (or after the
//     upstream's Retry-After), at most RetryPolicy.MaxRetries times and only while the wait
//     ends before the deadline, the budget has a request left, the breaker stays closed and
//     the bucket has a token in time. Only idempotent methods are retried, or any method when
//     the action is annotated idempotent (Grant.Idempotent); a request that never reached the
//     upstream (the connection failed before it was written) is retried whatever its method.
func (k *call) send(o *Outbound, method string, u *url.URL, header http.Header, body []byte, injecting, stayed bool) (*http.Response, *abi.Error) {
	pol := k.c.pol
	now := k.c.now()
	cp := pol.conn(k.g.Connection, k.g.RateLimit, now)
	br := pol.breakerFor(cp, o.Origin)
	lim := cp.rateLimiter()
	ok, probe, retryAt := br.admit(now)
	if !ok {
		return k.circuitOpen(o, method, u, retryAt.Sub(now)), nil
	}
	if wait, _ := reserve(lim, now, nil); wait > 0 {
		br.record(neutral, probe, now)
		cp.limited.Add(1)
		pol.count(CounterKey{Event: EventRateLimited, Connector: k.g.Connector})
		o.Policy = PolicyRateLimited
		return synthesized(method, u, http.StatusTooManyRequests, wait, PolicyRateLimited,
			fmt.Sprintf("the connection's rate limit (%g requests/s, burst %d) is used up; Plugboard did not send the request", cp.limit.PerSecond, cp.limit.Burst)), nil
	}

	retryAny := k.g.Idempotent || idempotentMethods[method]
	for attempt := 0; ; attempt++ {
		resp, sent, err, refusal := k.attempt(o, method, u, header, body, injecting, stayed)
		if refusal != nil {
			br.record(neutral, probe, k.c.now())
			return nil, refusal
		}
		oc, reason := k.classify(resp, err)
		if br.record(oc, probe, k.c.now()) {
			pol.count(CounterKey{Event: EventBreakerOpened, Connector: k.g.Connector, Origin: o.Origin})
		}
		probe = false

		retry := reason != "" && attempt < pol.retry.MaxRetries && (retryAny || err != nil && !sent)
		var delay time.Duration
		var res *reservation
		if retry {
			delay, res, retry = k.nextAttempt(attempt, resp, br, lim)
		}
		if !retry {
			if err != nil {
				return nil, k.transportError(o.Origin, err)
			}
			return resp, nil
		}
		if resp != nil {
			o.BytesIn += discard(resp)
		}
		if !k.wait(delay) {
			res.cancel(k.c.now())
			return nil, k.deadlineError()
		}
		o.Retries++
		cp.retries.Add(1)
		pol.count(CounterKey{Event: EventRetry, Connector: k.g.Connector, Origin: o.Origin, Reason: reason})

		now = k.c.now()
		if ok, probe, retryAt = br.admit(now); !ok {
			res.cancel(now)
			return k.circuitOpen(o, method, u, retryAt.Sub(now)), nil
		}
	}
}

// nextAttempt decides whether a retry can go out after attempt failed: it computes the wait
// (the upstream's Retry-After, else the backoff, stretched to when the bucket has a token),
// which must end before the deadline, and checks the budget and the breaker. The token, when
// one is taken, is held in the reservation.
func (k *call) nextAttempt(attempt int, resp *http.Response, br *breaker, lim *rate.Limiter) (time.Duration, *reservation, bool) {
	pol := k.c.pol
	delay := pol.retry.backoff(attempt)
	if resp != nil {
		if ra, ok := retryAfter(resp.Header.Get("Retry-After"), k.c.now()); ok {
			delay = ra
		}
	}
	now := k.c.now()
	fits := func(d time.Duration) bool {
		if deadline, ok := k.ctx.Deadline(); ok {
			return now.Add(d + retryMargin).Before(deadline)
		}
		return d <= maxRetryAfter
	}
	if !fits(delay) || k.b.Remaining() == 0 || !br.wouldAdmit(now.Add(delay)) {
		return 0, nil, false
	}
	var res *reservation
	if lim != nil {
		wait, r := reserve(lim, now, func(w time.Duration) bool { return fits(max(w, delay)) })
		if r == nil && wait > 0 {
			return 0, nil, false
		}
		res = &reservation{r: r, at: now}
		delay = max(delay, wait)
	}
	return delay, res, true
}

// attempt builds and sends the request once. sent reports whether the request was written to
// the connection; refusal is set when nothing was sent (the request cannot be built, or the
// call's budget is spent).
func (k *call) attempt(o *Outbound, method string, u *url.URL, header http.Header, body []byte, injecting, stayed bool) (resp *http.Response, sent bool, err error, refusal *abi.Error) {
	hreq, e := k.newRequest(method, u, header, body, injecting, stayed)
	if e != nil {
		return nil, false, nil, e
	}
	if !k.b.take() {
		return nil, false, nil, abi.Errorf(abi.CodeTooManyRequests, "the call's budget of outbound requests is spent")
	}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) }}
	hreq = hreq.WithContext(httptrace.WithClientTrace(hreq.Context(), trace))
	o.BytesOut += int64(len(body))
	resp, err = k.c.client.Do(hreq)
	return resp, err == nil || wrote.Load(), err, nil
}

// classify says what an attempt tells the breaker and, when it is worth retrying, why
// ("429", "502", "503", "504" or "network"; "" for no retry).
func (k *call) classify(resp *http.Response, err error) (outcome, string) {
	if err == nil {
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			return healthy, "429"
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return failed, strconv.Itoa(resp.StatusCode)
		}
		return healthy, ""
	}
	var ae *addressError
	var re *resolveError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &ae):
		return neutral, "" // refused by the policy: nothing to do with the upstream
	case k.parent.Err() != nil:
		return neutral, "" // the call ended: its own deadline or cancellation
	case k.ctx.Err() != nil:
		return failed, "" // the request's timeout_ms passed: the upstream was too slow
	case errors.As(err, &re) && (re.err == nil || errors.As(re.err, &dnsErr) && dnsErr.IsNotFound):
		return neutral, "" // the name does not exist: retrying will not make it
	}
	return failed, "network"
}

// wait sleeps for d, or until the request's context ends (false).
func (k *call) wait(d time.Duration) bool {
	if d <= 0 {
		return k.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-k.ctx.Done():
		return false
	}
}

// circuitOpen is the host's answer for a request its breaker refused.
func (k *call) circuitOpen(o *Outbound, method string, u *url.URL, retryIn time.Duration) *http.Response {
	k.c.pol.count(CounterKey{Event: EventBreakerRejected, Connector: k.g.Connector, Origin: o.Origin})
	o.Policy = PolicyCircuitOpen
	return synthesized(method, u, http.StatusServiceUnavailable, retryIn, PolicyCircuitOpen,
		fmt.Sprintf("%s failed repeatedly, so Plugboard's circuit breaker fails requests to it fast for a while; it did not send the request", o.Origin))
}

// retryAfter parses a Retry-After value (seconds or an HTTP date) into a wait from now.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 || s > int64(24*time.Hour/time.Second) {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

// synthesized is a response the host gives in the upstream's place: status, Retry-After in
// whole seconds (at least 1), X-Plugboard-Policy naming the policy, and a problem document
// (RFC 9457) whose code is the policy.
func synthesized(method string, u *url.URL, status int, retryIn time.Duration, policy, detail string) *http.Response {
	secs := max(1, int64((retryIn+time.Second-1)/time.Second))
	doc, _ := json.Marshal(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status,
		"code": policy, "detail": detail, "source": "plugboard", "retry_after_s": secs,
	})
	h := http.Header{
		"Content-Type":       {"application/problem+json"},
		"Retry-After":        {strconv.FormatInt(secs, 10)},
		"X-Plugboard-Policy": {policy},
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(doc)), ContentLength: int64(len(doc)),
		Request: &http.Request{Method: method, URL: u},
	}
}
