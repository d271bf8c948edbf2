// Package host runs Plugboard connector plugins.
//
// A [Host] owns the shared on-disk compilation cache and the egress client. [Host.Inspect] runs
// the upload checks of API.md on a candidate .wasm (valid module, allowed imports, required
// exports, a describe that yields a valid manifest) in a sandbox with no capabilities.
// [Host.Load] compiles a version into a [Module]; a Module keeps warm instance pools per
// connection and never lends an instance of one connection to another.
//
// Every call runs with a deadline and a memory limit. Host imports (plugboard_http,
// plugboard_credential, plugboard_timer, plugboard_kv) see only the capability set of the call
// in progress: the connector's allowed origins, the connection's hosts and credentials, and the
// kv/timer scope of (connector, connection). An instance that traps or times out is discarded.
//
// One file per capability: http.go, credential.go, timer.go, kv.go, log.go.
package host
