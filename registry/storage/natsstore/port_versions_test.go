package natsstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestBlobs(t *testing.T) {
	s := openTest(t, nil)
	data := []byte("\x00asm fake plugin bytes")
	d1 := must[string](t)(s.PutBlob(bg, data))
	if d1 != Digest(data) || len(d1) != len("sha256:")+64 {
		t.Fatalf("digest = %q", d1)
	}
	d2 := must[string](t)(s.PutBlob(bg, data))
	if d2 != d1 {
		t.Fatalf("second PutBlob digest %q != %q", d2, d1)
	}
	got := must[[]byte](t)(s.Blob(bg, d1))
	if !bytes.Equal(got, data) {
		t.Fatalf("Blob = %q", got)
	}
	got[0] = 'X' // the copy is the caller's
	if again := must[[]byte](t)(s.Blob(bg, d1)); !bytes.Equal(again, data) {
		t.Fatal("Blob returned memory shared with the store")
	}
	empty := must[string](t)(s.PutBlob(bg, nil))
	if b, err := s.Blob(bg, empty); err != nil || b == nil || len(b) != 0 {
		t.Fatalf("empty blob = %v, %v", b, err)
	}

	tests := []struct {
		name   string
		digest string
		want   error
	}{
		{"unknown digest", Digest([]byte("other")), ErrNotFound},
		{"no algorithm", Digest(data)[7:], ErrInvalid},
		{"upper-case hex", "sha256:" + string(bytes.ToUpper([]byte(d1[7:]))), ErrInvalid},
		{"short", d1[:20], ErrInvalid},
		{"empty", "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Blob(bg, tt.digest); !errors.Is(err, tt.want) {
				t.Errorf("Blob(%q) err = %v, want %v", tt.digest, err, tt.want)
			}
		})
	}
}

// putVersion stores data as a blob and name@version pointing at it.
func putVersion(t *testing.T, s *Store, name, version string, data []byte) Version {
	t.Helper()
	d := must[string](t)(s.PutBlob(bg, data))
	v := Version{Name: name, Version: version, Digest: d, Manifest: json.RawMessage(`{"name":"` + name + `","version":"` + version + `"}`)}
	created, err := s.PutVersion(bg, v)
	if err != nil || !created {
		t.Fatalf("PutVersion(%s@%s) = %v, %v", name, version, created, err)
	}
	return must[Version](t)(s.Version(bg, name, version))
}

func TestVersionsRoundTrip(t *testing.T) {
	clk := newClock()
	s := openTest(t, &Options{Now: clk.Now})
	v := putVersion(t, s, "github", "1.2.0", []byte("wasm 1.2.0"))
	want := Version{Name: "github", Version: "1.2.0", Digest: Digest([]byte("wasm 1.2.0")), Size: 10,
		UploadedAt: clk.Now(), Manifest: json.RawMessage(`{"name":"github","version":"1.2.0"}`)}
	if v.Name != want.Name || v.Version != want.Version || v.Digest != want.Digest || v.Size != want.Size ||
		!v.UploadedAt.Equal(want.UploadedAt) || !bytes.Equal(v.Manifest, want.Manifest) {
		t.Fatalf("Version = %+v, want %+v", v, want)
	}

	t.Run("same bytes again is not created", func(t *testing.T) {
		clk.Advance(time.Hour)
		created, err := s.PutVersion(bg, Version{Name: "github", Version: "1.2.0", Digest: want.Digest})
		if err != nil || created {
			t.Fatalf("PutVersion = %v, %v; want false, nil", created, err)
		}
		if got := must[Version](t)(s.Version(bg, "github", "1.2.0")); !got.UploadedAt.Equal(want.UploadedAt) {
			t.Errorf("the stored version changed: %+v", got)
		}
	})

	other := must[string](t)(s.PutBlob(bg, []byte("other bytes")))
	tests := []struct {
		name string
		v    Version
		want error
	}{
		{"other digest", Version{Name: "github", Version: "1.2.0", Digest: other}, ErrVersionExists},
		{"blob not stored", Version{Name: "github", Version: "1.3.0", Digest: Digest([]byte("nope"))}, ErrNotFound},
		{"not semver", Version{Name: "github", Version: "1.3", Digest: other}, ErrInvalid},
		{"empty name", Version{Version: "1.3.0", Digest: other}, ErrInvalid},
		{"bad digest", Version{Name: "github", Version: "1.3.0", Digest: "md5:abc"}, ErrInvalid},
		{"wrong size", Version{Name: "github", Version: "1.3.0", Digest: other, Size: 3}, ErrInvalid},
		{"manifest not JSON", Version{Name: "github", Version: "1.3.0", Digest: other, Manifest: json.RawMessage(`{`)}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := s.PutVersion(bg, tt.v)
			if !errors.Is(err, tt.want) || created {
				t.Errorf("PutVersion = %v, %v; want %v", created, err, tt.want)
			}
		})
	}
	if _, err := s.Version(bg, "github", "1.3.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Version of a refused put: %v, want ErrNotFound", err)
	}
	for _, nv := range [][2]string{{"github", "9.9.9"}, {"nope", "1.2.0"}, {"", ""}} {
		if _, err := s.Version(bg, nv[0], nv[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("Version(%q, %q) err = %v, want ErrNotFound", nv[0], nv[1], err)
		}
	}
}

