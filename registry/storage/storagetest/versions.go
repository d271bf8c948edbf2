package storagetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// blobCases are the promises of [storage.Blobs]: content addressing by [storage.Digest], and
// copies the caller owns.
var blobCases = []testCase{
	{"put then get returns the bytes under their digest", func(t *testing.T, st storage.Store) {
		data := []byte("\x00asm plugin bytes")
		d := must[string](t, "PutBlob")(st.PutBlob(ctx(t), data))
		if d != storage.Digest(data) {
			t.Fatalf("PutBlob digest = %q, want %q", d, storage.Digest(data))
		}
		got := must[[]byte](t, "Blob")(st.Blob(ctx(t), d))
		if !bytes.Equal(got, data) {
			t.Fatalf("Blob = %q, want %q", got, data)
		}
		got[0] = 'X' // the caller owns the copy
		if again := must[[]byte](t, "Blob")(st.Blob(ctx(t), d)); !bytes.Equal(again, data) {
			t.Fatalf("changing a returned blob changed the stored one: %q", again)
		}
	}},
	{"the same bytes twice give the same digest", func(t *testing.T, st storage.Store) {
		data := []byte("same bytes")
		d1 := must[string](t, "first PutBlob")(st.PutBlob(ctx(t), data))
		d2 := must[string](t, "second PutBlob")(st.PutBlob(ctx(t), bytes.Clone(data)))
		if d1 != d2 {
			t.Fatalf("digests %q and %q for the same bytes", d1, d2)
		}
		if got := must[[]byte](t, "Blob")(st.Blob(ctx(t), d1)); !bytes.Equal(got, data) {
			t.Fatalf("Blob = %q", got)
		}
	}},
	{"an unknown digest is ErrNotFound", func(t *testing.T, st storage.Store) {
		_, err := st.Blob(ctx(t), storage.Digest([]byte("never stored")))
		wantErr(t, err, storage.ErrNotFound, "Blob of an unknown digest")
	}},
	{"an empty blob is stored and read back empty, not nil", func(t *testing.T, st storage.Store) {
		d := must[string](t, "PutBlob of nothing")(st.PutBlob(ctx(t), nil))
		if d != storage.Digest(nil) {
			t.Fatalf("PutBlob(nil) digest = %q, want %q", d, storage.Digest(nil))
		}
		if got, err := st.Blob(ctx(t), d); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("Blob of the empty blob = %v (nil %v), %v; want an empty, non-nil slice", got, got == nil, err)
		}
	}},
	{"a malformed digest is ErrInvalid", func(t *testing.T, st storage.Store) {
		noAlgorithm := storage.Digest([]byte("x"))[len("sha256:"):]
		for _, d := range []string{"", "sha256:", "md5:00", "sha256:" + string(bytes.Repeat([]byte("A"), 64)), "sha256:abc", noAlgorithm} {
			_, err := st.Blob(ctx(t), d)
			wantErr(t, err, storage.ErrInvalid, "Blob(%q)", d)
		}
	}},
}

// putVersion stores data as a blob and name@version over it, and returns the digest.
func putVersion(t *testing.T, st storage.Store, name, version string, data []byte) string {
	t.Helper()
	d := must[string](t, "PutBlob")(st.PutBlob(ctx(t), data))
	created, err := st.PutVersion(ctx(t), storage.Version{Name: name, Version: version, Digest: d, Manifest: json.RawMessage(`{"name": "` + name + `"}`)})
	ok(t, err, "PutVersion %s@%s", name, version)
	if !created {
		t.Fatalf("PutVersion %s@%s: created false for a new version", name, version)
	}
	return d
}

