package abi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// NormalizeOrigin parses an origin "scheme://host[:port]" and returns it normalised: lower-case
// scheme and host, default port dropped. The scheme must be http or https; a path other than "/",
// a query, a fragment or user info is an error. A leading "*." label wildcard is kept when
// allowWildcard is true.
func NormalizeOrigin(s string, allowWildcard bool) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an origin: %w", s, err)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an origin: want scheme://host[:port] with nothing after it", s)
	}
	return originOf(u, allowWildcard)
}

// OriginOfURL returns the normalised origin of an absolute http(s) URL; path, query and
// fragment are ignored. It is how "{param}" host entries and request URLs are reduced to origins.
func OriginOfURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.User != nil {
		return "", fmt.Errorf("%q: user info in URLs is not allowed", s)
	}
	return originOf(u, false)
}

func originOf(u *url.URL, allowWildcard bool) (string, error) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%q: scheme must be http or https", u.String())
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", fmt.Errorf("%q: missing host", u.String())
	}
	if strings.Contains(host, "*") {
		rest, ok := strings.CutPrefix(host, "*.")
		if !allowWildcard || !ok || strings.Contains(rest, "*") || !strings.Contains(rest, ".") {
			return "", fmt.Errorf("%q: only a leading \"*.\" label wildcard over a domain of two or more labels is allowed", u.String())
		}
	}
	port := u.Port()
	if port == "80" && scheme == "http" || port == "443" && scheme == "https" {
		port = ""
	}
	if strings.Contains(host, ":") { // IPv6 literal
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, nil
	}
	return scheme + "://" + host, nil
}

// ErrParamNotURL reports a "{param}" host entry whose value is not an absolute http(s) URL.
var ErrParamNotURL = errors.New("connection param is not an absolute http(s) URL")

// ExpandHosts turns manifest host entries into normalised origin patterns: "{param}" entries
// become the origin of that connection param's URL value; literal entries are normalised. A
// param that is absent expands to nothing (the connector simply cannot reach it).
func ExpandHosts(hosts []string, params map[string]any) ([]string, error) {
	out := make([]string, 0, len(hosts))
	seen := map[string]bool{}
	for _, h := range hosts {
		var origin string
		if name, ok := HostParam(h); ok {
			v, present := params[name]
			if !present || v == nil {
				continue
			}
			s, _ := v.(string)
			o, err := OriginOfURL(s)
			if err != nil || !strings.Contains(s, "://") {
				return nil, fmt.Errorf("param %q: %w", name, ErrParamNotURL)
			}
			origin = o
		} else {
			o, err := NormalizeOrigin(h, true)
			if err != nil {
				return nil, err
			}
			origin = o
		}
		if !seen[origin] {
			seen[origin] = true
			out = append(out, origin)
		}
	}
	return out, nil
}

// HostParam reports whether a host entry is "{name}" and returns the name.
func HostParam(h string) (string, bool) {
	if len(h) > 2 && h[0] == '{' && h[len(h)-1] == '}' {
		return h[1 : len(h)-1], true
	}
	return "", false
}

// OriginMatches reports whether a normalised origin matches a normalised pattern. A pattern
// "https://*.example.com" matches any subdomain of example.com (at any depth) on the same scheme
// and port, but not example.com itself.
func OriginMatches(pattern, origin string) bool {
	if pattern == origin {
		return true
	}
	ps, prest, ok1 := strings.Cut(pattern, "://*.")
	if !ok1 {
		return false
	}
	os, orest, ok2 := strings.Cut(origin, "://")
	if !ok2 || ps != os {
		return false
	}
	// prest is "example.com[:port]"; orest must be "<labels>.example.com[:port]".
	return strings.HasSuffix(orest, "."+prest) && !strings.HasPrefix(orest, ".")
}

// AnyOriginMatches reports whether origin matches one of patterns.
func AnyOriginMatches(patterns []string, origin string) bool {
	for _, p := range patterns {
		if OriginMatches(p, origin) {
			return true
		}
	}
	return false
}
