// Package plugboard is the Go client of the Plugboard HTTP API (docs/API.md, v1): connectors and
// their versions, actions, connections, subscriptions and their events, MCP servers, API keys,
// the audit and invocation logs, and the health probes. The plugboard command is built on it.
//
// Create a client with [New] and call its methods; each takes a [context.Context] first and does
// one HTTP exchange (the List methods follow "next" cursors until the list is complete):
//
//	c := plugboard.New(os.Getenv("PLUGBOARD_URL"), os.Getenv("PLUGBOARD_TOKEN"))
//	out, err := c.Invoke(ctx, "github", "get_repo", plugboard.InvokeRequest{
//		Connection: "gh-main",
//		Input:      json.RawMessage(`{"owner": "o", "repo": "r"}`),
//	})
//
// Options given to New set the retries, a per-request timeout, the User-Agent suffix and the
// [http.Client] ([WithMaxRetries], [WithTimeout], [WithUserAgent], [WithHTTPClient]).
//
// # Events
//
// A queue subscription's events are consumed with [Client.Events], a range-over-func iterator
// that pulls, yields and acknowledges: an event is acknowledged once the loop body has returned
// and the loop asks for the next one. Webhook deliveries are checked with [VerifyWebhook]
// (Standard Webhooks), which returns the delivered [Event].
//
// # Errors
//
// A response outside 2xx becomes a [*Problem]: the RFC 9457 problem details the server sent, or,
// when the body is not a problem document (a proxy's HTML page, a plain-text error), one built
// from the status and a short excerpt of the body. Match on [Problem.Code] with the Code*
// constants, or with errors.Is against a *Problem carrying only a code or a status. Transport
// failures (connection refused, DNS, timeouts) are returned as the [net/http] client reports
// them, a [*url.Error] naming the method and URL.
//
// # Retries
//
// A 429 or 503 answer is sent again up to the client's max retries (2 unless [WithMaxRetries]
// says otherwise), after the wait its Retry-After header asks for, or an exponential backoff from
// 0.5 s with jitter when it has none. A wait over 60 s is not waited for: the error is returned
// at once. Nothing else is retried, since a call that failed otherwise may have had effects.
// Each attempt sends the same X-Correlation-ID.
//
// # Decoding
//
// The API may add fields at any time ("extend it freely"), so responses are decoded leniently:
// unknown fields are ignored, and every document type keeps the bytes it was decoded from in a
// Raw field so a caller can show the server's document unchanged. Requests are the opposite: the
// server rejects unknown fields, so request types only carry fields API.md defines, and empty
// optional fields are omitted.
//
// # Correlation IDs
//
// [WithCorrelationID] sets the X-Correlation-ID sent with the calls made under a context; the
// ID the server echoes is reported in [Problem.CorrelationID] and
// [InvokeResponse.CorrelationID].
//
// # Secrets
//
// Credentials go to the server in [Auth] and [Credentials] values and never come back. [Auth]
// redacts its secret fields when formatted with the fmt verbs, so logging a request by accident
// does not leak them. The client never logs.
//
// # Testing
//
// Package [github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest] is an in-memory fake
// of the API for the tests of programs that use this client.
package plugboard
