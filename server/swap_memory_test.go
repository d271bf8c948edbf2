package server

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// executableBytes sums the anonymous executable mappings of the process: where wazero keeps
// compiled machine code.
func executableBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	var total int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || len(f) > 5 || f[1] != "r-xp" { // anonymous: no path column
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, _ := strconv.ParseUint(lo, 16, 64)
		z, _ := strconv.ParseUint(hi, 16, 64)
		total += int64(z - a)
	}
	return total
}

// settledExecutableBytes lets finalizers unmap released code before measuring.
func settledExecutableBytes(t *testing.T) int64 {
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	return executableBytes(t)
}

// TestUnloadedVersionsReleaseCode loads and unloads distinct versions one after the other: the
// machine code of each is released with it (wazero keeps compiled code for as long as the
// compilation cache it was compiled with lives, so each module has its own), and the memory
// holding compiled code does not grow with the number of versions ever loaded.
func TestUnloadedVersionsReleaseCode(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/maps")
	}
	ts := startServer(t, nil)
	uploadVersions(t, ts, "1.0.0")
	versionOf(t, ts, "")
	// Modules other tests compile too, so the test costs loads, not compilations.
	load := func(wasm []byte) {
		v := ts.must(201, ts.do("POST", "/v1/connectors", wasm)).json(t)["version"].(string)
		versionOf(t, ts, v)
		ts.must(204, ts.do("DELETE", "/v1/connectors/anymanifest/versions/"+v, nil))
	}
	load(smallMemoryPlugin(t)) // the first one may map what stays (the host's own modules)
	waitLoaded(t, ts, "1.0.0")
	base := settledExecutableBytes(t)
	modules := [][]byte{anyManifest(t, manifestJSON("2.0.0")), hostsPlugin(t), anyManifest(t, manifestJSON("1.2.0"))}
	for _, m := range modules {
		load(m)
	}
	n := len(modules)
	waitLoaded(t, ts, "1.0.0")
	grown := settledExecutableBytes(t) - base
	t.Logf("executable mappings grew by %d KiB over %d versions loaded and unloaded", grown>>10, n)
	// One version of this module compiles to about 12 MiB of code; keeping them grows by about
	// 36 MiB. Allow a little more than one for mappings still waiting for their finalizer.
	if grown > 15<<20 {
		t.Errorf("executable mappings grew by %d MiB over %d versions loaded and unloaded; compiled code is kept", grown>>20, n)
	}
}
