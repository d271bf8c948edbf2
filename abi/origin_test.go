package abi

import "testing"

func TestNormalizeOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://API.GitHub.com", "https://api.github.com"},
		{"HTTPS://api.github.com:443", "https://api.github.com"},
		{"http://example.com:80/", "http://example.com"},
		{"http://example.com:8080", "http://example.com:8080"},
		{"https://[::1]:8443", "https://[::1]:8443"},
		{"https://*.example.com", "https://*.example.com"},
	}
	for _, tt := range tests {
		got, err := NormalizeOrigin(tt.in, true)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"https://user@example.com", "https://example.com/path", "https://example.com?q=1", "mailto:x@y.z", "https://", "https://*.example.com"} {
		allowWildcard := bad != "https://*.example.com"
		if _, err := NormalizeOrigin(bad, allowWildcard); err == nil {
			t.Errorf("NormalizeOrigin(%q, %v) accepted", bad, allowWildcard)
		}
	}
}

func TestExpandHosts(t *testing.T) {
	got, err := ExpandHosts([]string{"{base_url}", "https://uploads.example.com:443", "{missing}"},
		map[string]any{"base_url": "https://GHE.corp.example:8443/api/v3/?x=1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://ghe.corp.example:8443", "https://uploads.example.com"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ExpandHosts = %v, want %v", got, want)
	}
	if _, err := ExpandHosts([]string{"{base_url}"}, map[string]any{"base_url": "not a url"}); err == nil {
		t.Error("a non-URL param expanded")
	}
	if _, err := ExpandHosts([]string{"{base_url}"}, map[string]any{"base_url": "file:///etc/passwd"}); err == nil {
		t.Error("a file: URL param expanded")
	}
}

func TestOriginMatches(t *testing.T) {
	tests := []struct {
		pattern, origin string
		want            bool
	}{
		{"https://api.github.com", "https://api.github.com", true},
		{"https://api.github.com", "http://api.github.com", false},
		{"https://api.github.com", "https://api.github.com:8443", false},
		{"https://*.example.com", "https://a.example.com", true},
		{"https://*.example.com", "https://a.b.example.com", true},
		{"https://*.example.com", "https://example.com", false},
		{"https://*.example.com", "https://evilexample.com", false},
		{"https://*.example.com", "http://a.example.com", false},
		{"https://*.example.com:8443", "https://a.example.com:8443", true},
		{"https://*.example.com:8443", "https://a.example.com", false},
	}
	for _, tt := range tests {
		if got := OriginMatches(tt.pattern, tt.origin); got != tt.want {
			t.Errorf("OriginMatches(%q, %q) = %v, want %v", tt.pattern, tt.origin, got, tt.want)
		}
	}
}
