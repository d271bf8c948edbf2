package server

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
)

// anyManifestTB is anyManifest for benchmarks.
func anyManifestTB(tb testing.TB, manifest string) []byte {
	tb.Helper()
	b, err := patch.Patch(pluginWasm(tb, "anymanifest"), []byte(manifest))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkSwapLatency measures a hot swap from the PUT /v1/connectors/{name}/active request to
// the first call served by the new version (the op), alternating between two versions of the
// 3 MiB anymanifest module, with no other traffic. warm_cache: the new version's compiled code
// is in the on-disk compilation cache (as after its upload, which compiles it, or for a roll
// back); cold_cache: the cache was emptied first, so the swap compiles the module. In both cases
// the new version is not in memory: the previous swap unloaded it. put-ms is the PUT alone
// (provision, then swap), first-call-ms the call that follows. promote_canary: the new version
// runs as a 10% canary before the op, which promotes it: nothing to provision.
func BenchmarkSwapLatency(b *testing.B) {
	for _, tc := range []struct {
		name          string
		cold, promote bool
	}{{"warm_cache", false, false}, {"cold_cache", true, false}, {"promote_canary", false, true}} {
		b.Run(tc.name, func(b *testing.B) {
			cache := b.TempDir()
			ts := startServer(b, func(o *Options) { o.Host.CacheDir = cache })
			versions := []string{"1.0.0", "2.0.0"}
			for _, v := range versions {
				ts.must(201, ts.do("POST", "/v1/connectors", anyManifestTB(b, manifestJSON(v))))
			}
			var put, first time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				target := versions[(i+1)%2]
				old := ts.srv.reg.Loaded()
				if len(old) != 1 {
					b.Fatalf("%d versions loaded before the swap, want 1", len(old))
				}
				if tc.cold {
					emptyDir(b, cache)
				}
				if tc.promote {
					ts.must(200, ts.do("PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": versions[i%2],
						"canary": map[string]any{"version": target, "percent": 10}}))
				}
				b.StartTimer()
				t0 := time.Now()
				ts.must(200, ts.do("PUT", "/v1/connectors/anymanifest/active", map[string]any{"version": target}))
				t1 := time.Now()
				for {
					r := ts.must(200, ts.invoke("anymanifest", "echo", nil))
					if r.json(b)["version"] == target {
						break
					}
				}
				t2 := time.Now()
				b.StopTimer()
				put += t1.Sub(t0)
				first += t2.Sub(t1)
				<-old[0].Done() // the previous version drained and released its compiled code
			}
			b.ReportMetric(float64(put.Microseconds())/1000/float64(b.N), "put-ms/op")
			b.ReportMetric(float64(first.Microseconds())/1000/float64(b.N), "first-call-ms/op")
		})
	}
}

// emptyDir removes the files under dir, keeping the directories (the compilation cache keeps
// its layout).
func emptyDir(tb testing.TB, dir string) {
	tb.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			err = os.Remove(p)
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
}
