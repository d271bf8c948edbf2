package pdk

import (
	"reflect"
	"testing"
)

func TestParseLinks(t *testing.T) {
	tests := []struct {
		name   string
		header string
		base   string
		want   []Link
	}{
		{
			name:   "GitHub's next and last",
			header: `<https://api.github.com/repositories/1300192/issues?page=2>; rel="next", <https://api.github.com/repositories/1300192/issues?page=5>; rel="last"`,
			want: []Link{
				{URL: "https://api.github.com/repositories/1300192/issues?page=2", Rel: []string{"next"}, Params: map[string]string{}},
				{URL: "https://api.github.com/repositories/1300192/issues?page=5", Rel: []string{"last"}, Params: map[string]string{}},
			},
		},
		{
			name:   "several relation types, unquoted rel and extra params",
			header: `<https://x.example/p/3>; rel="next last"; title="Page, three", <https://x.example/p/1>;rel=first;type=text/html`,
			want: []Link{
				{URL: "https://x.example/p/3", Rel: []string{"next", "last"}, Params: map[string]string{"title": "Page, three"}},
				{URL: "https://x.example/p/1", Rel: []string{"first"}, Params: map[string]string{"type": "text/html"}},
			},
		},
		{
			name:   "a comma inside the target does not split the link",
			header: `<https://x.example/q?ids=1,2,3>; rel="next"`,
			want:   []Link{{URL: "https://x.example/q?ids=1,2,3", Rel: []string{"next"}, Params: map[string]string{}}},
		},
		{
			name:   "relative targets resolve against the request URL",
			header: `</v1/items?cursor=abc>; rel="next"`,
			base:   "https://api.example.com/v1/items?limit=10",
			want:   []Link{{URL: "https://api.example.com/v1/items?cursor=abc", Rel: []string{"next"}, Params: map[string]string{}}},
		},
		{
			name:   "relation types are case-insensitive and only the first rel counts",
			header: `<https://x.example/2>; REL="Next"; rel="prev"`,
			want:   []Link{{URL: "https://x.example/2", Rel: []string{"next"}, Params: map[string]string{}}},
		},
		{
			name:   "quoted strings may escape quotes",
			header: `<https://x.example/2>; title="say \"hi\", ok"; rel=next`,
			want:   []Link{{URL: "https://x.example/2", Rel: []string{"next"}, Params: map[string]string{"title": `say "hi", ok`}}},
		},
		{
			name:   "garbage between links is skipped",
			header: `nonsense, <https://x.example/2>; rel=next, also "bad, really"`,
			want:   []Link{{URL: "https://x.example/2", Rel: []string{"next"}, Params: map[string]string{}}},
		},
		{name: "empty header", header: "", want: nil},
		{name: "unterminated target", header: `<https://x.example/2; rel=next`, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseLinks(tt.header, tt.base)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseLinks(%q)\n got %#v\nwant %#v", tt.header, got, tt.want)
			}
		})
	}
}

func TestNextLink(t *testing.T) {
	resp := &Response{
		URL:     "https://api.github.com/repos/o/r/issues?per_page=2",
		Headers: map[string]string{"Link": `<https://api.github.com/repositories/1/issues?per_page=2&page=1>; rel="prev", <https://api.github.com/repositories/1/issues?per_page=2&page=3>; rel="next"`},
	}
	if got, want := NextLink(resp), "https://api.github.com/repositories/1/issues?per_page=2&page=3"; got != want {
		t.Errorf("NextLink = %q, want %q", got, want)
	}
	if got := NextLink(&Response{Headers: map[string]string{"Link": `<https://x.example/1>; rel="prev"`}}); got != "" {
		t.Errorf("NextLink without next = %q, want empty", got)
	}
	if got := NextLink(&Response{Headers: map[string]string{"link": `<https://x.example/9>; rel="next"`}}); got != "https://x.example/9" {
		t.Errorf("NextLink with a lower-case header name = %q", got)
	}
	if got := NextLink(nil); got != "" {
		t.Errorf("NextLink(nil) = %q", got)
	}
}

func FuzzParseLinks(f *testing.F) {
	f.Add(`<https://x.example/2>; rel="next", <https://x.example/5>; rel="last"`, "https://x.example/1")
	f.Add(`<a>;;;,,,<b>; rel="x\"`, "")
	f.Fuzz(func(t *testing.T, header, base string) {
		for _, l := range ParseLinks(header, base) {
			_ = l.HasRel("next")
		}
	})
}
