package server

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDevUploadsSwapWithoutAFailedCall: dev uploads (?activate=true&dev=true, as `plugboard
// dev --watch` sends them) swap rebuilds in while 4 goroutines call the connector without
// pause. Each answer reports its steps in Server-Timing, the rebuild serves as soon as it
// answered, and once its optimized code replaced the interpreter's (host.Host.Prepare) calls go
// on. No call fails, and each runs on a build of the version the plugin reports.
func TestDevUploadsSwapWithoutAFailedCall(t *testing.T) {
	ts := startServer(t, nil)
	ts.must(201, ts.do("POST", "/v1/connectors", anyManifest(t, manifestJSON("1.0.0"))))
	h := startHammer(t, ts, 4, nil)
	timing := regexp.MustCompile(`^check;dur=\d+\.\d, store;dur=\d+\.\d, activate;dur=\d+\.\d$`)
	var last string
	for i := 1; i <= 3; i++ {
		r := ts.must(201, ts.do("POST", "/v1/connectors?activate=true&dev=true", anyManifest(t, manifestJSON("1.0.0", fmt.Sprintf(`"title":"build %d"`, i)))))
		if st := r.Header.Get("Server-Timing"); !timing.MatchString(st) {
			t.Errorf("build %d: Server-Timing %q, want check, store and activate durations", i, st)
		}
		last = r.json(t)["version"].(string)
		if v := versionOf(t, ts, ""); v != last {
			t.Errorf("after build %d answered, a call ran on %s, want %s", i, v, last)
		}
		h.waitCalls(4)
	}

	deadline := time.Now().Add(3 * time.Minute)
	for interpreted := true; interpreted; {
		interpreted = false
		for _, v := range ts.srv.reg.Loaded() {
			if v.Info.Version == last && v.Interpreted() {
				interpreted = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still runs in the interpreter after 3 minutes", last)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.waitCalls(20) // on the compiled code
	records := h.finish()
	for _, r := range records {
		if r.status != 200 || r.ran == "" || (r.version != r.ran && !strings.HasPrefix(r.version, r.ran+"+dev.")) {
			t.Fatalf("a call failed during the dev swaps: %d %s (of %d calls)", r.status, r.body, len(records))
		}
	}
	t.Logf("%d calls during 3 dev swaps: %v", len(records), countVersions(records))
}
