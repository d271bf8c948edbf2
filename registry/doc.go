// Package registry is Plugboard's durable state and the live set of connector versions.
//
// It stores plugin blobs content-addressed, keeps every version, and holds the active pointer of
// each connector: [Registry.Activate] provisions the new version (compile, first instance,
// describe again), then moves the pointer atomically, then drains the old version, so a failure
// at any step leaves the old version serving. Calls that raced a swap onto a draining version
// are retried on the new one, so a swap fails no call.
//
// Connections hold credentials sealed with AES-256-GCM (package store); they are opened only to
// build a [host.Binding] for a call and never leave the host.
package registry
