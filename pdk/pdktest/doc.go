// Package pdktest runs a connector's handlers in plain `go test`, without Wasm, against a fake
// Plugboard host that behaves like the real one where it matters for connector logic.
//
// A connector is a main package whose init functions register with the pdk; its tests live in
// the same package, so the registrations are in the test binary and the harness calls them
// through the same dispatch code the Wasm exports use:
//
//	func TestGetRepo(t *testing.T) {
//		gh := githubfake.New(t)
//		h := pdktest.New(t, pdktest.Options{
//			Connection: &abi.Connection{ID: "gh", Params: map[string]any{"base_url": gh.URL}},
//			Credential: pdktest.Credential{APIKey: gh.Token},
//		})
//		var repo Repo
//		if err := h.InvokeInto("get_repo", map[string]any{"owner": "octocat", "repo": "hello-world"}, &repo); err != nil {
//			t.Fatal(err)
//		}
//	}
//
// What the harness checks, as the host would:
//
//   - New runs plugboard_describe with every import denied and parses the manifest strictly
//     with all the rules of ABI.md section 3; it also checks describe is deterministic.
//   - Invoke, Poll and Webhook validate the input or params against the manifest's schema
//     first, and answer invalid_input with the schema errors as the API would.
//   - Results are decoded strictly; an output must be a JSON object matching the action's
//     output_schema; a guest error must have a code and a message and must not be a raw host
//     code (map those with pdk.FromHostError, or return them unchanged from the handler).
//     pdk.HostCode of such a mapped error names the host code the API answers with
//     (host_not_allowed for an origin outside the manifest, with HTTP 403).
//
// The fake host imports:
//
//   - plugboard_http performs real HTTP (point the connection's params at an httptest server).
//     It refuses origins outside the manifest's hosts (expanded with the connection's params)
//     or outside Options.AllowedOrigins with host_not_allowed, injects Options.Credential as
//     the manifest's auth settings say (api_key in a header or the query with its prefix,
//     basic, oauth2 as Bearer) unless the request says auth: false, follows up to 10 redirects
//     itself (dropping credentials when the origin changes), and enforces the deadline,
//     per-request timeouts, a response size cap and a request budget per call. Unlike the
//     real host it does not refuse loopback and private addresses.
//   - plugboard_credential computes HMAC-SHA256 with the credential's fields and reveals a
//     field only when the manifest lists it and Options.ApprovedReveal approves it.
//   - plugboard_timer keeps timers in memory (see [Harness.Timers] and [Harness.FireTimer]);
//     sleep does not block, it only checks the deadline ([Harness.Slept]).
//   - plugboard_kv is an in-memory store with the ABI limits and TTLs ([Harness.KV]).
//
// A harness is one connection: kv, timers and the request log persist across its calls.
package pdktest
