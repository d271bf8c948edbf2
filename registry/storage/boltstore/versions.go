package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
	bolt "go.etcd.io/bbolt"
)

// versionRecord is the stored form of a Version.
type versionRecord struct {
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Digest     string          `json:"digest"`
	Size       int64           `json:"size"`
	UploadedAt time.Time       `json:"uploaded_at"`
	Manifest   json.RawMessage `json:"manifest,omitempty"`
}

// PutVersion stores a connector version. created is false when the same name, version and
// digest are already stored (nothing is written, the stored one is kept). It fails with
// [ErrVersionExists] when the name and version are stored with another digest, with
// [ErrNotFound] when the blob is not stored, and with [ErrInvalid] when Name is empty, Version
// is not SemVer 2.0, Digest is malformed, Size differs from the blob's size or Manifest is not
// valid JSON. Storing a version does not make it active ([Store.SetActive]).
func (s *Store) PutVersion(ctx context.Context, v Version) (created bool, err error) {
	if err := checkID("connector name", v.Name); err != nil {
		return false, err
	}
	if !storage.ValidSemVer(v.Version) || len(v.Version) > maxIDBytes {
		return false, fmt.Errorf("store: version %q is not a SemVer 2.0 version: %w", v.Version, ErrInvalid)
	}
	if err := CheckDigest(v.Digest); err != nil {
		return false, err
	}
	if v.UploadedAt.IsZero() {
		v.UploadedAt = s.nowUTC()
	}
	v.UploadedAt = v.UploadedAt.UTC()
	err = s.update(ctx, func(tx *bolt.Tx) error {
		blob, ok := get(tx.Bucket(bucketBlobs), []byte(v.Digest))
		if !ok {
			return fmt.Errorf("store: version %s@%s: blob %s (store it with PutBlob first): %w", v.Name, v.Version, v.Digest, ErrNotFound)
		}
		if v.Size == 0 {
			v.Size = int64(len(blob))
		} else if v.Size != int64(len(blob)) {
			return fmt.Errorf("store: version %s@%s: size %d, but blob %s has %d bytes: %w", v.Name, v.Version, v.Size, v.Digest, len(blob), ErrInvalid)
		}
		if vb := tx.Bucket(bucketVersions).Bucket([]byte(v.Name)); vb != nil {
			if old := vb.Get([]byte(v.Version)); old != nil {
				rec, err := decodeVersion(old)
				if err != nil {
					return err
				}
				if rec.Digest == v.Digest {
					return errUnchanged
				}
				return fmt.Errorf("store: version %s@%s is stored with digest %s: %w", v.Name, v.Version, rec.Digest, ErrVersionExists)
			}
		}
		data, err := json.Marshal(versionRecord(v))
		if err != nil {
			return fmt.Errorf("store: version %s@%s: manifest: %w: %w", v.Name, v.Version, ErrInvalid, err)
		}
		vb, err := tx.Bucket(bucketVersions).CreateBucketIfNotExists([]byte(v.Name))
		if err != nil {
			return err
		}
		if err := vb.Put([]byte(v.Version), data); err != nil {
			return err
		}
		created = true
		return tx.Bucket(bucketBlobRefs).Put(blobRefKey(v.Digest, v.Name, v.Version), nil)
	})
	if err != nil {
		return false, err
	}
	if created {
		s.notifyAfter(ChangeVersion, v.Name+"@"+v.Version, nil)
	}
	return created, nil
}

func decodeVersion(data []byte) (Version, error) {
	var rec versionRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return Version{}, fmt.Errorf("store: corrupt version record: %w", err)
	}
	return Version(rec), nil
}

// Version returns one connector version; [ErrNotFound] when it is not stored.
func (s *Store) Version(ctx context.Context, name, version string) (Version, error) {
	var v Version
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var data []byte
		if vb := tx.Bucket(bucketVersions).Bucket([]byte(name)); vb != nil && version != "" {
			data = vb.Get([]byte(version))
		}
		if data == nil {
			return fmt.Errorf("store: version %s@%s: %w", name, version, ErrNotFound)
		}
		var err error
		v, err = decodeVersion(data)
		return err
	})
	return v, err
}

