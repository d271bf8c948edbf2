package main

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
	"github.com/plugboard/plugboard/plugins/internal/msgraph"
)

// Size bounds of the file actions.
const (
	// defaultDownloadBytes is download_file's max_bytes when it is not given.
	defaultDownloadBytes = 4 << 20
	// maxDownloadBytes is the largest max_bytes: the host's response cap is 10 MiB.
	maxDownloadBytes = 8 << 20
	// maxBase64Download is the largest file download_file returns as base64: base64 grows it by
	// 4/3, and the host caps a call's output at 10 MiB.
	maxBase64Download = 7 << 20
	// simpleUploadBytes is the largest file sent in one PUT: the 4 MB of OneDrive's simple
	// upload reference (Graph's v1.0 page now says 250 MB; 4 MiB works on every service).
	simpleUploadBytes = 4 << 20
	// maxUploadBytes bounds upload_file: the decoded file, its base64 input and one chunk's
	// request document must fit the plugin's memory (128 MiB by default) in one call, whose
	// deadline is at most 60 s. The server's API body cap (server.Options.MaxBodyBytes, 4 MiB
	// by default, with no serve flag yet) bounds it further: about 3 MiB of file as base64.
	maxUploadBytes = 16 << 20
	// chunkBytes is an upload session's chunk: ten times the 320 KiB unit Graph requires.
	chunkBytes = 10 * 320 << 10
)

// DownloadInput is the input of download_file.
type DownloadInput struct {
	ItemRef
	As       string `json:"as,omitempty" jsonschema:"base64, or text for a UTF-8 file" enum:"base64,text" default:"base64"`
	MaxBytes int64  `json:"max_bytes,omitempty" jsonschema:"Refuse a larger file (bytes)" minimum:"1" maximum:"8388608" default:"4194304"`
}

// DownloadOutput is the output of download_file.
type DownloadOutput struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	MimeType      string `json:"mime_type,omitempty"`
	Size          int64  `json:"size"`
	ContentBase64 string `json:"content_base64,omitempty" jsonschema:"The content, with as=base64"`
	Text          string `json:"text,omitempty" jsonschema:"The content, with as=text"`
}

func downloadFile(ctx *pdk.Context, in DownloadInput) (DownloadOutput, error) {
	as := in.As
	if as == "" {
		as = "base64"
	}
	if as != "base64" && as != "text" {
		return DownloadOutput{}, pdk.Errorf(abi.CodeInvalidInput, "as %q: use base64 or text", in.As)
	}
	limit := in.MaxBytes
	if limit <= 0 {
		limit = defaultDownloadBytes
	}
	if limit > maxDownloadBytes {
		return DownloadOutput{}, pdk.Errorf(abi.CodeInvalidInput, "max_bytes %d is over the %d bytes (8 MiB) download_file returns", limit, maxDownloadBytes)
	}
	if as == "base64" {
		limit = min(limit, maxBase64Download)
	}
	c := newClient(ctx)
	w, err := c.getWireItem(in.ItemRef)
	if err != nil {
		return DownloadOutput{}, err
	}
	if w.Folder != nil || w.File == nil {
		return DownloadOutput{}, pdk.Errorf(abi.CodeInvalidInput, "%q is a folder, not a file; list it with list_items", w.Name)
	}
	if w.Size > limit {
		return DownloadOutput{}, tooBig(w, limit, as)
	}
	u, err := c.itemURL(ItemRef{DriveRef: in.DriveRef, ItemID: w.ID})
	if err != nil {
		return DownloadOutput{}, err
	}
	// Graph answers 302 to a pre-authenticated URL on a file host; the Plugboard host follows
	// it and drops the credential, since the origin changes.
	resp, err := c.HTTP.Do(pdk.Request{URL: u + "/content"})
	if err != nil {
		return DownloadOutput{}, err
	}
	if !resp.OK() {
		return DownloadOutput{}, msgraph.Error(resp)
	}
	if int64(len(resp.Body)) > limit {
		w.Size = int64(len(resp.Body))
		return DownloadOutput{}, tooBig(w, limit, as)
	}
	out := DownloadOutput{ID: w.ID, Name: w.Name, MimeType: w.File.MimeType, Size: int64(len(resp.Body))}
	if as == "text" {
		if !utf8.Valid(resp.Body) {
			return DownloadOutput{}, pdk.Errorf(abi.CodeInvalidInput, "%q is not UTF-8 text; download it with as=base64", w.Name)
		}
		out.Text = string(resp.Body)
	} else {
		out.ContentBase64 = base64.StdEncoding.EncodeToString(resp.Body)
	}
	return out, nil
}

