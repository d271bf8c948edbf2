package storage

import (
	"cmp"
	"strings"
)

// semver is a parsed SemVer 2.0 version (https://semver.org). Numbers are kept as their digit
// strings, so no size limit applies and nothing overflows.
type semver struct {
	major, minor, patch string
	pre                 []string // pre-release identifiers; none for a release
}

// parseSemVer parses a SemVer 2.0 version. Build metadata is checked, then dropped: it has no
// part in precedence.
func parseSemVer(v string) (semver, bool) {
	core, build, hasBuild := strings.Cut(v, "+")
	if hasBuild && !identifiers(build, false) {
		return semver{}, false
	}
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre && !identifiers(pre, true) {
		return semver{}, false
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return semver{}, false
	}
	for _, p := range parts {
		if !numeric(p) {
			return semver{}, false
		}
	}
	sv := semver{major: parts[0], minor: parts[1], patch: parts[2]}
	if hasPre {
		sv.pre = strings.Split(pre, ".")
	}
	return sv, true
}

// identifiers checks dot-separated identifiers: non-empty, [0-9A-Za-z-]; for pre-release ones
// (noLeadingZero) a numeric identifier has no leading zero.
func identifiers(s string, noLeadingZero bool) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return false
		}
		allDigits := true
		for _, c := range []byte(id) {
			switch {
			case '0' <= c && c <= '9':
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-':
				allDigits = false
			default:
				return false
			}
		}
		if noLeadingZero && allDigits && !numeric(id) {
			return false
		}
	}
	return true
}

// numeric reports whether s is a numeric identifier: digits, no leading zero unless "0".
func numeric(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// compareNumeric compares two numeric identifiers by value.
func compareNumeric(a, b string) int {
	return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
}

// compare orders a and b by SemVer precedence (semver.org, item 11).
func (a semver) compare(b semver) int {
	if c := cmp.Or(compareNumeric(a.major, b.major), compareNumeric(a.minor, b.minor), compareNumeric(a.patch, b.patch)); c != 0 {
		return c
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1 // a release follows its pre-releases
	case len(b.pre) == 0:
		return -1
	}
	for i := range min(len(a.pre), len(b.pre)) {
		x, y := a.pre[i], b.pre[i]
		xn, yn := numeric(x), numeric(y)
		var c int
		switch {
		case xn && yn:
			c = compareNumeric(x, y)
		case xn:
			c = -1 // numeric identifiers have lower precedence than alphanumeric ones
		case yn:
			c = 1
		default:
			c = strings.Compare(x, y) // ASCII order
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.pre), len(b.pre))
}

// compareSemVer orders two valid SemVer strings by precedence, breaking ties (versions that
// differ only in build metadata) by the strings themselves so the order is total. An invalid
// version sorts before every valid one.
func compareSemVer(a, b string) int {
	x, okx := parseSemVer(a)
	y, oky := parseSemVer(b)
	switch {
	case okx && oky:
		return cmp.Or(x.compare(y), strings.Compare(a, b))
	case okx:
		return 1
	case oky:
		return -1
	}
	return strings.Compare(a, b)
}

// ValidSemVer reports whether v is a SemVer 2.0 version, as every backend requires of a
// stored connector version.
func ValidSemVer(v string) bool { _, ok := parseSemVer(v); return ok }

// CompareSemVer orders two SemVer 2.0 versions by precedence (-1, 0 or 1), the order
// [Versions.Versions] lists them in.
func CompareSemVer(a, b string) int { return compareSemVer(a, b) }
