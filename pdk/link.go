package pdk

import (
	"net/url"
	"strings"
)

// Link is one link of an RFC 8288 Link header.
type Link struct {
	// URL is the target, resolved against the response's URL when it was relative.
	URL string
	// Rel holds the relation types, lower-cased ("next", "last", ...).
	Rel []string
	// Params holds the other parameters by lower-cased name (title, type, ...).
	Params map[string]string
}

// HasRel reports whether the link has the relation type rel (case-insensitive).
func (l Link) HasRel(rel string) bool {
	for _, r := range l.Rel {
		if strings.EqualFold(r, rel) {
			return true
		}
	}
	return false
}

// ParseLinks parses a Link header value (RFC 8288 section 3), such as
//
//	<https://api.github.com/repositories/1/issues?page=2>; rel="next", <...?page=5>; rel="last"
//
// Relative targets are resolved against base when base is a valid URL. Malformed parts are
// skipped; ParseLinks never fails.
func ParseLinks(header, base string) []Link {
	baseURL, _ := url.Parse(base)
	var links []Link
	p := linkParser{s: header}
	for {
		p.skipSpaceAndCommas()
		if p.done() {
			return links
		}
		if p.s[p.i] != '<' {
			p.skipToNextLink()
			continue
		}
		end := strings.IndexByte(p.s[p.i:], '>')
		if end < 0 {
			return links
		}
		target := strings.TrimSpace(p.s[p.i+1 : p.i+end])
		p.i += end + 1
		link := Link{URL: target, Params: map[string]string{}}
		if baseURL != nil {
			if u, err := baseURL.Parse(target); err == nil {
				link.URL = u.String()
			}
		}
		for {
			p.skipSpace()
			if p.done() || p.s[p.i] == ',' {
				break
			}
			if p.s[p.i] != ';' {
				p.skipToNextLink()
				break
			}
			p.i++
			name, value := p.param()
			if name == "" {
				continue
			}
			if name == "rel" {
				if link.Rel == nil { // RFC 8288: only the first rel counts
					link.Rel = strings.Fields(strings.ToLower(value))
				}
				continue
			}
			if _, dup := link.Params[name]; !dup {
				link.Params[name] = value
			}
		}
		links = append(links, link)
	}
}

// NextLink returns the URL of the response's Link header entry with rel="next", or "" when
// there is none: the way GitHub and many REST APIs page.
func NextLink(resp *Response) string {
	if resp == nil {
		return ""
	}
	for _, l := range ParseLinks(resp.Header("Link"), resp.URL) {
		if l.HasRel("next") {
			return l.URL
		}
	}
	return ""
}

type linkParser struct {
	s string
	i int
}

func (p *linkParser) done() bool { return p.i >= len(p.s) }

func (p *linkParser) skipSpace() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *linkParser) skipSpaceAndCommas() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
}

// skipToNextLink moves past the next comma that is outside quotes and angle brackets.
func (p *linkParser) skipToNextLink() {
	inQuote := false
	for !p.done() {
		c := p.s[p.i]
		switch {
		case inQuote && c == '\\':
			p.i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ',':
			p.i++
			return
		}
		p.i++
	}
}

// param reads one `name[=value]` after a ';'. The name is lower-cased; value may be a token or a
// quoted string. A name ending in '*' (RFC 8187 extended value) is kept as it is.
func (p *linkParser) param() (name, value string) {
	p.skipSpace()
	start := p.i
	for !p.done() && !strings.ContainsRune("=;, \t", rune(p.s[p.i])) {
		p.i++
	}
	name = strings.ToLower(p.s[start:p.i])
	p.skipSpace()
	if p.done() || p.s[p.i] != '=' {
		return name, ""
	}
	p.i++
	p.skipSpace()
	if !p.done() && p.s[p.i] == '"' {
		p.i++
		var b strings.Builder
		for !p.done() && p.s[p.i] != '"' {
			if p.s[p.i] == '\\' && p.i+1 < len(p.s) {
				p.i++
			}
			b.WriteByte(p.s[p.i])
			p.i++
		}
		p.i++ // closing quote
		return name, b.String()
	}
	start = p.i
	for !p.done() && !strings.ContainsRune(";, \t", rune(p.s[p.i])) {
		p.i++
	}
	return name, p.s[start:p.i]
}
