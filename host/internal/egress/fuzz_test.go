package egress

import (
	"context"
	"net/http"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

// FuzzRequestValidation feeds arbitrary request documents to validation and to Do with a grant
// that allows nothing: neither may panic, Do always answers an error document, and whatever
// validation accepts is an absolute http(s) URL without user info, a valid method, valid headers
// and a body within the cap.
func FuzzRequestValidation(f *testing.F) {
	f.Add("GET", "https://api.example.com/x?y=1", "Accept", "application/json", "", "", uint8(0), int64(0))
	f.Add("POST", "http://[::1]:8080/", "content-type", "text/plain", "hello", "", uint8(1), int64(10_000))
	f.Add("PUT", "https://user:pass@example.com/", "X-A", "a\r\nb", "", "aGVsbG8=", uint8(2), int64(-1))
	f.Add("get", "ftp://example.com", "Host", "evil", "x", "eA==", uint8(3), int64(1<<62))
	f.Add("", "//example.com/a", ":authority", "x", "", "", uint8(0), int64(0))
	f.Add("CONNECT", "https:opaque", "Transfer-Encoding", "chunked", "", "%%%", uint8(2), int64(5))
	f.Add("PROPFIND", "http://exa%41mple.com:99999/", "X", "\x7f", "", "", uint8(0), int64(0))
	f.Add("GET", "http://127.1/", "Cookie", "a=b", "", "", uint8(0), int64(0))
	f.Add("GET", "HTTPS://EXAMPLE.com:443/#frag", "authorization", "Bearer x", "", "", uint8(0), int64(0))

	const maxBody = 64
	c := New(Config{MaxRequestBytes: maxBody, Resolver: newResolver()})
	f.Fuzz(func(t *testing.T, method, rawURL, hname, hvalue, body, b64 string, mode uint8, timeout int64) {
		req := &abi.HTTPRequest{Method: method, URL: rawURL, Headers: map[string]string{hname: hvalue}, TimeoutMS: timeout}
		if mode&1 != 0 {
			req.Body = &body
		}
		if mode&2 != 0 {
			req.BodyBase64 = &b64
		}

		p, e := c.prepare(req)
		if (p == nil) == (e == nil) {
			t.Fatalf("prepare returned %v and %v", p, e)
		}
		if e != nil {
			if e.Code != abi.CodeInvalidRequest && e.Code != abi.CodeTooLarge || e.Message == "" {
				t.Fatalf("refusal %+v", e)
			}
		} else {
			if p.url.Scheme != "http" && p.url.Scheme != "https" || p.url.User != nil || p.url.Host == "" {
				t.Fatalf("accepted URL %q", p.url)
			}
			if o, err := abi.OriginOfURL(p.url.String()); err != nil || o != p.origin {
				t.Fatalf("origin %q, recomputed %q (%v)", p.origin, o, err)
			}
			if !validMethod(p.method) || len(p.body) > maxBody || p.timeout < 0 {
				t.Fatalf("accepted %+v", p)
			}
			for name, vs := range p.header {
				if name != http.CanonicalHeaderKey(name) || droppedHeaders[name] || len(vs) != 1 || !validHeaderValue(vs[0]) {
					t.Fatalf("accepted header %q: %q", name, vs)
				}
			}
		}

		var rec records
		r := c.Do(context.Background(), &Grant{}, NewBudget(1), req, rec.add)
		if r == nil || r.Error == nil || r.Status != 0 {
			t.Fatalf("Do answered %+v", r)
		}
		if len(rec.list()) != 1 {
			t.Fatalf("records %+v", rec.list())
		}
	})
}
