package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk/pdktest"
	"github.com/plugboard/plugboard/plugins/msgraph/graphfake"
)

func ptr(s string) *string { return &s }

// downloadHostRequests are the requests the fake's download host received.
func downloadHostRequests(f *graphfake.Fake, method, prefix string) []graphfake.Request {
	var out []graphfake.Request
	for _, r := range f.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// pdktest's plugboard_http follows redirects as the host does and drops the credential when the
// origin changes, so the download's redirect is exercised here as well as end to end.
func TestDownloadFile(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	f.AddFile(f.UserDriveID(), "/Notes/hello.txt", []byte("héllo, world"))
	bin := []byte{0x89, 'P', 'N', 'G', 0, 0xff, 0xfe}
	img := f.AddFile(f.UserDriveID(), "/Notes/logo.png", bin)

	var txt DownloadOutput
	if e := h.InvokeInto("download_file", DownloadInput{ItemRef: ItemRef{Path: "/Notes/hello.txt"}, As: "text"}, &txt); e != nil {
		t.Fatal(e)
	}
	if txt.Text != "héllo, world" || txt.ContentBase64 != "" || txt.Name != "hello.txt" || txt.MimeType != "text/plain" || txt.Size != 13 {
		t.Errorf("text = %+v", txt)
	}
	var b64 DownloadOutput
	if e := h.InvokeInto("download_file", DownloadInput{ItemRef: ItemRef{ItemID: img.ID}}, &b64); e != nil {
		t.Fatal(e)
	}
	if got, _ := base64.StdEncoding.DecodeString(b64.ContentBase64); !bytes.Equal(got, bin) || b64.Text != "" || b64.MimeType != "image/png" {
		t.Errorf("base64 = %+v", b64)
	}
	// Graph answered 302; the bytes came from the download host, without the credential.
	if n := f.CountRequests("GET", "/content"); n != 2 {
		t.Errorf("%d GET .../content", n)
	}
	dl := downloadHostRequests(f, "GET", "/download/")
	if len(dl) != 2 || dl[0].Status != 200 || dl[0].Authorization != "" {
		t.Errorf("download host requests = %+v", dl)
	}
	if leaks := f.CredentialLeaks(); len(leaks) != 0 {
		t.Errorf("credential leaks: %+v", leaks)
	}

	_, e := h.Invoke("download_file", DownloadInput{ItemRef: ItemRef{ItemID: img.ID}, As: "text"})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "not UTF-8", "base64")

	before := f.CountRequests("GET", "/content")
	_, e = h.Invoke("download_file", DownloadInput{ItemRef: ItemRef{Path: "/Notes/hello.txt"}, MaxBytes: 5})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "13 bytes", "max_bytes 5")
	if d := pdktest.Details(t, e); d["size"] != 13.0 || d["max_bytes"] != 5.0 {
		t.Errorf("details = %v", d)
	}
	if f.CountRequests("GET", "/content") != before {
		t.Error("a file over max_bytes was downloaded; its size should have been checked first")
	}
	big := f.AddFile(f.UserDriveID(), "/big.bin", bytes.Repeat([]byte{1}, 4<<20+1))
	_, e = h.Invoke("download_file", DownloadInput{ItemRef: ItemRef{ItemID: big.ID}})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "4194305 bytes", "max_bytes 4194304")

	_, e = h.Invoke("download_file", DownloadInput{ItemRef: ItemRef{Path: "/Notes"}})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "folder")
	_, e = h.Invoke("download_file", DownloadInput{ItemRef: ItemRef{Path: "/Notes/none.txt"}})
	pdktest.WantError(t, e, abi.CodeNotFound)
	_, e = h.Invoke("download_file", map[string]any{"path": "/Notes/hello.txt", "max_bytes": 9 << 20})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "max_bytes")
	_, e = h.Invoke("download_file", map[string]any{"path": "/Notes/hello.txt", "as": "hex"})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "as")
}

// Without download_origin the fake's download host is not one of the connector's hosts: the
// host refuses the redirect's hop instead of fetching it.
func TestDownloadRedirectOutsideTheHostsIsRefused(t *testing.T) {
	f := graphfake.New(t)
	h := pdktest.New(t, pdktest.Options{
		Connection: &abi.Connection{ID: "m365", Params: map[string]any{"base_url": f.URL}},
		Credential: pdktest.Credential{AccessToken: graphfake.Token},
	})
	f.AddFile(f.UserDriveID(), "/a.txt", []byte("a"))
	_, e := h.Invoke("download_file", DownloadInput{ItemRef: ItemRef{Path: "/a.txt"}})
	pdktest.WantError(t, e, abi.CodeInternal, "not one of the connector's hosts")
	if d := pdktest.Details(t, e); d["host_code"] != abi.CodeHostNotAllowed {
		t.Errorf("details = %v", d)
	}
	if len(downloadHostRequests(f, "GET", "/download/")) != 0 {
		t.Error("the download host was reached")
	}
}

