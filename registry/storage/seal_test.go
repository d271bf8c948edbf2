package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSealer(t *testing.T) {
	s := must[*Sealer](t)(GenerateSealer())
	ad := []byte("plugboard/connection/a")
	sealed := must[[]byte](t)(s.Seal([]byte("hello"), ad))
	if pt := must[[]byte](t)(s.Open(sealed, ad)); string(pt) != "hello" {
		t.Fatalf("Open = %q", pt)
	}
	if again := must[[]byte](t)(s.Seal([]byte("hello"), ad)); bytes.Equal(again, sealed) {
		t.Error("two seals of the same plaintext are equal: the nonce is not random")
	}
	if kid := must[string](t)(SealedKeyID(sealed)); kid != "k1" {
		t.Errorf("SealedKeyID = %q", kid)
	}
	var env map[string]any
	if err := json.Unmarshal(sealed, &env); err != nil || len(env) != 3 || env["kid"] != "k1" {
		t.Errorf("sealed document = %s", sealed)
	}

	other := must[*Sealer](t)(GenerateSealer())
	two, k2, err := s.WithNewKey()
	if err != nil || k2 != "k2" || two.ActiveKeyID() != "k2" || !slices.Equal(two.KeyIDs(), []string{"k1", "k2"}) {
		t.Fatalf("WithNewKey = %v, %q, %v", two, k2, err)
	}
	if s.ActiveKeyID() != "k1" || len(s.KeyIDs()) != 1 {
		t.Fatal("WithNewKey changed its receiver")
	}
	var flipped envelope
	if err := json.Unmarshal(sealed, &flipped); err != nil {
		t.Fatal(err)
	}
	flipped.CT[0] ^= 1
	altered := must[[]byte](t)(json.Marshal(flipped))
	tests := []struct {
		name   string
		sealer *Sealer
		sealed []byte
		ad     []byte
		want   error
	}{
		{"other additional data", s, sealed, []byte("plugboard/connection/b"), ErrDecrypt},
		{"other key, same id", other, sealed, ad, ErrDecrypt},
		{"altered ciphertext", s, altered, ad, ErrDecrypt},
		{"unknown key id", must[*Sealer](t)(two.Retain("k2")), sealed, ad, ErrUnknownKey},
		{"old key still opens after rotation", two, sealed, ad, nil},
		{"not JSON", s, []byte("nope"), ad, ErrInvalid},
		{"unknown field", s, bytes.Replace(sealed, []byte(`{`), []byte(`{"alg":"x",`), 1), ad, ErrInvalid},
		{"empty", s, nil, ad, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.sealer.Open(tt.sealed, tt.ad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open err = %v, want %v", err, tt.want)
			}
			if tt.want == nil && string(pt) != "hello" {
				t.Errorf("Open = %q", pt)
			}
		})
	}
	if _, err := two.Retain("k9"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Retain(unknown) = %v", err)
	}
	if _, err := two.Retain("k1"); err == nil {
		t.Error("Retain without the active key succeeded")
	}
	if str := two.String() + two.GoString(); bytes.Contains([]byte(str), []byte(base64Of(two.keys["k1"]))) {
		t.Error("String shows a key")
	}
}

func base64Of(b []byte) string { s, _ := json.Marshal(b); return string(s[1 : len(s)-1]) }

func TestNewSealerRefuses(t *testing.T) {
	key := make([]byte, KeySize)
	tests := []struct {
		name   string
		active string
		keys   map[string][]byte
	}{
		{"no keys", "k1", nil},
		{"short key", "k1", map[string][]byte{"k1": key[:16]}},
		{"active missing", "k2", map[string][]byte{"k1": key}},
		{"bad id", "k 1", map[string][]byte{"k 1": key}},
		{"empty id", "", map[string][]byte{"": key}},
	}
	for _, tt := range tests {
		if _, err := NewSealer(tt.active, tt.keys); err == nil {
			t.Errorf("%s: NewSealer succeeded", tt.name)
		}
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	s, _, err := must[*Sealer](t)(GenerateSealer()).WithNewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := s.writeKeyFile(path, true); err == nil {
		t.Error("exclusive write over an existing key file succeeded")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %#o", fi.Mode().Perm())
	}
	l := must[*Sealer](t)(LoadKeyFile(path))
	if l.ActiveKeyID() != "k2" || !slices.Equal(l.KeyIDs(), []string{"k1", "k2"}) {
		t.Fatalf("loaded %v", l)
	}
	sealed := must[[]byte](t)(s.Seal([]byte("x"), nil))
	if pt := must[[]byte](t)(l.Open(sealed, nil)); string(pt) != "x" {
		t.Errorf("loaded sealer opens %q", pt)
	}
}

// FuzzSealedDecoder feeds arbitrary bytes to the sealed-secret decoder and Open: they never
// panic, reject what is not a well-formed document, and open nothing but a real seal.
func FuzzSealedDecoder(f *testing.F) {
	key := bytes.Repeat([]byte{7}, KeySize)
	s, err := NewSealer("k1", map[string][]byte{"k1": key})
	if err != nil {
		f.Fatal(err)
	}
	ad := []byte("plugboard/connection/fuzz")
	good, err := s.Seal([]byte(`{"api_key":"fuzz"}`), ad)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		good,
		[]byte(`{"kid":"k1","nonce":"AAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA=="}`),
		[]byte(`{"kid":"k2","nonce":"","ct":""}`),
		[]byte(`{"kid":"","nonce":null,"ct":null}`),
		[]byte(`{"kid":"k1","nonce":"AAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA=="} {}`),
		[]byte(`{"kid":1}`),
		[]byte(`[]`),
		[]byte(`null`),
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, decErr := decodeEnvelope(data)
		pt, openErr := s.Open(data, ad)
		if decErr != nil {
			if openErr == nil || !errors.Is(openErr, ErrInvalid) {
				t.Fatalf("decode failed (%v) but Open gave %v", decErr, openErr)
			}
			return
		}
		if len(env.Nonce) != nonceSize || len(env.CT) < tagSize || checkKeyID(env.KID) != nil {
			t.Fatalf("decoder accepted a malformed envelope: %+v", env)
		}
		// What decodes encodes back to a document that decodes the same.
		again, err := decodeEnvelope(must[[]byte](t)(json.Marshal(env)))
		if err != nil || again.KID != env.KID || !bytes.Equal(again.Nonce, env.Nonce) || !bytes.Equal(again.CT, env.CT) {
			t.Fatalf("re-encoding changed the envelope: %+v, %v", again, err)
		}
		switch {
		case openErr == nil:
			if string(pt) != `{"api_key":"fuzz"}` {
				t.Fatalf("Open forged a plaintext: %q", pt)
			}
		case env.KID != "k1" && !errors.Is(openErr, ErrUnknownKey):
			t.Fatalf("unknown key id %q: %v", env.KID, openErr)
		case env.KID == "k1" && !errors.Is(openErr, ErrDecrypt):
			t.Fatalf("bad ciphertext: %v", openErr)
		}
	})
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
