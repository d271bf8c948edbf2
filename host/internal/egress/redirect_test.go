package egress

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

func TestRedirectMethods(t *testing.T) {
	tests := []struct {
		name         string
		method       string
		body         *string
		path         string
		maxRedirects int
		wantCode     string // "" expects 200 (or a bodiless HEAD answer)
		wantMethod   string // of the last request upstream saw
		wantBody     string
		wantCT       bool // the last request still carries the guest's Content-Type
		wantRequests int
	}{
		{name: "303 turns POST into GET", method: "POST", body: ptr("hello"), path: redirectURL(303, 1, ""), wantMethod: "GET", wantRequests: 2},
		{name: "303 turns PUT into GET", method: "PUT", body: ptr("hello"), path: redirectURL(303, 1, ""), wantMethod: "GET", wantRequests: 2},
		{name: "303 keeps HEAD", method: "HEAD", path: redirectURL(303, 1, ""), wantMethod: "HEAD", wantRequests: 2},
		{name: "302 turns POST into GET", method: "POST", body: ptr("hello"), path: redirectURL(302, 1, ""), wantMethod: "GET", wantRequests: 2},
		{name: "301 turns POST into GET", method: "POST", body: ptr("hello"), path: redirectURL(301, 1, ""), wantMethod: "GET", wantRequests: 2},
		{name: "302 keeps PUT and its body", method: "PUT", body: ptr("hello"), path: redirectURL(302, 1, ""), wantMethod: "PUT", wantBody: "hello", wantCT: true, wantRequests: 2},
		{name: "307 keeps POST body", method: "POST", body: ptr("hello"), path: redirectURL(307, 1, ""), wantMethod: "POST", wantBody: "hello", wantCT: true, wantRequests: 2},
		{name: "308 keeps PUT body", method: "PUT", body: ptr("hello"), path: redirectURL(308, 1, ""), wantMethod: "PUT", wantBody: "hello", wantCT: true, wantRequests: 2},
		{name: "307 after 303 stays GET", method: "POST", body: ptr("hello"), path: redirectURL(303, 1, redirectURL(307, 1, "")), wantMethod: "GET", wantRequests: 3},
		{name: "10 redirects are followed", method: "GET", path: redirectURL(302, 10, ""), wantMethod: "GET", wantRequests: 11},
		{name: "11 redirects are too_many_redirects", method: "GET", path: redirectURL(302, 11, ""), wantCode: "too_many_redirects", wantMethod: "GET", wantRequests: 11},
		{name: "MaxRedirects 2 stops the third", method: "GET", path: redirectURL(302, 3, ""), maxRedirects: 2, wantCode: "too_many_redirects", wantMethod: "GET", wantRequests: 3},
		{name: "negative MaxRedirects follows none", method: "GET", path: redirectURL(302, 1, ""), maxRedirects: -1, wantCode: "too_many_redirects", wantMethod: "GET", wantRequests: 1},
		{name: "redirect to a non-http scheme is a network error", method: "GET", path: redirectURL(302, 1, "ftp://files.test/x"), wantCode: "network", wantMethod: "GET", wantRequests: 1},
		{name: "redirect to a URL with user info is a network error", method: "GET", path: redirectURL(302, 1, "http://u:hunter2@api.test/x"), wantCode: "network", wantMethod: "GET", wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			c, _ := newClient(t, Config{AllowNetworks: loopback, MaxRedirects: tt.maxRedirects})
			o := up.origin("127.0.0.1")
			req := &abi.HTTPRequest{Method: tt.method, URL: o + tt.path, Body: tt.body}
			if tt.body != nil {
				req.Headers = map[string]string{"Content-Type": "text/plain"}
			}
			var rec records
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, NewBudget(100), req, rec.add)
			if tt.wantCode != "" {
				wantErr(t, got, tt.wantCode)
				if got.Error.Code == "network" && strings.Contains(got.Error.Message, "hunter2") {
					t.Errorf("message %q repeats the Location's password", got.Error.Message)
				}
			} else {
				wantOK(t, got, http.StatusOK)
			}
			reqs := up.requests()
			if len(reqs) != tt.wantRequests {
				t.Fatalf("upstream got %d requests, want %d", len(reqs), tt.wantRequests)
			}
			last := reqs[len(reqs)-1]
			if last.Method != tt.wantMethod || last.Body != tt.wantBody || (last.Header.Get("Content-Type") != "") != tt.wantCT {
				t.Errorf("last request %s body %q Content-Type %q; want %s body %q, Content-Type kept %v",
					last.Method, last.Body, last.Header.Get("Content-Type"), tt.wantMethod, tt.wantBody, tt.wantCT)
			}
			out := rec.list()
			if want := tt.wantRequests + btoi(tt.wantCode != ""); len(out) != want {
				t.Errorf("%d records, want %d: %+v", len(out), want, out)
			}
		})
	}
}

func TestRedirectWithoutLocationIsReturned(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusFound) })
	c, _ := newClient(t, Config{AllowNetworks: loopback})
	o := up.origin("127.0.0.1")
	wantOK(t, c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, nil, get(o+"/bare"), nil), http.StatusFound)
}