// versionCases are the promises of [storage.Versions]: stored versions in SemVer order, the
// active pointer, the canary, and blobs kept while a version references them.
var versionCases = []testCase{
	{"put reports created, then not created for the same digest", func(t *testing.T, st storage.Store) {
		data := []byte("plugin v1")
		d := must[string](t, "PutBlob")(st.PutBlob(ctx(t), data))
		v := storage.Version{Name: "github", Version: "1.0.0", Digest: d, Manifest: json.RawMessage(`{ "name" : "github" }`)}
		if created := must[bool](t, "PutVersion")(st.PutVersion(ctx(t), v)); !created {
			t.Fatal("first PutVersion: created false")
		}
		if created := must[bool](t, "PutVersion again")(st.PutVersion(ctx(t), v)); created {
			t.Fatal("second PutVersion with the same digest: created true")
		}
		got := must[storage.Version](t, "Version")(st.Version(ctx(t), "github", "1.0.0"))
		if got.Name != "github" || got.Version != "1.0.0" || got.Digest != d {
			t.Fatalf("Version = %+v", got)
		}
		if got.Size != int64(len(data)) {
			t.Fatalf("Size = %d, want the blob's %d (0 in PutVersion means the blob's size)", got.Size, len(data))
		}
		if got.UploadedAt.IsZero() || time.Since(got.UploadedAt) > time.Hour {
			t.Fatalf("UploadedAt = %v, want about now (zero in PutVersion means now)", got.UploadedAt)
		}
		if string(got.Manifest) != `{"name":"github"}` {
			t.Fatalf("Manifest = %s, want %s compacted", got.Manifest, v.Manifest)
		}
	}},
	{"the same version with another digest is ErrVersionExists", func(t *testing.T, st storage.Store) {
		putVersion(t, st, "github", "1.0.0", []byte("v1"))
		d2 := must[string](t, "PutBlob")(st.PutBlob(ctx(t), []byte("other bytes")))
		_, err := st.PutVersion(ctx(t), storage.Version{Name: "github", Version: "1.0.0", Digest: d2})
		wantErr(t, err, storage.ErrVersionExists, "PutVersion with another digest")
		got := must[storage.Version](t, "Version")(st.Version(ctx(t), "github", "1.0.0"))
		if got.Digest == d2 {
			t.Fatal("the refused PutVersion replaced the stored digest")
		}
	}},
	{"a version whose blob is not stored is ErrNotFound", func(t *testing.T, st storage.Store) {
		_, err := st.PutVersion(ctx(t), storage.Version{Name: "github", Version: "1.0.0", Digest: storage.Digest([]byte("absent"))})
		wantErr(t, err, storage.ErrNotFound, "PutVersion before PutBlob")
	}},
	{"a version that is not SemVer is ErrInvalid", func(t *testing.T, st storage.Store) {
		d := must[string](t, "PutBlob")(st.PutBlob(ctx(t), []byte("x")))
		for _, ver := range []string{"", "1", "1.0", "v1.0.0", "01.0.0", "1.0.0-"} {
			_, err := st.PutVersion(ctx(t), storage.Version{Name: "github", Version: ver, Digest: d})
			wantErr(t, err, storage.ErrInvalid, "PutVersion version %q", ver)
		}
	}},
	{"an unknown version is ErrNotFound", func(t *testing.T, st storage.Store) {
		putVersion(t, st, "github", "1.0.0", []byte("v1"))
		for _, nv := range [][2]string{{"github", "2.0.0"}, {"gitlab", "1.0.0"}, {"github", ""}, {"", ""}} {
			_, err := st.Version(ctx(t), nv[0], nv[1])
			wantErr(t, err, storage.ErrNotFound, "Version(%q, %q)", nv[0], nv[1])
		}
	}},
	{"Versions are in SemVer order, oldest first", func(t *testing.T, st storage.Store) {
		want := []string{"0.9.0", "1.2.0-alpha", "1.2.0-alpha.1", "1.2.0-rc.1", "1.2.0", "1.10.0", "2.0.0"}
		for i, v := range []string{"1.10.0", "1.2.0", "2.0.0", "1.2.0-rc.1", "0.9.0", "1.2.0-alpha.1", "1.2.0-alpha"} {
			putVersion(t, st, "github", v, fmt.Appendf(nil, "bytes %d", i))
		}
		var got []string
		for _, v := range must[[]storage.Version](t, "Versions")(st.Versions(ctx(t), "github")) {
			got = append(got, v.Version)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Versions = %v, want %v", got, want)
		}
		if none := must[[]storage.Version](t, "Versions of an unknown connector")(st.Versions(ctx(t), "nobody")); len(none) != 0 {
			t.Fatalf("Versions of an unknown connector = %v, want none", none)
		}
	}},
	{"Connectors lists every name with a version, sorted", func(t *testing.T, st storage.Store) {
		if got := must[[]string](t, "Connectors")(st.Connectors(ctx(t))); len(got) != 0 {
			t.Fatalf("Connectors of an empty store = %v", got)
		}
		for _, n := range []string{"slack", "github", "jira"} {
			putVersion(t, st, n, "1.0.0", []byte(n))
		}
		putVersion(t, st, "github", "1.1.0", []byte("github 1.1"))
		if got := must[[]string](t, "Connectors")(st.Connectors(ctx(t))); !slices.Equal(got, []string{"github", "jira", "slack"}) {
			t.Fatalf("Connectors = %v, want [github jira slack]", got)
		}
	}},
	{"SetActive, Active and ActiveAll", func(t *testing.T, st storage.Store) {
		_, err := st.Active(ctx(t), "github")
		wantErr(t, err, storage.ErrNotFound, "Active before SetActive")
		wantErr(t, st.SetActive(ctx(t), "github", "1.0.0"), storage.ErrNotFound, "SetActive to a version not stored")
		putVersion(t, st, "github", "1.0.0", []byte("v1"))
		putVersion(t, st, "github", "1.1.0", []byte("v1.1"))
		putVersion(t, st, "slack", "0.1.0", []byte("slack"))
		wantErr(t, st.SetActive(ctx(t), "github", "9.9.9"), storage.ErrNotFound, "SetActive to an unknown version")
		ok(t, st.SetActive(ctx(t), "github", "1.0.0"), "SetActive")
		ok(t, st.SetActive(ctx(t), "github", "1.1.0"), "SetActive again")
		ok(t, st.SetActive(ctx(t), "github", "1.1.0"), "SetActive to the active version")
		ok(t, st.SetActive(ctx(t), "slack", "0.1.0"), "SetActive slack")
		if got := must[string](t, "Active")(st.Active(ctx(t), "github")); got != "1.1.0" {
			t.Fatalf("Active = %q, want 1.1.0", got)
		}
		all := must[map[string]string](t, "ActiveAll")(st.ActiveAll(ctx(t)))
		if want := map[string]string{"github": "1.1.0", "slack": "0.1.0"}; !maps.Equal(all, want) {
			t.Fatalf("ActiveAll = %v, want %v", all, want)
		}
	}},
	{"DeleteVersion refuses the active version and removes the last blob reference", func(t *testing.T, st storage.Store) {
		shared := []byte("shared bytes")
		d1 := putVersion(t, st, "github", "1.0.0", []byte("v1"))
		d2 := putVersion(t, st, "github", "1.1.0", shared)
		d3 := putVersion(t, st, "github", "1.2.0", shared)
		if d2 != d3 {
			t.Fatal("the same bytes got two digests")
		}
		ok(t, st.SetActive(ctx(t), "github", "1.0.0"), "SetActive")
		wantErr(t, st.DeleteVersion(ctx(t), "github", "1.0.0"), storage.ErrActive, "DeleteVersion of the active version")
		wantErr(t, st.DeleteVersion(ctx(t), "github", "3.0.0"), storage.ErrNotFound, "DeleteVersion of an unknown version")

		ok(t, st.DeleteVersion(ctx(t), "github", "1.1.0"), "DeleteVersion 1.1.0")
		_, err := st.Version(ctx(t), "github", "1.1.0")
		wantErr(t, err, storage.ErrNotFound, "Version after DeleteVersion")
		must[[]byte](t, "Blob still used by 1.2.0")(st.Blob(ctx(t), d2))
		wantErr(t, st.DeleteVersion(ctx(t), "github", "1.1.0"), storage.ErrNotFound, "a second DeleteVersion")

		ok(t, st.DeleteVersion(ctx(t), "github", "1.2.0"), "DeleteVersion 1.2.0")
		_, err = st.Blob(ctx(t), d2)
		wantErr(t, err, storage.ErrNotFound, "Blob once no version references it")

		ok(t, st.SetActive(ctx(t), "github", "1.0.0"), "SetActive")
		var got []string
		for _, v := range must[[]storage.Version](t, "Versions")(st.Versions(ctx(t), "github")) {
			got = append(got, v.Version)
		}
		if !slices.Equal(got, []string{"1.0.0"}) {
			t.Fatalf("Versions after the deletes = %v, want [1.0.0]", got)
		}
		must[[]byte](t, "Blob of the active version")(st.Blob(ctx(t), d1))
	}},
	{"deleting a connector's last version drops it from Connectors", func(t *testing.T, st storage.Store) {
		putVersion(t, st, "github", "1.0.0", []byte("g"))
		putVersion(t, st, "slack", "1.0.0", []byte("s"))
		ok(t, st.DeleteVersion(ctx(t), "slack", "1.0.0"), "DeleteVersion")
		if got := must[[]string](t, "Connectors")(st.Connectors(ctx(t))); !slices.Equal(got, []string{"github"}) {
			t.Fatalf("Connectors = %v, want [github]", got)
		}
	}},
	{"SetActive racing DeleteVersion of the same version: one wins, and the pointer never names a deleted version", func(t *testing.T, st storage.Store) {
		putVersion(t, st, "github", "1.0.0", []byte("base"))
		ok(t, st.SetActive(ctx(t), "github", "1.0.0"), "SetActive")
		for i := range 20 {
			v := fmt.Sprintf("1.1.%d", i)
			putVersion(t, st, "github", v, fmt.Appendf(nil, "bytes %d", i))
			var setErr, delErr error
			parallel(2, func(j int) {
				if j == 0 {
					setErr = st.SetActive(ctx(t), "github", v)
				} else {
					delErr = st.DeleteVersion(ctx(t), "github", v)
				}
			})
			active := must[string](t, "Active")(st.Active(ctx(t), "github"))
			if _, err := st.Version(ctx(t), "github", active); err != nil {
				t.Fatalf("round %d: the active pointer names %s, which is gone (SetActive: %v, DeleteVersion: %v)", i, active, setErr, delErr)
			}
			switch {
			case setErr == nil && errors.Is(delErr, storage.ErrActive) && active == v: // activated first
				ok(t, st.SetActive(ctx(t), "github", "1.0.0"), "SetActive back")
				ok(t, st.DeleteVersion(ctx(t), "github", v), "DeleteVersion")
			case errors.Is(setErr, storage.ErrNotFound) && delErr == nil && active == "1.0.0": // deleted first
			default:
				t.Fatalf("round %d: SetActive %v, DeleteVersion %v, active %s; want one to win and the other refused", i, setErr, delErr, active)
			}
		}
	}},
	{"SetCanary stores and nil removes; unknown version is ErrNotFound", func(t *testing.T, st storage.Store) {
		if c := must[*storage.Canary](t, "Canary")(st.Canary(ctx(t), "github")); c != nil {
			t.Fatalf("Canary of a connector without one = %+v, want nil", c)
		}
		putVersion(t, st, "github", "1.0.0", []byte("v1"))
		putVersion(t, st, "github", "1.1.0", []byte("v1.1"))
		ok(t, st.SetActive(ctx(t), "github", "1.0.0"), "SetActive")
		wantErr(t, st.SetCanary(ctx(t), "github", &storage.Canary{Version: "2.0.0", Percent: 10}), storage.ErrNotFound, "SetCanary to an unknown version")
		if c := must[*storage.Canary](t, "Canary")(st.Canary(ctx(t), "github")); c != nil {
			t.Fatalf("a refused SetCanary stored %+v", c)
		}
		want := storage.Canary{Version: "1.1.0", Percent: 25, MaxErrorRate: 0.05, MinCalls: 20}
		ok(t, st.SetCanary(ctx(t), "github", &want), "SetCanary")
		got := must[*storage.Canary](t, "Canary")(st.Canary(ctx(t), "github"))
		if got == nil || *got != want {
			t.Fatalf("Canary = %+v, want %+v", got, want)
		}
		ok(t, st.SetActive(ctx(t), "github", "1.1.0"), "SetActive to the canary version")
		if got := must[*storage.Canary](t, "Canary")(st.Canary(ctx(t), "github")); got == nil {
			t.Fatal("SetActive cleared the canary; only the caller clears it")
		}
		ok(t, st.SetCanary(ctx(t), "github", nil), "SetCanary nil")
		if c := must[*storage.Canary](t, "Canary")(st.Canary(ctx(t), "github")); c != nil {
			t.Fatalf("Canary after SetCanary(nil) = %+v", c)
		}
		ok(t, st.SetCanary(ctx(t), "github", nil), "SetCanary nil when there is none")
	}},
	{"the same version again with the same digest leaves the stored one as it was", func(t *testing.T, st storage.Store) {
		d := must[string](t, "PutBlob")(st.PutBlob(ctx(t), []byte("v1")))
		first := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		v := storage.Version{Name: "github", Version: "1.0.0", Digest: d, UploadedAt: first, Manifest: json.RawMessage(`{"n":1}`)}
		must[bool](t, "PutVersion")(st.PutVersion(ctx(t), v))
		v.UploadedAt, v.Manifest = time.Now().UTC(), json.RawMessage(`{"n":2}`)
		if created := must[bool](t, "PutVersion again")(st.PutVersion(ctx(t), v)); created {
			t.Fatal("PutVersion of a stored version with the same digest: created true")
		}
		got := must[storage.Version](t, "Version")(st.Version(ctx(t), "github", "1.0.0"))
		if !got.UploadedAt.Equal(first) || !jsonEqual(got.Manifest, []byte(`{"n":1}`)) {
			t.Fatalf("Version = uploaded %v, manifest %s; want the first put's %v and {\"n\":1}", got.UploadedAt, got.Manifest, first)
		}
	}},
	{"a version without a name, with a bad digest, a wrong size or a manifest that is not JSON is ErrInvalid", func(t *testing.T, st storage.Store) {
		d := must[string](t, "PutBlob")(st.PutBlob(ctx(t), []byte("plugin")))
		for _, c := range []struct {
			name string
			v    storage.Version
		}{
			{"no name", storage.Version{Version: "1.0.0", Digest: d}},
			{"a bad digest", storage.Version{Name: "github", Version: "1.0.0", Digest: "md5:abc"}},
			{"a size other than the blob's", storage.Version{Name: "github", Version: "1.0.0", Digest: d, Size: 3}},
			{"a manifest that is not JSON", storage.Version{Name: "github", Version: "1.0.0", Digest: d, Manifest: json.RawMessage(`{`)}},
		} {
			created, err := st.PutVersion(ctx(t), c.v)
			wantErr(t, err, storage.ErrInvalid, "PutVersion with %s", c.name)
			if created {
				t.Fatalf("PutVersion with %s: created true", c.name)
			}
		}
		_, err := st.Version(ctx(t), "github", "1.0.0")
		wantErr(t, err, storage.ErrNotFound, "the version the refused puts named")
	}},
	{"a refused SetActive leaves the active pointer", func(t *testing.T, st storage.Store) {
		putVersion(t, st, "github", "1.0.0", []byte("v1"))
		ok(t, st.SetActive(ctx(t), "github", "1.0.0"), "SetActive")
		for _, nv := range [][2]string{{"github", "3.0.0"}, {"nope", "1.0.0"}, {"", ""}} {
			wantErr(t, st.SetActive(ctx(t), nv[0], nv[1]), storage.ErrNotFound, "SetActive(%q, %q)", nv[0], nv[1])
		}
		if got := must[string](t, "Active")(st.Active(ctx(t), "github")); got != "1.0.0" {
			t.Fatalf("Active = %q after refused SetActives, want 1.0.0", got)
		}
		if all := must[map[string]string](t, "ActiveAll")(st.ActiveAll(ctx(t))); !maps.Equal(all, map[string]string{"github": "1.0.0"}) {
			t.Fatalf("ActiveAll = %v after refused SetActives", all)
		}
	}},
	{"a blob two connectors share stays while either has a version over it", func(t *testing.T, st storage.Store) {
		d := putVersion(t, st, "github", "1.0.0", []byte("shared"))
		created := must[bool](t, "PutVersion fork")(st.PutVersion(ctx(t), storage.Version{Name: "fork", Version: "1.0.0", Digest: d}))
		if !created {
			t.Fatal("PutVersion of another connector over a stored blob: created false")
		}
		for _, nv := range [][2]string{{"nope", "1.0.0"}, {"", ""}} {
			wantErr(t, st.DeleteVersion(ctx(t), nv[0], nv[1]), storage.ErrNotFound, "DeleteVersion(%q, %q)", nv[0], nv[1])
		}
		ok(t, st.DeleteVersion(ctx(t), "fork", "1.0.0"), "DeleteVersion fork")
		must[[]byte](t, "Blob still used by github")(st.Blob(ctx(t), d))
		if got := must[[]string](t, "Connectors")(st.Connectors(ctx(t))); !slices.Equal(got, []string{"github"}) {
			t.Fatalf("Connectors = %v, want [github]", got)
		}
		ok(t, st.DeleteVersion(ctx(t), "github", "1.0.0"), "DeleteVersion github")
		_, err := st.Blob(ctx(t), d)
		wantErr(t, err, storage.ErrNotFound, "Blob once neither connector has a version over it")
	}},
}