func TestVersionsSortedBySemVer(t *testing.T) {
	s := openTest(t, nil)
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0", "1.2.0", "1.10.0"}
	for _, i := range []int{4, 0, 5, 2, 3, 1} { // stored out of order
		putVersion(t, s, "slack", order[i], []byte("slack "+order[i]))
	}
	putVersion(t, s, "github", "0.1.0", []byte("gh"))
	var got []string
	for _, v := range must[[]Version](t)(s.Versions(bg, "slack")) {
		got = append(got, v.Version)
	}
	if !slices.Equal(got, order) {
		t.Errorf("Versions = %v, want %v", got, order)
	}
	if vs, err := s.Versions(bg, "none"); err != nil || len(vs) != 0 {
		t.Errorf("Versions of an unknown connector = %v, %v", vs, err)
	}
	if names := must[[]string](t)(s.Connectors(bg)); !slices.Equal(names, []string{"github", "slack"}) {
		t.Errorf("Connectors = %v", names)
	}
}

func TestActive(t *testing.T) {
	s := openTest(t, nil)
	putVersion(t, s, "github", "1.0.0", []byte("a"))
	putVersion(t, s, "github", "1.1.0", []byte("b"))
	putVersion(t, s, "slack", "2.0.0", []byte("c"))
	if _, err := s.Active(bg, "github"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Active before SetActive: %v, want ErrNotFound", err)
	}
	for _, nv := range [][2]string{{"github", "1.0.0"}, {"github", "1.1.0"}, {"github", "1.1.0"}, {"slack", "2.0.0"}} {
		if err := s.SetActive(bg, nv[0], nv[1]); err != nil {
			t.Fatalf("SetActive(%s, %s): %v", nv[0], nv[1], err)
		}
	}
	if v := must[string](t)(s.Active(bg, "github")); v != "1.1.0" {
		t.Errorf("Active = %q, want 1.1.0", v)
	}
	all := must[map[string]string](t)(s.ActiveAll(bg))
	if len(all) != 2 || all["github"] != "1.1.0" || all["slack"] != "2.0.0" {
		t.Errorf("ActiveAll = %v", all)
	}
	for _, nv := range [][2]string{{"github", "3.0.0"}, {"nope", "1.0.0"}, {"", ""}} {
		if err := s.SetActive(bg, nv[0], nv[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetActive(%q, %q) = %v, want ErrNotFound", nv[0], nv[1], err)
		}
	}
	if v := must[string](t)(s.Active(bg, "github")); v != "1.1.0" {
		t.Errorf("a refused SetActive moved the pointer to %q", v)
	}
}

func TestDeleteVersion(t *testing.T) {
	s := openTest(t, nil)
	a := putVersion(t, s, "github", "1.0.0", []byte("bytes A"))
	b := putVersion(t, s, "github", "1.1.0", []byte("bytes B"))
	// Another connector storing the same bytes shares the blob.
	if _, err := s.PutVersion(bg, Version{Name: "fork", Version: "1.0.0", Digest: b.Digest}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetActive(bg, "github", "1.1.0"); err != nil {
		t.Fatal(err)
	}

	t.Run("the active version is refused", func(t *testing.T) {
		if err := s.DeleteVersion(bg, "github", "1.1.0"); !errors.Is(err, ErrActive) {
			t.Fatalf("DeleteVersion(active) = %v, want ErrActive", err)
		}
		must[Version](t)(s.Version(bg, "github", "1.1.0"))
	})
	t.Run("an unknown version is not found", func(t *testing.T) {
		for _, nv := range [][2]string{{"github", "2.0.0"}, {"nope", "1.0.0"}, {"", ""}} {
			if err := s.DeleteVersion(bg, nv[0], nv[1]); !errors.Is(err, ErrNotFound) {
				t.Errorf("DeleteVersion(%q, %q) = %v, want ErrNotFound", nv[0], nv[1], err)
			}
		}
	})
	t.Run("the unreferenced blob goes with the version", func(t *testing.T) {
		if err := s.DeleteVersion(bg, "github", "1.0.0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Version(bg, "github", "1.0.0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Version after delete: %v", err)
		}
		if _, err := s.Blob(bg, a.Digest); !errors.Is(err, ErrNotFound) {
			t.Errorf("Blob after its last version went: %v, want ErrNotFound", err)
		}
		if err := s.DeleteVersion(bg, "github", "1.0.0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete = %v, want ErrNotFound", err)
		}
	})
	t.Run("a blob another version uses stays", func(t *testing.T) {
		if err := s.DeleteVersion(bg, "fork", "1.0.0"); err != nil {
			t.Fatal(err)
		}
		must[[]byte](t)(s.Blob(bg, b.Digest))
		if names := must[[]string](t)(s.Connectors(bg)); !slices.Equal(names, []string{"github"}) {
			t.Errorf("Connectors after deleting fork's only version = %v", names)
		}
	})
}
