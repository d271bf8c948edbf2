package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// Opener returns a fresh, empty store. The suite closes it when the case that opened it ends
// (a second Close, after a case closed it itself, may return an error: it is ignored).
type Opener = func(t *testing.T) storage.Store

// Run runs the whole conformance suite against the backend that open returns, one subtest per
// kind of state and one per promise. open is called once per case, each time for a fresh,
// empty store.
func Run(t *testing.T, open Opener) {
	s := &suite{open: open}
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Blobs", blobCases},
		{"Versions", versionCases},
		{"Connections", connectionCases},
		{"OAuth", oauthCases},
		{"Keys", keyCases},
		{"MCPServers", mcpCases},
		{"Sources", sourceCases},
		{"Events", eventCases},
		{"Timers", timerCases},
		{"KV", kvCases},
		{"Audit", auditCases},
		{"Invocations", invocationCases},
		{"Meta", metaCases},
		{"Cluster", clusterCases},
		{"Lifecycle", lifecycleCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, s.store(t)) })
			}
		})
	}
}

// testCase is one promise: run gets a fresh store.
type testCase struct {
	name string
	run  func(t *testing.T, st storage.Store)
}

type suite struct{ open Opener }

// store opens a fresh store that is closed when t ends.
func (s *suite) store(t *testing.T) storage.Store {
	t.Helper()
	st := s.open(t)
	if st == nil {
		t.Fatal("storagetest: open returned a nil store")
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// ctx is the context of every call: t's, cancelled when the case ends.
func ctx(t *testing.T) context.Context { return t.Context() }

// ok fails the test at once when err is not nil.
func ok(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

// must returns v, failing the test when err is not nil.
func must[T any](t *testing.T, what string) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// wantErr fails the test unless err wraps target.
func wantErr(t *testing.T, err, target error, what string, args ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one wrapping %q", fmt.Sprintf(what, args...), err, target)
	}
}

// waitFor polls cond every 10 ms until it returns true, failing the test after within. cond's
// string says what it saw last, for the failure message.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, last := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, within, last)
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("%s: test ended while waiting", what)
		}
	}
}

// expiryWait bounds every wait for a short TTL to lapse: generous, since a backend may round
// TTLs up (JetStream's per-key TTLs count in seconds), but met at once by a precise one.
const expiryWait = 5 * time.Second

// shortTTL is the TTL of leases, heartbeats, kv entries and queue leases the suite waits out.
const shortTTL = 150 * time.Millisecond

// jsonEqual reports whether a and b are the same JSON value (stores may compact JSON).
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// parallel runs fn(i) for i in [0, n) in n goroutines and waits for them all.
func parallel(n int, fn func(i int)) {
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			fn(i)
		}()
	}
	for range n {
		<-done
	}
}
