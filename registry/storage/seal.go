package storage

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/plugboard/plugboard/abi"
)

// KeySize is the size in bytes of a master key (AES-256).
const KeySize = 32

const (
	nonceSize   = 12 // AES-GCM standard nonce
	tagSize     = 16 // AES-GCM tag
	maxKeyIDLen = 64
)

// Sealer seals and opens secrets with AES-256-GCM under a set of master keys, each known by a
// short id. New ciphertexts use the active key; any key of the set opens the ciphertexts that
// name it. A Sealer is immutable and safe for concurrent use: rotation builds a new one
// ([Sealer.WithNewKey], [Sealer.Retain]) and swaps it in.
//
// A sealed secret is the JSON document
//
//	{"kid":"k1","nonce":"<base64, 12 bytes>","ct":"<base64, ciphertext and 16-byte tag>"}
//
// The key id beside each ciphertext is what lets the master key rotate without a format change:
// during a rotation old and new ciphertexts live side by side, each opened by its own key.
type Sealer struct {
	active string
	keys   map[string][]byte
	aeads  map[string]cipher.AEAD
}

// envelope is the stored form of a sealed secret.
type envelope struct {
	KID   string `json:"kid"`
	Nonce []byte `json:"nonce"`
	CT    []byte `json:"ct"`
}

// keyFile is the master key file: {"active":"k1","keys":{"k1":"<base64 32 bytes>"}}.
type keyFile struct {
	Active string            `json:"active"`
	Keys   map[string][]byte `json:"keys"`
}

// NewSealer returns a Sealer over keys (id to 32-byte key) whose active key is active. The key
// bytes are copied.
func NewSealer(active string, keys map[string][]byte) (*Sealer, error) {
	s, err := newSealer(active, keys)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

// newSealer is NewSealer with errors that do not name the package.
func newSealer(active string, keys map[string][]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no master key")
	}
	s := &Sealer{active: active, keys: make(map[string][]byte, len(keys)), aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, k := range keys {
		if err := checkKeyID(id); err != nil {
			return nil, err
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("master key %q is %d bytes, want %d", id, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("master key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("master key %q: %w", id, err)
		}
		s.keys[id] = slices.Clone(k)
		s.aeads[id] = aead
	}
	if _, ok := s.keys[active]; !ok {
		return nil, fmt.Errorf("active master key %q is not among the keys", active)
	}
	return s, nil
}

// GenerateSealer returns a Sealer with one new random key, "k1", active.
func GenerateSealer() (*Sealer, error) {
	k, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return NewSealer("k1", map[string][]byte{"k1": k})
}

// ActiveKeyID returns the id of the key new ciphertexts are sealed with.
func (s *Sealer) ActiveKeyID() string { return s.active }

// KeyIDs returns the ids of every key the Sealer holds, sorted.
func (s *Sealer) KeyIDs() []string { return slices.Sorted(maps.Keys(s.keys)) }

// WithNewKey returns a copy of s holding one more random key, which is active, and that key's
// id: "k<n>" with n one more than the largest n of the ids "k<n>" held, so an id is never
// reused while the newest key lives. s is unchanged.
func (s *Sealer) WithNewKey() (*Sealer, string, error) {
	k, err := newKey()
	if err != nil {
		return nil, "", fmt.Errorf("store: %w", err)
	}
	n := 0
	for id := range s.keys {
		if i, err := strconv.Atoi(strings.TrimPrefix(id, "k")); err == nil && strings.HasPrefix(id, "k") && i > n {
			n = i
		}
	}
	id := "k" + strconv.Itoa(n+1)
	keys := maps.Clone(s.keys)
	keys[id] = k
	next, err := NewSealer(id, keys)
	return next, id, err
}

// Retain returns a copy of s that holds only the keys named by ids (which must include the
// active key). s is unchanged.
func (s *Sealer) Retain(ids ...string) (*Sealer, error) {
	keys := make(map[string][]byte, len(ids))
	for _, id := range ids {
		k, ok := s.keys[id]
		if !ok {
			return nil, fmt.Errorf("store: master key %q: %w", id, ErrUnknownKey)
		}
		keys[id] = k
	}
	return NewSealer(s.active, keys)
}

// Seal encrypts plaintext with the active key and a new random nonce, binding it to
// additionalData (which is authenticated, not stored: Open needs the same bytes). It returns the
// sealed document.
func (s *Sealer) Seal(plaintext, additionalData []byte) ([]byte, error) {
	sealed, err := s.SealWith(s.active, plaintext, additionalData)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return sealed, nil
}

// SealWith is Seal with the key kid instead of the active one; it fails with [ErrUnknownKey]
// when the Sealer does not hold kid.
func (s *Sealer) SealWith(kid string, plaintext, additionalData []byte) ([]byte, error) {
	aead, ok := s.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("master key %q: %w", kid, ErrUnknownKey)
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("reading a nonce: %w", err)
	}
	return json.Marshal(envelope{KID: kid, Nonce: nonce, CT: aead.Seal(nil, nonce, plaintext, additionalData)})
}

// Open decrypts a document made by Seal with the same additionalData. It fails with
// [ErrUnknownKey] when the document names a key the Sealer does not hold, with [ErrDecrypt] when
// the key does not open it (wrong key, altered ciphertext or other additional data), and with
// [ErrInvalid] when it is not a sealed document. The error never includes the plaintext.
func (s *Sealer) Open(sealed, additionalData []byte) ([]byte, error) {
	pt, err := s.OpenRaw(sealed, additionalData)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return pt, nil
}

// OpenRaw is Open with errors that do not name the package.
func (s *Sealer) OpenRaw(sealed, additionalData []byte) ([]byte, error) {
	env, err := decodeEnvelope(sealed)
	if err != nil {
		return nil, err
	}
	aead, ok := s.aeads[env.KID]
	if !ok {
		return nil, fmt.Errorf("secret sealed with master key %q, which the key file does not hold: %w", env.KID, ErrUnknownKey)
	}
	pt, err := aead.Open(nil, env.Nonce, env.CT, additionalData)
	if err != nil {
		return nil, fmt.Errorf("secret sealed with master key %q: %w", env.KID, ErrDecrypt)
	}
	return pt, nil
}

// SealedKeyID returns the id of the key a sealed document was sealed with.
func SealedKeyID(sealed []byte) (string, error) {
	env, err := decodeEnvelope(sealed)
	if err != nil {
		return "", err
	}
	return env.KID, nil
}

// decodeEnvelope decodes a sealed document strictly and checks its shape.
func decodeEnvelope(sealed []byte) (envelope, error) {
	var env envelope
	if err := abi.DecodeStrict(sealed, &env); err != nil {
		return envelope{}, fmt.Errorf("sealed secret: %w: %w", ErrInvalid, err)
	}
	if err := checkKeyID(env.KID); err != nil {
		return envelope{}, fmt.Errorf("sealed secret: %w", err)
	}
	if len(env.Nonce) != nonceSize {
		return envelope{}, fmt.Errorf("sealed secret: nonce is %d bytes, want %d: %w", len(env.Nonce), nonceSize, ErrInvalid)
	}
	if len(env.CT) < tagSize {
		return envelope{}, fmt.Errorf("sealed secret: ciphertext is %d bytes, shorter than the tag: %w", len(env.CT), ErrInvalid)
	}
	return env, nil
}

// checkKeyID accepts 1 to 64 of [A-Za-z0-9._-].
func checkKeyID(id string) error {
	if id == "" || len(id) > maxKeyIDLen {
		return fmt.Errorf("master key id %q must be 1 to %d characters: %w", id, maxKeyIDLen, ErrInvalid)
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("master key id %q may hold only letters, digits, '.', '_' and '-': %w", id, ErrInvalid)
		}
	}
	return nil
}

func newKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generating a master key: %w", err)
	}
	return k, nil
}

