// Package client is a typed Go client for the Plugboard HTTP API (API.md, v1): connectors and
// their versions, actions, connections, and the health probes.
//
// Create one with [New] and call its methods; each takes a [context.Context] first and does one
// HTTP exchange (the list methods follow "next" cursors until the list is complete):
//
//	c := client.New("http://127.0.0.1:8080", os.Getenv("PLUGBOARD_TOKEN"), nil)
//	out, err := c.Invoke(ctx, "github", "get_repo", client.InvokeRequest{
//		Connection: "gh-main",
//		Input:      json.RawMessage(`{"owner": "o", "repo": "r"}`),
//	})
//
// # Errors
//
// A response outside 2xx becomes a [*Problem]: the RFC 9457 problem details the server sent, or,
// when the body is not a problem document (a proxy's HTML page, a plain-text error), one built
// from the status and a short excerpt of the body. Match on [Problem.Code] with the Code*
// constants, or with errors.Is against a *Problem carrying only a code or a status. Transport
// failures (connection refused, DNS, timeouts) are returned as the [net/http] client reports
// them, wrapped with the method and URL.
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
// does not leak them.
package client
