package storage

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSemVerOrder(t *testing.T) {
	// Each version has higher precedence than the one before (semver.org item 11 and more).
	ordered := []string{
		"0.0.1",
		"0.9.9",
		"1.0.0-0",
		"1.0.0-1",
		"1.0.0-2",
		"1.0.0-10",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.0.1",
		"1.2.0",
		"1.10.0",
		"2.0.0",
		"10.0.0",
		"18446744073709551616.0.0", // past uint64: still ordered by value
	}
	for i := range ordered {
		for j := range ordered {
			got := compareSemVer(ordered[i], ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	shuffled := slices.Clone(ordered)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	slices.SortFunc(shuffled, compareSemVer)
	if !slices.Equal(shuffled, ordered) {
		t.Errorf("sorted = %v, want %v", shuffled, ordered)
	}
}

func TestSemVerBuildMetadataIgnored(t *testing.T) {
	tests := []struct {
		name string
		a, b string
	}{
		{"release with and without build", "1.0.0+20130313144700", "1.0.0"},
		{"two builds", "1.0.0+exp.sha.5114f85", "1.0.0+build.1"},
		{"pre-release with build", "1.0.0-beta+exp.sha.5114f85", "1.0.0-beta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, _ := parseSemVer(tt.a)
			y, ok := parseSemVer(tt.b)
			if !ok {
				t.Fatalf("%s does not parse", tt.b)
			}
			if c := x.compare(y); c != 0 {
				t.Errorf("precedence(%s, %s) = %d, want 0", tt.a, tt.b, c)
			}
		})
	}
}

func TestParseSemVer(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"1.0.0", true},
		{"0.0.0", true},
		{"1.2.3-alpha.0.x-y", true},
		{"1.2.3+001", true}, // leading zeros are fine in build metadata
		{"1.2.3-0a", true},  // alphanumeric, not numeric
		{"1.2", false},
		{"1.2.3.4", false},
		{"v1.2.3", false},
		{"01.2.3", false},
		{"1.02.3", false},
		{"1.2.03", false},
		{"1.2.3-01", false}, // numeric pre-release identifier with a leading zero
		{"1.2.3-", false},
		{"1.2.3-a..b", false},
		{"1.2.3+", false},
		{"1.2.3+a+b", false},
		{"1.2.3-a_b", false},
		{"1.2.3-α", false},
		{"", false},
		{"-1.2.3", false},
		{" 1.2.3", false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			if _, ok := parseSemVer(tt.v); ok != tt.want {
				t.Errorf("parseSemVer(%q) ok = %v, want %v", tt.v, ok, tt.want)
			}
		})
	}
}
