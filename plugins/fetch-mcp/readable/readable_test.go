package readable

import "testing"

func TestText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"scripts and styles are dropped", `<html><head><title>x</title><style>p{}</style></head><body><script>alert(1)</script><p>Hello &amp; welcome</p></body></html>`, "Hello & welcome"},
		{"blocks become lines", `<h1>Title</h1><p>One</p><ul><li>a</li><li>b</li></ul>`, "Title\n\nOne\n\na\n\nb"},
		{"plain text stays", "just text", "just text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Text(tc.in); got != tc.want {
				t.Errorf("Text = %q, want %q", got, tc.want)
			}
		})
	}
}