func TestUploadSmallFile(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	var it Item
	if e := h.InvokeInto("upload_file", UploadInput{Path: "/Reports/2026/q3.csv", Text: ptr("a,b\n1,2\n")}, &it); e != nil {
		t.Fatal(e)
	}
	stored, ok := f.Item(f.UserDriveID(), "/Reports/2026/q3.csv")
	if !ok || string(stored.Content) != "a,b\n1,2\n" || it.ID != stored.ID || it.Size != 8 || it.Parent.Path != "/Reports/2026" {
		t.Fatalf("uploaded %+v, stored %+v", it, stored)
	}
	if n := f.CountRequests("PUT", "/root:/Reports/2026/q3.csv:/content"); n != 1 {
		t.Errorf("%d simple uploads", n)
	}
	var again Item
	h.InvokeInto("upload_file", UploadInput{Path: "/Reports/2026/q3.csv", ContentBase64: ptr(base64.StdEncoding.EncodeToString([]byte("v2")))}, &again)
	if again.ID != it.ID || again.ETag == it.ETag || again.Size != 2 {
		t.Errorf("replaced = %+v", again)
	}
	_, e := h.Invoke("upload_file", UploadInput{Path: "/Reports/2026/q3.csv", Text: ptr("x"), Conflict: "fail"})
	pdktest.WantError(t, e, abi.CodeConflict, "nameAlreadyExists")
	var renamed Item
	h.InvokeInto("upload_file", UploadInput{Path: "/Reports/2026/q3.csv", Text: ptr("x"), Conflict: "rename"}, &renamed)
	if renamed.Name != "q3 1.csv" {
		t.Errorf("renamed = %+v", renamed)
	}
	folder, _ := f.Item(f.UserDriveID(), "/Reports")
	var byParent Item
	if e := h.InvokeInto("upload_file", UploadInput{ParentID: folder.ID, Name: "empty.txt", Text: ptr("")}, &byParent); e != nil {
		t.Fatal(e)
	}
	if st, ok := f.Item(f.UserDriveID(), "/Reports/empty.txt"); !ok || st.Size != 0 || byParent.ID != st.ID {
		t.Errorf("by parent id: %+v %+v", byParent, st)
	}

	site := f.AddSite("Team")
	if e := h.InvokeInto("upload_file", UploadInput{DriveRef: DriveRef{SiteID: site.ID}, Path: "/Shared/n.txt", Text: ptr("n")}, &it); e != nil {
		t.Fatal(e)
	}
	if _, ok := f.Item(site.DriveID, "/Shared/n.txt"); !ok {
		t.Error("not in the site's library")
	}

	for _, tt := range []struct {
		name  string
		in    UploadInput
		parts []string
	}{
		{"no content", UploadInput{Path: "/a.txt"}, []string{"content_base64 or text"}},
		{"both contents", UploadInput{Path: "/a.txt", Text: ptr("a"), ContentBase64: ptr("YQ==")}, []string{"not both"}},
		{"bad base64", UploadInput{Path: "/a.txt", ContentBase64: ptr("not base64!")}, []string{"base64"}},
		{"no target", UploadInput{Text: ptr("a")}, []string{"path"}},
		{"the root as a path", UploadInput{Path: "/", Text: ptr("a")}, []string{"root"}},
		{"path and parent_id", UploadInput{Path: "/a.txt", ParentID: "x", Name: "a.txt", Text: ptr("a")}, []string{"not both"}},
		{"a bad name", UploadInput{Path: "/a?.txt", Text: ptr("a")}, []string{"do not allow"}},
		{"a bad conflict", UploadInput{Path: "/a.txt", Text: ptr("a"), Conflict: "keep"}, []string{"conflict"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, e := h.Invoke("upload_file", tt.in)
			pdktest.WantError(t, e, abi.CodeInvalidInput, tt.parts...)
		})
	}
	_, e = h.Invoke("upload_file", UploadInput{ParentID: "01MISSING", Name: "a.txt", Text: ptr("a")})
	pdktest.WantError(t, e, abi.CodeNotFound)
}

