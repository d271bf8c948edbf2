// Package readable turns an HTML page into readable text without a DOM: script, style and
// other non-content elements are dropped, block elements become line breaks, entities are
// decoded and blank runs collapsed.
package readable

import (
	"html"
	"regexp"
	"strings"
)

var (
	dropRE  = regexp.MustCompile(`(?is)<(script|style|noscript|template|svg|head)\b.*?</(script|style|noscript|template|svg|head)\s*>|<!--.*?-->`)
	blockRE = regexp.MustCompile(`(?i)</?(p|div|br|li|ul|ol|h[1-6]|tr|table|section|article|header|footer|pre|blockquote)\b[^>]*>`)
	tagRE   = regexp.MustCompile(`<[^>]*>`)
	spaceRE = regexp.MustCompile(`[ \t\r\f\v]+`)
	linesRE = regexp.MustCompile(`\n\s*\n+`)
)

// Text returns the readable text of an HTML document.
func Text(doc string) string {
	s := dropRE.ReplaceAllString(doc, " ")
	s = blockRE.ReplaceAllString(s, "\n")
	s = tagRE.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	s = spaceRE.ReplaceAllString(s, " ")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	s = linesRE.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	return strings.TrimSpace(s)
}