// LoadKeyFile reads a master key file. It refuses a file that is not a regular file, that its
// group or others may read or write (mode must be 0600 or stricter), or that is malformed
// (unknown fields, a key that is not 32 bytes of standard base64, an active id that names no
// key). A missing file is an error wrapping [fs.ErrNotExist].
func LoadKeyFile(path string) (*Sealer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("store: master key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("store: master key file %s has mode %#o: it must not be accessible to group or others (chmod 600 %s)", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("store: master key file: %w", err)
	}
	var kf keyFile
	if err := abi.DecodeStrict(data, &kf); err != nil {
		return nil, fmt.Errorf("store: master key file %s is malformed (want {\"active\":\"k1\",\"keys\":{\"k1\":\"<base64 of 32 bytes>\"}}): %w", path, err)
	}
	s, err := newSealer(kf.Active, kf.Keys)
	if err != nil {
		return nil, fmt.Errorf("store: master key file %s is malformed: %w", path, err)
	}
	return s, nil
}

// WriteKeyFile writes the Sealer's keys to path (mode 0600), replacing any file there
// atomically: the new content is written and synced to a temporary file in the same directory,
// renamed over path, and the directory is synced. A crash leaves either the old or the new file.
func (s *Sealer) WriteKeyFile(path string) error {
	return s.writeKeyFile(path, false)
}

// writeKeyFile writes the key file; exclusive makes it fail with fs.ErrExist if path exists.
// WriteNewKeyFile is WriteKeyFile that fails when path already exists, so two processes
// creating the first key cannot overwrite each other's.
func (s *Sealer) WriteNewKeyFile(path string) error { return s.writeKeyFile(path, true) }

func (s *Sealer) writeKeyFile(path string, exclusive bool) (err error) {
	data, err := json.Marshal(keyFile{Active: s.active, Keys: s.keys})
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("store: writing master key file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("store: writing master key file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("store: writing master key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("store: writing master key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store: writing master key file: %w", err)
	}
	if exclusive {
		// A hard link fails when path exists, so two processes never both create a key.
		err = os.Link(tmp.Name(), path)
	} else {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("store: writing master key file: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("store: syncing %s: %w", dir, err)
	}
	return nil
}

// String describes the Sealer without its keys.
func (s *Sealer) String() string {
	return fmt.Sprintf("store.Sealer{active: %q, keys: %q}", s.active, s.KeyIDs())
}

// GoString describes the Sealer without its keys.
func (s *Sealer) GoString() string { return s.String() }