func tooBig(w wireItem, limit int64, as string) error {
	hint := "raise max_bytes (up to 8388608 with as=text, 7340032 with as=base64) or open web_url instead"
	if limit >= maxDownloadBytes || as == "base64" && limit >= maxBase64Download {
		hint = "download_file returns at most 8 MiB (7 MiB as base64); open the file's web_url instead"
	}
	e := pdk.Errorf(abi.CodeInvalidInput, "%q is %d bytes, over max_bytes %d; %s", w.Name, w.Size, limit, hint)
	return pdk.WithDetails(e, map[string]any{"size": w.Size, "max_bytes": limit, "web_url": w.WebURL})
}

// UploadInput is the input of upload_file.
type UploadInput struct {
	DriveRef
	Path          string  `json:"path,omitempty" jsonschema:"The file's path from the drive's root: folder path and name, such as /Reports/2026/q3.csv. Or give parent_id and name." maxLength:"2048"`
	ParentID      string  `json:"parent_id,omitempty" jsonschema:"Id of the folder to write into, with name" maxLength:"512"`
	Name          string  `json:"name,omitempty" jsonschema:"The file's name, with parent_id" maxLength:"255"`
	ContentBase64 *string `json:"content_base64,omitempty" jsonschema:"The content, base64. Give content_base64 or text."`
	Text          *string `json:"text,omitempty" jsonschema:"The content as text (sent as UTF-8)"`
	Conflict      string  `json:"conflict,omitempty" jsonschema:"When the name exists: replace (a new version of that file), rename (adds a number) or fail" enum:"replace,rename,fail" default:"replace"`
}

func uploadFile(ctx *pdk.Context, in UploadInput) (Item, error) {
	conflict, err := conflictBehavior(in.Conflict, "replace")
	if err != nil {
		return Item{}, err
	}
	var data []byte
	switch {
	case in.ContentBase64 != nil && in.Text != nil:
		return Item{}, pdk.Errorf(abi.CodeInvalidInput, "give content_base64 or text, not both")
	case in.Text != nil:
		data = []byte(*in.Text)
	case in.ContentBase64 != nil:
		if int64(len(*in.ContentBase64)) > (maxUploadBytes+2)/3*4+4 {
			return Item{}, uploadTooBig(int64(len(*in.ContentBase64)) / 4 * 3)
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*in.ContentBase64))
		if err != nil {
			return Item{}, pdk.Errorf(abi.CodeInvalidInput, "content_base64 is not standard base64 (RFC 4648 with padding): %v", err)
		}
		data = b
	default:
		return Item{}, pdk.Errorf(abi.CodeInvalidInput, "give the content as content_base64 or text")
	}
	if int64(len(data)) > maxUploadBytes {
		return Item{}, uploadTooBig(int64(len(data)))
	}
	c := newClient(ctx)
	target, name, err := c.uploadTarget(in)
	if err != nil {
		return Item{}, err
	}
	if len(data) <= simpleUploadBytes {
		req := pdk.Request{Method: "PUT", URL: target + "/content?@microsoft.graph.conflictBehavior=" + conflict, Body: data,
			Headers: map[string]string{"Content-Type": "application/octet-stream"}}
		if data == nil {
			req.Body = []byte{}
		}
		return c.itemAnswer(c.HTTP.Do(req))
	}
	return c.uploadSession(target, name, conflict, data)
}

func uploadTooBig(n int64) error {
	return pdk.Errorf(abi.CodeInvalidInput, "the file is %d bytes; upload_file takes at most %d bytes (16 MiB) in one call (the plugin's memory and the call's 60 s); upload larger files from OneDrive or SharePoint directly", n, int64(maxUploadBytes))
}

// uploadTarget is the address of the file to write (.../root:/a/b.txt: or
// .../items/{parent}:/b.txt:) and its name.
func (c *client) uploadTarget(in UploadInput) (string, string, error) {
	d, err := c.driveURL(in.DriveRef)
	if err != nil {
		return "", "", err
	}
	switch {
	case in.Path != "" && (in.ParentID != "" || in.Name != ""):
		return "", "", pdk.Errorf(abi.CodeInvalidInput, "give path (folder path and name), or parent_id and name, not both")
	case in.Path != "":
		segs, err := splitPath("path", in.Path)
		if err != nil {
			return "", "", err
		}
		if len(segs) == 0 {
			return "", "", pdk.Errorf(abi.CodeInvalidInput, "path %q names the root; end it with the file's name, such as /Reports/q3.csv", in.Path)
		}
		for _, s := range segs {
			if err := checkName("path", s); err != nil {
				return "", "", err
			}
		}
		return d + rootPath(segs), segs[len(segs)-1], nil
	case in.ParentID != "":
		if err := checkName("name", in.Name); err != nil {
			return "", "", err
		}
		return d + "/items/" + escapeSegment(in.ParentID) + ":/" + escapeSegment(in.Name) + ":", in.Name, nil
	case in.Name != "":
		if err := checkName("name", in.Name); err != nil {
			return "", "", err
		}
		return d + rootPath([]string{in.Name}), in.Name, nil
	}
	return "", "", pdk.Errorf(abi.CodeInvalidInput, "give path (such as /Reports/q3.csv), or parent_id and name")
}

