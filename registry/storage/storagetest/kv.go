package storagetest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

var kvCases = []testCase{
	{"get, set, overwrite and delete", func(t *testing.T, st storage.Store) {
		if _, found, err := st.KVGet(ctx(t), "github", "c1", "k"); err != nil || found {
			t.Fatalf("KVGet of a missing key: found %v, %v", found, err)
		}
		ok(t, st.KVSet(ctx(t), "github", "c1", "k", []byte("v1"), 0), "KVSet")
		ok(t, st.KVSet(ctx(t), "github", "c1", "k", []byte("v2"), 0), "KVSet overwrite")
		v, found, err := st.KVGet(ctx(t), "github", "c1", "k")
		if err != nil || !found || string(v) != "v2" {
			t.Fatalf("KVGet = %q, %v, %v; want v2", v, found, err)
		}
		v[0] = 'X' // the caller owns the copy
		if again, _, _ := st.KVGet(ctx(t), "github", "c1", "k"); string(again) != "v2" {
			t.Fatalf("changing a returned value changed the stored one: %q", again)
		}
		ok(t, st.KVSet(ctx(t), "github", "c1", "empty", nil, 0), "KVSet of an empty value")
		if v, found, err := st.KVGet(ctx(t), "github", "c1", "empty"); err != nil || !found || len(v) != 0 {
			t.Fatalf("an empty value: %q, found %v, %v; want found and empty", v, found, err)
		}
		ok(t, st.KVDelete(ctx(t), "github", "c1", "k"), "KVDelete")
		if _, found, err := st.KVGet(ctx(t), "github", "c1", "k"); err != nil || found {
			t.Fatalf("KVGet after KVDelete: found %v, %v", found, err)
		}
		ok(t, st.KVDelete(ctx(t), "github", "c1", "k"), "KVDelete of a missing key is not an error")
	}},
	{"scopes are separate", func(t *testing.T, st storage.Store) {
		scopes := [][2]string{{"github", "c1"}, {"github", "c2"}, {"slack", "c1"}, {"github", ""}}
		for _, sc := range scopes {
			ok(t, st.KVSet(ctx(t), sc[0], sc[1], "k", []byte(sc[0]+"/"+sc[1]), 0), "KVSet %v", sc)
		}
		for _, sc := range scopes {
			if v, found, err := st.KVGet(ctx(t), sc[0], sc[1], "k"); err != nil || !found || string(v) != sc[0]+"/"+sc[1] {
				t.Fatalf("scope %v: %q, %v, %v", sc, v, found, err)
			}
		}
	}},
	{"an entry with a ttl expires; ttl 0 never does", func(t *testing.T, st storage.Store) {
		ok(t, st.KVSet(ctx(t), "github", "c1", "short", []byte("v"), shortTTL), "KVSet with ttl")
		ok(t, st.KVSet(ctx(t), "github", "c1", "forever", []byte("v"), 0), "KVSet without ttl")
		if _, found, err := st.KVGet(ctx(t), "github", "c1", "short"); err != nil || !found {
			t.Fatalf("an entry before its ttl: found %v, %v", found, err)
		}
		waitFor(t, expiryWait, "the entry expires", func() (bool, string) {
			_, found, err := st.KVGet(ctx(t), "github", "c1", "short")
			ok(t, err, "KVGet")
			return !found, "still found"
		})
		if _, found, err := st.KVGet(ctx(t), "github", "c1", "forever"); err != nil || !found {
			t.Fatalf("an entry without ttl: found %v, %v", found, err)
		}
		wantErr(t, st.KVSet(ctx(t), "github", "c1", "neg", []byte("v"), -time.Second), storage.ErrInvalid, "KVSet with a negative ttl")
	}},
	{"limits: key, value and scope size are ErrTooLarge; an empty key is ErrInvalid", func(t *testing.T, st storage.Store) {
		wantErr(t, st.KVSet(ctx(t), "github", "c1", strings.Repeat("k", storage.MaxKVKeyBytes+1), []byte("v"), 0), storage.ErrTooLarge, "a key over the limit")
		ok(t, st.KVSet(ctx(t), "github", "c1", strings.Repeat("k", storage.MaxKVKeyBytes), []byte("v"), 0), "a key at the limit")
		wantErr(t, st.KVSet(ctx(t), "github", "c1", "big", make([]byte, storage.MaxKVValueBytes+1), 0), storage.ErrTooLarge, "a value over the limit")
		wantErr(t, st.KVSet(ctx(t), "github", "c1", "", []byte("v"), 0), storage.ErrInvalid, "an empty key")
		_, _, err := st.KVGet(ctx(t), "github", "c1", "")
		wantErr(t, err, storage.ErrInvalid, "KVGet of an empty key")

		// Fill a scope to just under its limit with values at the value limit.
		val := bytes.Repeat([]byte("x"), storage.MaxKVValueBytes)
		n := 0
		used := 0
		for ; used+len(val)+8 <= storage.MaxKVScopeBytes; n++ {
			key := fmt.Sprintf("f%03d", n)
			ok(t, st.KVSet(ctx(t), "github", "full", key, val, 0), "filling the scope, entry %d", n)
			used += len(key) + len(val)
		}
		wantErr(t, st.KVSet(ctx(t), "github", "full", "over", val, 0), storage.ErrTooLarge, "an entry that passes the scope's limit")
		// Replacing an entry does not count the one it replaces.
		ok(t, st.KVSet(ctx(t), "github", "full", "f000", val, 0), "replacing an entry of a full scope")
		// Another scope is not affected.
		ok(t, st.KVSet(ctx(t), "github", "other", "k", val, 0), "another scope")
		// Deleting makes room.
		ok(t, st.KVDelete(ctx(t), "github", "full", "f001"), "KVDelete")
		ok(t, st.KVSet(ctx(t), "github", "full", "over", val, 0), "an entry once room was made")
	}},
}
