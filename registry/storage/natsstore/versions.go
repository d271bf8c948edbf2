package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plugboard/plugboard/registry/storage"
)

// The versions bucket holds, per connector name (enc'd):
//
//	v.<name>.<version>  versionRecord JSON (the same document as bbolt's)
//	active.<name>       the active version
//	canary.<name>       storage.Canary JSON
//	g.<name>            guard: rewritten by every write of the connector's keys
//	ref.<digest hex>    blobRef: the versions that use a blob
//
// The guard serializes the writes of one connector; ref.<digest> serializes the writes that
// touch a blob's users across connectors.

// maxIDBytes bounds connector names, versions, ids and meta keys (as bbolt does).
const maxIDBytes = 1024

func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("natsstore: %s is empty: %w", what, storage.ErrInvalid)
	}
	if len(id) > maxIDBytes {
		return fmt.Errorf("natsstore: %s is over %d bytes: %w", what, maxIDBytes, storage.ErrInvalid)
	}
	return nil
}

// versionRecord is the stored form of a Version (bbolt's versionRecord).
type versionRecord struct {
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Digest     string          `json:"digest"`
	Size       int64           `json:"size"`
	UploadedAt time.Time       `json:"uploaded_at"`
	Manifest   json.RawMessage `json:"manifest,omitempty"`
}

// blobRef lists the versions ("name@version") that use a blob. Deleting is set by the
// DeleteVersion that removed the last user, until the blob itself is deleted: meanwhile no
// version may take it (PutVersion answers ErrNotFound, PutBlob completes the deletion first).
type blobRef struct {
	Refs     []string `json:"refs,omitempty"`
	Deleting bool     `json:"deleting,omitempty"`
}

func vKey(name, version string) string { return enc(name) + "." + enc(version) }
func refKey(digest string) string      { return "ref." + strings.TrimPrefix(digest, "sha256:") }