func TestRedirectAcrossOrigins(t *testing.T) {
	type flags struct{ a, b []bool } // per request to A and to B: did it carry credentials?
	tests := []struct {
		name       string
		manifest   string // which of "a", "b", "ab" the manifest lists
		connection string // same for the connection
		cred       *Credential
		path       func(a, b *upstream) string // the first URL's path on A
		wantCode   string
		wantInMsg  string
		want       flags
	}{
		{
			name: "redirect from allowed host to forbidden host is refused with host_not_allowed", manifest: "a", connection: "a",
			path:     func(a, b *upstream) string { return redirectURL(302, 1, b.url("b.test", "/echo")) },
			wantCode: "host_not_allowed", wantInMsg: "manifest", want: flags{a: []bool{true}},
		},
		{
			name: "redirect to a host the connection lacks is refused with host_not_allowed", manifest: "ab", connection: "a",
			path:     func(a, b *upstream) string { return redirectURL(307, 1, b.url("b.test", "/echo")) },
			wantCode: "host_not_allowed", wantInMsg: "connection", want: flags{a: []bool{true}},
		},
		{
			name: "redirect to a name resolving to 169.254.169.254 is refused with private_address", manifest: "ab", connection: "ab",
			path:     func(a, b *upstream) string { return redirectURL(302, 1, b.url("metadata.test", "/latest/meta-data")) },
			wantCode: "private_address", wantInMsg: "169.254.169.254", want: flags{a: []bool{true}},
		},
		{
			name: "credentials are not sent after a cross-origin redirect", manifest: "ab", connection: "ab",
			path: func(a, b *upstream) string { return redirectURL(302, 1, b.url("b.test", "/echo")) },
			want: flags{a: []bool{true}, b: []bool{false}},
		},
		{
			name: "credentials are not sent after a redirect back to the original origin", manifest: "ab", connection: "ab",
			path: func(a, b *upstream) string {
				return redirectURL(302, 1, b.url("b.test", redirectURL(302, 1, a.url("a.test", "/echo"))))
			},
			want: flags{a: []bool{true, false}, b: []bool{false}},
		},
		{
			name: "same-origin redirect keeps credentials", manifest: "ab", connection: "ab",
			path: func(a, b *upstream) string { return redirectURL(302, 2, "") },
			want: flags{a: []bool{true, true, true}},
		},
		{
			name: "query api_key is not added after a cross-origin redirect", manifest: "ab", connection: "ab",
			cred: &Credential{Type: abi.AuthAPIKey, APIKey: secret, APIKeyIn: &abi.APIKeyAuth{In: "query", Name: "api_key"}},
			path: func(a, b *upstream) string { return redirectURL(302, 1, b.url("b.test", "/echo")) },
			want: flags{a: []bool{true}, b: []bool{false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newUpstream(t, nil), newUpstream(t, nil)
			res := newResolver().set("a.test", "127.0.0.1").set("b.test", "127.0.0.1").set("metadata.test", "169.254.169.254")
			origins := func(which string) []string {
				var out []string
				if strings.Contains(which, "a") {
					out = append(out, a.origin("a.test"))
				}
				if strings.Contains(which, "b") {
					out = append(out, b.origin("b.test"), b.origin("metadata.test"))
				}
				return out
			}
			cred := tt.cred
			if cred == nil {
				cred = &Credential{Type: abi.AuthOAuth2, AccessToken: secret}
			}
			c, dials := newClient(t, Config{AllowNetworks: loopback, Resolver: res})
			g := &Grant{ManifestOrigins: origins(tt.manifest), ConnectionOrigins: origins(tt.connection), Credential: cred}
			req := &abi.HTTPRequest{Method: "GET", URL: a.url("a.test", tt.path(a, b)), Headers: map[string]string{
				"Cookie": "session=guest", "X-Custom": "kept",
			}}
			var rec records
			got := c.Do(context.Background(), g, NewBudget(10), req, rec.add)
			if tt.wantCode != "" {
				wantErr(t, got, tt.wantCode, tt.wantInMsg)
			} else {
				wantOK(t, got, http.StatusOK)
			}
			check := func(server string, u *upstream, want []bool) {
				reqs := u.requests()
				if len(reqs) != len(want) {
					t.Fatalf("%s got %d requests, want %d", server, len(reqs), len(want))
				}
				for i, r := range reqs {
					hasCred := r.Header.Get("Authorization") != "" || strings.Contains(r.Query, "api_key")
					if hasCred != want[i] {
						t.Errorf("%s request %d carried credentials: %v, want %v (%v %q)", server, i, hasCred, want[i], r.Header, r.Query)
					}
					if hasCookie := r.Header.Get("Cookie") != ""; hasCookie != want[i] {
						t.Errorf("%s request %d carried the guest's Cookie: %v, want %v", server, i, hasCookie, want[i])
					}
					if r.Header.Get("X-Custom") != "kept" {
						t.Errorf("%s request %d lost X-Custom", server, i)
					}
				}
			}
			check("A", a, tt.want.a)
			check("B", b, tt.want.b)
			for _, d := range dials.list() {
				if !slices.Contains([]string{fmt.Sprintf("127.0.0.1:%d", a.port()), fmt.Sprintf("127.0.0.1:%d", b.port())}, d) {
					t.Errorf("dialed %s", d)
				}
			}
			for _, o := range rec.list() {
				if strings.Contains(o.Err, "s3cr3t") {
					t.Errorf("record %+v holds the secret", o)
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
