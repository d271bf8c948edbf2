// Package egress is the engine behind the plugboard_http host import (ABI.md section 5): the one
// way a plugin reaches the network.
//
// The host glue decodes the guest's JSON into an abi.HTTPRequest, builds a [Grant] (the
// connector's manifest origins, the connection's approved origins and its [Credential]) and a
// per-call [Budget], and calls [Client.Do]. Do never fails in Go terms: it always answers an
// abi.HTTPResponse, whose Error is set (with Status 0) when the request was refused or failed.
// One [Outbound] record per hop goes to the invocation log.
//
// # Security properties
//
// Origin allow-list. A request, and every redirect hop, goes out only if its origin
// (scheme://host[:port]) matches the manifest's hosts and, when the call has a connection, the
// connection's approved hosts; otherwise "host_not_allowed". A URL with user info, a scheme
// other than http(s), or a relative URL is "invalid_request".
//
// No private addresses, no DNS rebinding. The check happens inside the transport's dialer: the
// host name is resolved once, every address is checked, and the dialer connects to the checked
// IP addresses, never to the name, so no second lookup can swap in another address. Refused:
// loopback, private (RFC 1918, fc00::/7), link-local (169.254.0.0/16 with the cloud metadata
// address, fe80::/10), multicast, unspecified, shared/CGNAT (100.64.0.0/10), the other
// special-purpose blocks, IPv4-mapped and IPv4-compatible forms of any of them, and NAT64/6to4
// addresses that carry a refused IPv4 address. [Config.AllowNetworks] (the server's
// --egress-allow) lets chosen ranges through. When a name resolves to both allowed and refused
// addresses, only the allowed ones are dialed; when none is allowed the request fails with
// "private_address". IP-literal URLs are checked the same way. The dialer's Control hook checks
// the address once more just before connect. No HTTP proxy is ever used (it would dial
// unchecked), whatever the environment says. TLS still verifies the certificate against the URL's
// host name.
//
// Credentials stay in the host. The credential is added at this boundary (an api_key header or
// query parameter, Basic, or an OAuth2 Bearer token), replacing a guest-set header or parameter of
// the same name, only when the guest did not send "auth": false and the origin is one of the
// connection's. It is added only while every hop has stayed on the original request's origin:
// once a redirect leaves that origin, neither the credential nor the guest's own Authorization,
// Cookie or credential header is sent again for the rest of the request, even if a later hop
// comes back. No error message or Outbound record carries a secret or a URL path or query;
// messages name the origin only, and are scrubbed of every secret value as a last resort.
//
// Redirects are followed here, not by net/http, so every hop is re-checked (origin, address,
// credentials) and counted: at most [Config.MaxRedirects] ("too_many_redirects"); 301/302 turn
// POST into GET, 303 turns anything but HEAD into GET, both dropping the body; 307/308 keep method
// and body. A hop that is refused answers the refusal's error, not the 3xx.
//
// Bounded. The plugin call's deadline (ctx) and the request's timeout_ms cover resolution,
// connecting, every hop and reading the body ("timeout"). Request bodies are capped
// ([Config.MaxRequestBytes]) and response bodies are read to at most the cap plus one byte
// ([Config.MaxResponseBytes]), both "too_large". Every request sent, each redirect hop
// included, takes one from the call's [Budget] ("too_many_requests"). Response headers are capped
// at 1 MiB.
//
// # Resilience
//
// Every request handed to the transport goes through three policies, in this order, all shared
// by every call that runs with the same connection ([Grant.Connection]):
//
//   - A circuit breaker per (connection, origin) ([BreakerPolicy]): after Failures failures in a
//     row (network errors, timeouts, 502, 503, 504) it opens and requests to that origin are
//     answered at once, without being sent, with a 503 carrying Retry-After (when it half-opens)
//     and X-Plugboard-Policy: circuit_open. After OpenFor one probe goes through; its outcome
//     closes the breaker or opens it again.
//   - A token bucket per connection ([Grant.RateLimit], golang.org/x/time/rate): a request that
//     finds it empty is not sent and gets a 429 with Retry-After (when a token will be there)
//     and X-Plugboard-Policy: rate_limited. Retries and redirect hops take tokens too.
//   - Retries ([RetryPolicy]): a 429, 502, 503 or 504 answer, or a network error, is sent again
//     after an exponential backoff with jitter, or after the upstream's Retry-After, only while
//     the wait ends before the deadline (so Retry-After is honoured up to the call deadline) and
//     the call's budget has a request left. Only idempotent methods (GET, HEAD, OPTIONS, PUT,
//     DELETE) are retried, or any method when the action is annotated idempotent
//     ([Grant.Idempotent]); a request whose connection failed before it was written (never seen
//     by the upstream) is retried whatever its method. A POST that was sent is never sent twice.
//
// The host's own answers are ordinary responses with a problem document body (code
// rate_limited or circuit_open, source plugboard), so a connector maps them as it maps the
// upstream's throttling and outages; [Outbound.Policy] names them in the invocation log.
// [Client.ConnectionStats] and [Client.Metrics] expose the state for the connection's API
// document and /metrics.
//
// # Request and response
//
// Header names are canonicalised; two guest headers whose names differ only in case are
// "invalid_request". Host, Content-Length, Transfer-Encoding, Connection and the other hop-by-hop
// headers (Keep-Alive, Proxy-*, TE, Trailer, Upgrade) from the guest are silently dropped: the
// transport frames the request and the Host line is the URL's. User-Agent defaults to
// [Config.UserAgent]. Response header names are canonical; multiple values are joined with ", ",
// Set-Cookie values with "\n". A body that is valid UTF-8 is returned as body, any other as
// body_base64.
//
// RATIONALE.md in this directory answers "why ...?" for the choices above.
package egress
