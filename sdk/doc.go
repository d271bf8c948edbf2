// Package sdk holds the end-to-end tests of Plugboard's client SDKs against the real server:
// the TypeScript package in typescript/, the Python package in python/ and the Go package in
// go/plugboard. Each test starts the server with [sdkenv.Start] and runs the SDK's own test
// suite and examples against it.
//
// [sdkenv.Start]: https://pkg.go.dev/github.com/plugboard/plugboard/sdk/internal/sdkenv#Start
package sdk
