package githubfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, f *Fake, path string, header map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.URL+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body any
	json.NewDecoder(resp.Body).Decode(&body)
	m, _ := body.(map[string]any)
	return resp, m
}

func TestAuthAndUserAgentAreRequired(t *testing.T) {
	f := New(t)
	tests := []struct {
		name    string
		header  map[string]string
		status  int
		message string
	}{
		{"no user agent", map[string]string{"Authorization": "Bearer " + f.Token, "User-Agent": ""}, 403, "Request forbidden by administrative rules"},
		{"no token", map[string]string{"User-Agent": "t"}, 401, "Requires authentication"},
		{"a wrong token", map[string]string{"User-Agent": "t", "Authorization": "Bearer nope"}, 401, "Bad credentials"},
		{"a bearer token", map[string]string{"User-Agent": "t", "Authorization": "Bearer " + f.Token}, 200, ""},
		{"a classic token header", map[string]string{"User-Agent": "t", "Authorization": "token " + f.Token}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, f, "/repos/octocat/Hello-World", tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if msg, _ := body["message"].(string); !strings.HasPrefix(msg, tt.message) {
				t.Errorf("message %q", msg)
			}
		})
	}
	if f.Requests() != len(tests) || f.LastAuthorization() != "token "+f.Token {
		t.Errorf("requests %d, last authorization %q", f.Requests(), f.LastAuthorization())
	}
}

func TestLinkHeaders(t *testing.T) {
	f := New(t)
	auth := map[string]string{"User-Agent": "t", "Authorization": "Bearer " + f.Token}
	resp, _ := get(t, f, "/repos/plugboard/busy/issues?per_page=100&page=2", auth)
	link := resp.Header.Get("Link")
	for _, want := range []string{`page=1&per_page=100&state=open>; rel="prev"`, `page=3&per_page=100&state=open>; rel="next"`, `rel="last"`, `rel="first"`, "/repositories/"} {
		if !strings.Contains(link, want) {
			t.Errorf("Link %q lacks %q", link, want)
		}
	}
	resp, _ = get(t, f, "/repos/plugboard/busy/issues?per_page=100&page=3", auth)
	if strings.Contains(resp.Header.Get("Link"), `rel="next"`) {
		t.Errorf("the last page has a next link: %s", resp.Header.Get("Link"))
	}
}
