package registry

import (
	"sync"
	"testing"
	"time"
)

// TestRoutePick: a canary at p percent gets exactly p of every hundred unpinned calls, spread
// evenly, also when the calls come from many goroutines.
func TestRoutePick(t *testing.T) {
	for _, p := range []int{0, 1, 10, 25, 33, 50, 99, 100} {
		rt := &route{active: &Version{}, canary: &Version{}, spec: CanarySpec{Percent: p}}
		var mu sync.Mutex
		counts := [2]int{}
		longestRun := 0 // the longest run of active calls, to see the spread
		run := 0
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 250; i++ {
					side := rt.pick()
					mu.Lock()
					counts[side]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if counts[sideCanary] != p*10 {
			t.Errorf("percent %d: %d of 1000 calls went to the canary, want %d", p, counts[sideCanary], p*10)
		}
		// Sequentially, the canary calls are evenly spread: no run of active calls is longer
		// than 100/p rounded up.
		rt.seq.Store(0)
		for i := 0; i < 200; i++ {
			if rt.pick() == sideActive {
				run++
				longestRun = max(longestRun, run)
			} else {
				run = 0
			}
		}
		if p > 0 && longestRun > (100+p-1)/p {
			t.Errorf("percent %d: %d active calls in a row", p, longestRun)
		}
	}
	if (&route{active: &Version{}, spec: CanarySpec{Percent: 50}}).pick() != sideActive {
		t.Error("a route without a canary picked the canary")
	}
}

func TestSideStats(t *testing.T) {
	var s sideStats
	if got := s.snapshot("1.0.0"); got != (TrafficStats{Version: "1.0.0"}) {
		t.Errorf("empty stats = %+v", got)
	}
	for i := 0; i < 98; i++ {
		s.observe(time.Millisecond, false)
	}
	s.observe(200*time.Millisecond, true)
	s.observe(time.Hour, true) // past the last bucket
	got := s.snapshot("1.0.0")
	if got.Calls != 100 || got.Errors != 2 || got.ErrorRate != 0.02 {
		t.Errorf("counts = %+v", got)
	}
	// Quantiles are bucket bounds: within a factor of √2 above the true value.
	if got.P50 < time.Millisecond || got.P50 > 1415*time.Microsecond {
		t.Errorf("p50 = %s, want about 1ms", got.P50)
	}
	if got.P99 < 200*time.Millisecond || got.P99 > 283*time.Millisecond {
		t.Errorf("p99 = %s, want about 200ms", got.P99)
	}
}

func TestRolloutValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		ro   Rollout
		ok   bool
	}{
		{"plain", Rollout{Version: "1.0.0"}, true},
		{"canary", Rollout{Version: "1.0.0", Canary: &CanarySpec{Version: "1.1.0", Percent: 10, MaxErrorRate: 0.1, MinCalls: 50}}, true},
		{"no version", Rollout{}, false},
		{"canary without version", Rollout{Version: "1.0.0", Canary: &CanarySpec{Percent: 10}}, false},
		{"canary is the active version", Rollout{Version: "1.0.0", Canary: &CanarySpec{Version: "1.0.0", Percent: 10}}, false},
		{"negative percent", Rollout{Version: "1.0.0", Canary: &CanarySpec{Version: "1.1.0", Percent: -1}}, false},
		{"error rate over 1", Rollout{Version: "1.0.0", Canary: &CanarySpec{Version: "1.1.0", Percent: 1, MaxErrorRate: 1.5}}, false},
		{"negative min calls", Rollout{Version: "1.0.0", Canary: &CanarySpec{Version: "1.1.0", Percent: 1, MinCalls: -1}}, false},
	} {
		if err := tc.ro.validate(); (err == nil) != tc.ok {
			t.Errorf("%s: validate() = %v", tc.name, err)
		}
	}
}

func TestDevVersion(t *testing.T) {
	const digest = "sha256:0123456789abcdef"
	if got := devVersion("1.2.0", digest); got != "1.2.0+dev.01234567" {
		t.Errorf("devVersion = %s", got)
	}
	if got := devVersion("1.2.0+build.5", digest); got != "1.2.0+build.5.dev.01234567" {
		t.Errorf("devVersion with build metadata = %s", got)
	}
}