// itemAnswer decodes a driveItem answer, or maps Graph's error.
func (c *client) itemAnswer(resp *pdk.Response, err error) (Item, error) {
	if err != nil {
		return Item{}, err
	}
	if !resp.OK() {
		return Item{}, conflictHint(resp, msgraph.Error(resp))
	}
	var w wireItem
	if err := resp.JSON(&w); err != nil {
		return Item{}, err
	}
	return w.item(), nil
}

// uploadSession writes data through an upload session: create it with the conflict
// behaviour, PUT the chunks to its uploadUrl without the credential (the URL is
// pre-authenticated; Graph answers 401 to a bearer token there), and cancel it on failure.
func (c *client) uploadSession(target, name, conflict string, data []byte) (Item, error) {
	var s struct {
		UploadURL string `json:"uploadUrl"`
	}
	body := map[string]any{"item": map[string]any{"@microsoft.graph.conflictBehavior": conflict}}
	if resp, err := c.HTTP.PostJSON(target+"/createUploadSession", body, &s); err != nil {
		return Item{}, conflictHint(resp, err)
	}
	if s.UploadURL == "" {
		return Item{}, pdk.Errorf(abi.CodeUpstreamError, "Graph created an upload session for %q without an uploadUrl", name)
	}
	item, err := c.sendChunks(s.UploadURL, data)
	if err != nil {
		// Free the session's storage; its own failure changes nothing for the caller.
		_, _ = c.HTTP.Do(pdk.Request{Method: "DELETE", URL: s.UploadURL, NoAuth: true})
		return Item{}, err
	}
	return item, nil
}

func (c *client) sendChunks(uploadURL string, data []byte) (Item, error) {
	total := int64(len(data))
	var off int64
	resumed := 0
	for {
		end := min(off+chunkBytes, total)
		resp, err := c.HTTP.Do(pdk.Request{Method: "PUT", URL: uploadURL, Body: data[off:end], NoAuth: true,
			Headers: map[string]string{"Content-Range": fmt.Sprintf("bytes %d-%d/%d", off, end-1, total), "Content-Type": "application/octet-stream"}})
		if err != nil {
			return Item{}, err
		}
		switch {
		case resp.Status == 200 || resp.Status == 201:
			return c.itemAnswer(resp, nil)
		case resp.Status == 202:
			var st struct {
				NextExpectedRanges []string `json:"nextExpectedRanges"`
			}
			if err := resp.JSON(&st); err != nil {
				return Item{}, err
			}
			next, ok := nextRangeStart(st.NextExpectedRanges)
			if !ok || next <= off || next >= total {
				return Item{}, pdk.Errorf(abi.CodeUpstreamError, "the upload session answered nextExpectedRanges %v after bytes %d-%d of %d", st.NextExpectedRanges, off, end-1, total)
			}
			off = next
		case resp.Status == 416 && resumed < 3:
			// The range was received already: the host retried a chunk whose answer was lost.
			// Ask the session where it stands and go on from there.
			resumed++
			st, err := c.HTTP.Do(pdk.Request{URL: uploadURL, NoAuth: true})
			if err != nil {
				return Item{}, err
			}
			if !st.OK() {
				return Item{}, msgraph.Error(st)
			}
			var status struct {
				NextExpectedRanges []string `json:"nextExpectedRanges"`
			}
			if err := st.JSON(&status); err != nil {
				return Item{}, err
			}
			next, ok := nextRangeStart(status.NextExpectedRanges)
			if !ok || next >= total {
				return Item{}, pdk.Errorf(abi.CodeUpstreamError, "the upload session refused bytes %d-%d of %d (416) and expects %v", off, end-1, total, status.NextExpectedRanges)
			}
			off = next
		default:
			return Item{}, conflictHint(resp, msgraph.Error(resp))
		}
	}
}

// nextRangeStart is the start of the first of Graph's missing ranges ("26-", "12345-55232").
func nextRangeStart(ranges []string) (int64, bool) {
	if len(ranges) == 0 {
		return 0, false
	}
	start, _, _ := strings.Cut(ranges[0], "-")
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}