// Versions returns every stored version of the connector, oldest first by SemVer precedence
// (pre-releases before their release; versions that differ only in build metadata ordered by
// their strings). A connector with no versions gives an empty list and no error.
func (s *Store) Versions(ctx context.Context, name string) ([]Version, error) {
	var out []Version
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if name == "" {
			return nil
		}
		vb := tx.Bucket(bucketVersions).Bucket([]byte(name))
		if vb == nil {
			return nil
		}
		return vb.ForEach(func(_, data []byte) error {
			v, err := decodeVersion(data)
			if err == nil {
				out = append(out, v)
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Version) int { return storage.CompareSemVer(a.Version, b.Version) })
	return out, nil
}

// Connectors returns the names of the connectors with at least one stored version, sorted.
func (s *Store) Connectors(ctx context.Context) ([]string, error) {
	var names []string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVersions).ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	return names, err
}

// DeleteVersion deletes a connector version. It fails with [ErrActive] when the version is the
// connector's active one and with [ErrNotFound] when it is not stored. The version's blob is
// deleted in the same transaction when no other version references it.
func (s *Store) DeleteVersion(ctx context.Context, name, version string) error {
	return s.notifyAfter(ChangeVersion, name+"@"+version, s.update(ctx, func(tx *bolt.Tx) error {
		if name == "" || version == "" {
			return fmt.Errorf("store: version %s@%s: %w", name, version, ErrNotFound)
		}
		if active := tx.Bucket(bucketActive).Get([]byte(name)); bytes.Equal(active, []byte(version)) {
			return fmt.Errorf("store: version %s@%s is the active version; activate another one first: %w", name, version, ErrActive)
		}
		versions := tx.Bucket(bucketVersions)
		vb := versions.Bucket([]byte(name))
		var data []byte
		if vb != nil {
			data = vb.Get([]byte(version))
		}
		if data == nil {
			return fmt.Errorf("store: version %s@%s: %w", name, version, ErrNotFound)
		}
		v, err := decodeVersion(data)
		if err != nil {
			return err
		}
		if err := vb.Delete([]byte(version)); err != nil {
			return err
		}
		if k, _ := vb.Cursor().First(); k == nil {
			if err := versions.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		refs := tx.Bucket(bucketBlobRefs)
		if err := refs.Delete(blobRefKey(v.Digest, name, version)); err != nil {
			return err
		}
		prefix := appendLP(nil, v.Digest)
		if k, _ := refs.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return nil // another version still uses the blob
		}
		return tx.Bucket(bucketBlobs).Delete([]byte(v.Digest))
	}))
}

// SetActive makes version the connector's active version; [ErrNotFound] when that version is
// not stored.
func (s *Store) SetActive(ctx context.Context, name, version string) error {
	return s.notifyAfter(ChangeActive, name, s.update(ctx, func(tx *bolt.Tx) error {
		vb := tx.Bucket(bucketVersions).Bucket([]byte(name))
		if name == "" || version == "" || vb == nil || vb.Get([]byte(version)) == nil {
			return fmt.Errorf("store: version %s@%s: %w", name, version, ErrNotFound)
		}
		b := tx.Bucket(bucketActive)
		if bytes.Equal(b.Get([]byte(name)), []byte(version)) {
			return errUnchanged
		}
		return b.Put([]byte(name), []byte(version))
	}))
}

// Active returns the connector's active version; [ErrNotFound] when it has none.
func (s *Store) Active(ctx context.Context, name string) (string, error) {
	var version string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var v []byte
		if name != "" {
			v = tx.Bucket(bucketActive).Get([]byte(name))
		}
		if v == nil {
			return fmt.Errorf("store: active version of %s: %w", name, ErrNotFound)
		}
		version = string(v)
		return nil
	})
	return version, err
}

// ActiveAll returns every connector's active version, by connector name.
func (s *Store) ActiveAll(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketActive).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