// guard rewrites the connector's guard key, so the transaction conflicts with every other
// write of the connector.
func guard(ctx context.Context, t *txn, key string) error {
	if _, err := t.get(ctx, key); err != nil {
		return err
	}
	t.put(key, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	return nil
}

// PutBlob implements [storage.Blobs]: the blob is one object of the object store, named by
// its digest.
func (s *Store) PutBlob(ctx context.Context, data []byte) (string, error) {
	digest := storage.Digest(data)
	if err := s.reach(ctx); err != nil {
		return "", err
	}
	if err := s.finishBlobDelete(ctx, digest); err != nil {
		return "", err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.blobs.GetInfo(ctx, digest); err == nil {
		return digest, nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return "", s.netErr("reading blob "+digest, err)
	}
	if _, err := s.blobs.PutBytes(ctx, digest, data); err != nil {
		return "", s.netErr("storing blob "+digest, err)
	}
	return digest, nil
}

// finishBlobDelete completes a blob deletion a DeleteVersion started (and perhaps did not
// finish): it deletes the object, then the blobRef.
func (s *Store) finishBlobDelete(ctx context.Context, digest string) error {
	var ref blobRef
	found, err := s.getJSON(ctx, s.versions, refKey(digest), &ref)
	if err != nil || !found || !ref.Deleting {
		return err
	}
	octx, cancel := s.opCtx(ctx)
	err = s.blobs.Delete(octx, digest)
	cancel()
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return s.netErr("deleting blob "+digest, err)
	}
	_, err = s.update(ctx, s.versions, func(t *txn) error {
		var ref blobRef
		found, err := t.getJSON(ctx, refKey(digest), &ref)
		if err == nil && found && ref.Deleting && len(ref.Refs) == 0 {
			t.del(refKey(digest))
		}
		return err
	})
	return err
}

// getJSON reads one key outside a transaction.
func (s *Store) getJSON(ctx context.Context, b *bucket, key string, v any) (bool, error) {
	e, err := s.get(ctx, b, key)
	if err != nil || !e.exists {
		return false, err
	}
	if err := json.Unmarshal(e.val, v); err != nil {
		return false, s.corruptErr(b.name+" "+key, err)
	}
	return true, nil
}

// Blob implements [storage.Blobs].
func (s *Store) Blob(ctx context.Context, digest string) ([]byte, error) {
	if err := storage.CheckDigest(digest); err != nil {
		return nil, err
	}
	if err := s.reach(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	data, err := s.blobs.GetBytes(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("natsstore: blob %s: %w", digest, storage.ErrNotFound)
	}
	if err != nil {
		return nil, s.netErr("reading blob "+digest, err)
	}
	return data, nil
}

// PutVersion implements [storage.Versions], with bbolt's checks and errors.
func (s *Store) PutVersion(ctx context.Context, v storage.Version) (bool, error) {
	if err := checkID("connector name", v.Name); err != nil {
		return false, err
	}
	if !storage.ValidSemVer(v.Version) || len(v.Version) > maxIDBytes {
		return false, fmt.Errorf("natsstore: version %q is not a SemVer 2.0 version: %w", v.Version, storage.ErrInvalid)
	}
	if err := storage.CheckDigest(v.Digest); err != nil {
		return false, err
	}
	if len(v.Manifest) > 0 && !json.Valid(v.Manifest) {
		return false, fmt.Errorf("natsstore: version %s@%s: manifest is not valid JSON: %w", v.Name, v.Version, storage.ErrInvalid)
	}
	if v.UploadedAt.IsZero() {
		v.UploadedAt = s.nowUTC()
	}
	v.UploadedAt = v.UploadedAt.UTC()
	created := false
	_, err := s.update(ctx, s.versions, func(t *txn) error {
		created = false
		if err := guard(ctx, t, "g."+enc(v.Name)); err != nil {
			return err
		}
		var old versionRecord
		found, err := t.getJSON(ctx, "v."+vKey(v.Name, v.Version), &old)
		if err != nil {
			return err
		}
		if found {
			if old.Digest == v.Digest {
				t.writes, t.widx = nil, map[string]int{} // unchanged: write nothing
				return nil
			}
			return fmt.Errorf("natsstore: version %s@%s is stored with digest %s: %w", v.Name, v.Version, old.Digest, storage.ErrVersionExists)
		}
		var ref blobRef
		if _, err := t.getJSON(ctx, refKey(v.Digest), &ref); err != nil {
			return err
		}
		notStored := fmt.Errorf("natsstore: version %s@%s: blob %s (store it with PutBlob first): %w", v.Name, v.Version, v.Digest, storage.ErrNotFound)
		if ref.Deleting {
			return notStored
		}
		octx, cancel := s.opCtx(ctx)
		info, err := s.blobs.GetInfo(octx, v.Digest)
		cancel()
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return notStored
		}
		if err != nil {
			return s.netErr("reading blob "+v.Digest, err)
		}
		if v.Size == 0 {
			v.Size = int64(info.Size)
		} else if v.Size != int64(info.Size) {
			return fmt.Errorf("natsstore: version %s@%s: size %d, but blob %s has %d bytes: %w", v.Name, v.Version, v.Size, v.Digest, info.Size, storage.ErrInvalid)
		}
		if err := t.putJSON("v."+vKey(v.Name, v.Version), versionRecord(v)); err != nil {
			return err
		}
		ref.Refs = append(ref.Refs, v.Name+"@"+v.Version)
		created = true
		return t.putJSON(refKey(v.Digest), ref)
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// Version implements [storage.Versions], from memory.
func (s *Store) Version(ctx context.Context, name, version string) (storage.Version, error) {
	if name == "" || version == "" {
		return storage.Version{}, fmt.Errorf("natsstore: version %s@%s: %w", name, version, storage.ErrNotFound)
	}
	v, ok, err := s.cached(ctx, s.cVersions, vKey(name, version))
	if err != nil {
		return storage.Version{}, err
	}
	if !ok {
		return storage.Version{}, fmt.Errorf("natsstore: version %s@%s: %w", name, version, storage.ErrNotFound)
	}
	return copyVersion(v.(versionRecord)), nil
}

func copyVersion(r versionRecord) storage.Version {
	v := storage.Version(r)
	v.Manifest = slices.Clone(v.Manifest)
	return v
}

// Versions implements [storage.Versions], from memory.
func (s *Store) Versions(ctx context.Context, name string) ([]storage.Version, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []storage.Version
	if name == "" {
		return nil, nil
	}
	p := enc(name) + "."
	all, err := s.rangeEntries(ctx, s.cVersions)
	if err != nil {
		return nil, err
	}
	for k, v := range all {
		if strings.HasPrefix(k, p) {
			out = append(out, copyVersion(v.(versionRecord)))
		}
	}
	slices.SortFunc(out, func(a, b storage.Version) int { return storage.CompareSemVer(a.Version, b.Version) })
	return out, nil
}

// Connectors implements [storage.Versions], from memory.
func (s *Store) Connectors(ctx context.Context) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	all, err := s.values(ctx, s.cVersions)
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		if n := v.(versionRecord).Name; !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// DeleteVersion implements [storage.Versions]: the version goes in one commit with its blob's
// user list; the blob itself is deleted after, once no version uses it.
func (s *Store) DeleteVersion(ctx context.Context, name, version string) error {
	if name == "" || version == "" {
		return fmt.Errorf("natsstore: version %s@%s: %w", name, version, storage.ErrNotFound)
	}
	var digest string
	var last bool
	_, err := s.update(ctx, s.versions, func(t *txn) error {
		if err := guard(ctx, t, "g."+enc(name)); err != nil {
			return err
		}
		act, err := t.get(ctx, "active."+enc(name))
		if err != nil {
			return err
		}
		if act.exists && string(act.val) == version {
			return fmt.Errorf("natsstore: version %s@%s is the active version; activate another one first: %w", name, version, storage.ErrActive)
		}
		var rec versionRecord
		found, err := t.getJSON(ctx, "v."+vKey(name, version), &rec)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("natsstore: version %s@%s: %w", name, version, storage.ErrNotFound)
		}
		t.del("v." + vKey(name, version))
		var ref blobRef
		if _, err := t.getJSON(ctx, refKey(rec.Digest), &ref); err != nil {
			return err
		}
		ref.Refs = slices.DeleteFunc(ref.Refs, func(r string) bool { return r == name+"@"+version })
		digest, last = rec.Digest, len(ref.Refs) == 0
		ref.Deleting = last
		return t.putJSON(refKey(rec.Digest), ref)
	})
	if err != nil || !last {
		return err
	}
	return s.finishBlobDelete(ctx, digest)
}

// SetActive implements [storage.Versions].
func (s *Store) SetActive(ctx context.Context, name, version string) error {
	_, err := s.update(ctx, s.versions, func(t *txn) error {
		if name == "" || version == "" {
			return fmt.Errorf("natsstore: version %s@%s: %w", name, version, storage.ErrNotFound)
		}
		if err := guard(ctx, t, "g."+enc(name)); err != nil {
			return err
		}
		if v, err := t.get(ctx, "v."+vKey(name, version)); err != nil || !v.exists {
			if err == nil {
				err = fmt.Errorf("natsstore: version %s@%s: %w", name, version, storage.ErrNotFound)
			}
			return err
		}
		act, err := t.get(ctx, "active."+enc(name))
		if err != nil {
			return err
		}
		if act.exists && string(act.val) == version {
			t.writes, t.widx = nil, map[string]int{}
			return nil
		}
		t.put("active."+enc(name), []byte(version))
		return nil
	})
	return err
}

// Active implements [storage.Versions], from memory.
func (s *Store) Active(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("natsstore: active version of %s: %w", name, storage.ErrNotFound)
	}
	v, ok, err := s.cached(ctx, s.cActive, enc(name))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("natsstore: active version of %s: %w", name, storage.ErrNotFound)
	}
	return v.(string), nil
}

// ActiveAll implements [storage.Versions], from memory.
func (s *Store) ActiveAll(ctx context.Context) (map[string]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out := map[string]string{}
	all, err := s.rangeEntries(ctx, s.cActive)
	if err != nil {
		return nil, err
	}
	for k, v := range all {
		out[dec(k)] = v.(string)
	}
	return out, nil
}

// SetCanary implements [storage.Versions].
func (s *Store) SetCanary(ctx context.Context, name string, c *storage.Canary) error {
	if err := checkID("connector name", name); err != nil {
		return err
	}
	_, err := s.update(ctx, s.versions, func(t *txn) error {
		if err := guard(ctx, t, "g."+enc(name)); err != nil {
			return err
		}
		k := "canary." + enc(name)
		old, err := t.get(ctx, k)
		if err != nil {
			return err
		}
		if c == nil {
			if !old.exists {
				t.writes, t.widx = nil, map[string]int{}
				return nil
			}
			t.del(k)
			return nil
		}
		if v, err := t.get(ctx, "v."+vKey(name, c.Version)); err != nil || !v.exists {
			if err == nil {
				err = fmt.Errorf("natsstore: canary version %s@%s: %w", name, c.Version, storage.ErrNotFound)
			}
			return err
		}
		return t.putJSON(k, c)
	})
	return err
}

// Canary implements [storage.Versions], from memory.
func (s *Store) Canary(ctx context.Context, name string) (*storage.Canary, error) {
	if name == "" {
		return nil, nil
	}
	v, ok, err := s.cached(ctx, s.cCanary, enc(name))
	if err != nil || !ok {
		return nil, err
	}
	c := v.(storage.Canary)
	return &c, nil
}
