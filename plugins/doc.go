// Package plugins holds the connectors shipped with Plugboard, each a main package built to
// WebAssembly with the pdk:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm ./plugins/NAME
//
// The connectors are:
//
//   - http: a generic REST connector (one request action against a base URL);
//   - github: repositories, issues and comments on GitHub, with a fake GitHub API for tests in
//     github/githubfake;
//   - outlook: Outlook mail through Microsoft Graph (list, read, send, reply, mark read, move;
//     new_message by delta query, message_received by a Graph change-notification
//     subscription);
//   - sharepoint: SharePoint document libraries and OneDrive through Microsoft Graph (sites,
//     drives, items, downloads by redirect, uploads in one PUT or an upload session;
//     file_changed by drive delta);
//   - fetch-mcp and github-mcp: hosted MCP servers (see catalog.json).
//
// outlook and sharepoint share one Microsoft 365 connection and the code in internal/msgraph;
// msgraph/graphfake is a fake of the Graph endpoints they use, for their tests and the
// server's.
//
// testdata/ holds plugins that exist only for tests (spy, hostile, anymanifest, badimport);
// the go tool skips testdata in ./... patterns, so build and test them by explicit path.
// testdata/ashttp is written in AssemblyScript with the Extism AssemblyScript PDK (npm, pinned
// in its package-lock.json) rather than Go: the Makefile builds it with npm to
// bin/testplugins/ashttp.wasm.
//
// This package's own test builds plugins to Wasm and runs them under the Extism host SDK, to
// prove the wasip1 build path works end to end.
package plugins