func TestUploadLargeFileInChunks(t *testing.T) {
	f := graphfake.New(t)
	h := harness(t, f)
	content := make([]byte, 7<<20+12345)
	for i := range content {
		content[i] = byte(i * 7)
	}
	var it Item
	if e := h.InvokeInto("upload_file", UploadInput{Path: "/Video/clip.bin", ContentBase64: ptr(base64.StdEncoding.EncodeToString(content))}, &it); e != nil {
		t.Fatal(e)
	}
	stored, ok := f.Item(f.UserDriveID(), "/Video/clip.bin")
	if !ok || !bytes.Equal(stored.Content, content) || it.ID != stored.ID || it.Size != int64(len(content)) {
		t.Fatalf("uploaded %+v (%d bytes stored)", it, len(stored.Content))
	}
	if n := f.CountRequests("POST", "/createUploadSession"); n != 1 {
		t.Errorf("%d upload sessions", n)
	}
	chunks := downloadHostRequests(f, "PUT", "/upload/")
	if len(chunks) != 3 { // 3.2 MiB + 3.2 MiB + the rest
		t.Errorf("%d chunks: %+v", len(chunks), chunks)
	}
	for i, c := range chunks {
		want := 202
		if i == len(chunks)-1 {
			want = 201
		}
		if c.Authorization != "" || c.Status != want {
			t.Errorf("chunk %d = %+v", i, c)
		}
	}
	for _, r := range h.Requests() {
		if strings.HasPrefix(r.URL, f.DownloadURL) && (r.Auth == nil || *r.Auth) {
			t.Errorf("a request to the upload URL asked for the credential: %+v", r)
		}
	}
	if len(f.CredentialLeaks()) != 0 || f.UploadSessions() != 0 {
		t.Errorf("leaks %v, open sessions %d", f.CredentialLeaks(), f.UploadSessions())
	}

	// Over the cap: refused before any request.
	before := len(h.Requests())
	huge := base64.StdEncoding.EncodeToString(make([]byte, 16<<20+1))
	_, e := h.Invoke("upload_file", UploadInput{Path: "/huge.bin", ContentBase64: &huge})
	pdktest.WantError(t, e, abi.CodeInvalidInput, "at most 16777216 bytes")
	if len(h.Requests()) != before {
		t.Error("an oversized upload sent requests")
	}
}

// failingChunks answers the second chunk PUT to the upload host with a 500 itself, as a
// failing upload host would.
type failingChunks struct {
	host string
	puts atomic.Int32
}

func (fc *failingChunks) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "PUT" && r.URL.Host == fc.host && fc.puts.Add(1) == 2 {
		return &http.Response{StatusCode: 500, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"error":{"code":"generalException","message":"An unspecified error has occurred."}}`)), Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestUploadSessionIsCancelledOnFailure(t *testing.T) {
	f := graphfake.New(t)
	fc := &failingChunks{host: strings.TrimPrefix(f.DownloadURL, "http://")}
	h := harness(t, f, func(o *pdktest.Options) { o.Transport = fc })
	data := base64.StdEncoding.EncodeToString(make([]byte, 5<<20))
	_, e := h.Invoke("upload_file", UploadInput{Path: "/x.bin", ContentBase64: &data})
	pdktest.WantError(t, e, abi.CodeUpstreamError, "generalException")
	if n := len(downloadHostRequests(f, "DELETE", "/upload/")); n != 1 || f.UploadSessions() != 0 {
		t.Errorf("%d DELETEs of the session, %d sessions open", n, f.UploadSessions())
	}
	if _, ok := f.Item(f.UserDriveID(), "/x.bin"); ok {
		t.Error("a failed upload left a file")
	}
}

// replayedChunk sends the second chunk PUT twice and answers the second answer (416), as when
// the host retries a chunk whose 202 was lost.
type replayedChunk struct {
	host string
	puts atomic.Int32
}

func (rc *replayedChunk) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "PUT" && r.URL.Host == rc.host && rc.puts.Add(1) == 2 {
		body, _ := io.ReadAll(r.Body)
		first := r.Clone(r.Context())
		first.Body = io.NopCloser(bytes.NewReader(body))
		resp, err := http.DefaultTransport.RoundTrip(first)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		again := r.Clone(r.Context())
		again.Body = io.NopCloser(bytes.NewReader(body))
		return http.DefaultTransport.RoundTrip(again)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestUploadSessionResumesAfterAReplayedChunk(t *testing.T) {
	f := graphfake.New(t)
	rc := &replayedChunk{host: strings.TrimPrefix(f.DownloadURL, "http://")}
	h := harness(t, f, func(o *pdktest.Options) { o.Transport = rc })
	content := bytes.Repeat([]byte("abcdefgh"), (9<<20)/8)
	var it Item
	if e := h.InvokeInto("upload_file", UploadInput{Path: "/r.bin", ContentBase64: ptr(base64.StdEncoding.EncodeToString(content))}, &it); e != nil {
		t.Fatal(e)
	}
	stored, _ := f.Item(f.UserDriveID(), "/r.bin")
	if !bytes.Equal(stored.Content, content) || it.ID != stored.ID {
		t.Fatalf("stored %d bytes", len(stored.Content))
	}
	var statuses []int
	for _, r := range downloadHostRequests(f, "PUT", "/upload/") {
		statuses = append(statuses, r.Status)
	}
	if got := fmt.Sprint(statuses); got != "[202 202 416 201]" {
		t.Errorf("chunk answers %s", got)
	}
	if n := len(downloadHostRequests(f, "GET", "/upload/")); n != 1 {
		t.Errorf("%d status requests", n)
	}
}
