package storagetest

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// kvCases are the promises of [storage.KV]: separate scopes, ttls on the wall clock, and the
// key, value and scope limits, a scope's size counted as the sum of len(key) + len(value) over
// its entries (storage.MaxKVScopeBytes), which the cases check to the byte.
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
		// ("githu", "bc1") spells the same bytes as ("github", "c1") run together.
		scopes := [][2]string{{"github", "c1"}, {"github", "c2"}, {"slack", "c1"}, {"github", ""}, {"githu", "bc1"}}
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
		_, _, err = st.KVGet(ctx(t), "github", "c1", strings.Repeat("k", storage.MaxKVKeyBytes+1))
		wantErr(t, err, storage.ErrTooLarge, "KVGet of a key over the limit")
		wantErr(t, st.KVDelete(ctx(t), "github", "c1", ""), storage.ErrInvalid, "KVDelete of an empty key")

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
	{"a scope's size is the sum of its keys and values: an overwrite counts its difference, a delete frees its entry", func(t *testing.T, st storage.Store) {
		val := make([]byte, storage.MaxKVValueBytes-2) // with a 3-byte key, an entry of 64 KiB + 1
		n := storage.MaxKVScopeBytes / (3 + len(val))  // 15 entries fit
		for i := range n {
			ok(t, st.KVSet(ctx(t), "github", "c1", fmt.Sprintf("k%02d", i), val, 0), "KVSet entry %d", i)
		}
		used := n * (3 + len(val))
		wantErr(t, st.KVSet(ctx(t), "github", "c1", fmt.Sprintf("k%02d", n), val, 0), storage.ErrTooLarge, "an entry past the scope's limit")
		ok(t, st.KVSet(ctx(t), "github", "c1", "k00", val, 0), "a same-size overwrite in a full scope")
		grown := make([]byte, storage.MaxKVValueBytes)
		ok(t, st.KVSet(ctx(t), "github", "c1", "k01", grown, 0), "growing an entry into the room left")
		used += len(grown) - len(val)
		ok(t, st.KVSet(ctx(t), "github", "c1", "k01", grown[:100], 0), "shrinking an entry")
		used -= len(grown) - 100
		ok(t, st.KVDelete(ctx(t), "github", "c1", "k02"), "KVDelete")
		used -= 3 + len(val)
		fillRoom(t, st, "github", "c1", storage.MaxKVScopeBytes-used)
		ok(t, st.KVSet(ctx(t), "github", "c1", "k00", val, 0), "a same-size overwrite at exactly the limit")
		wantErr(t, st.KVSet(ctx(t), "github", "c1", "k00", append(val, 0), 0), storage.ErrTooLarge, "growing an entry by one byte at exactly the limit")
	}},
	{"setting an entry again replaces its ttl", func(t *testing.T, st storage.Store) {
		ok(t, st.KVSet(ctx(t), "github", "c1", "kept", []byte("v1"), shortTTL), "KVSet with a ttl")
		ok(t, st.KVSet(ctx(t), "github", "c1", "kept", []byte("v2"), 0), "KVSet again without one")
		ok(t, st.KVSet(ctx(t), "github", "c1", "lapses", []byte("v1"), 0), "KVSet without a ttl")
		ok(t, st.KVSet(ctx(t), "github", "c1", "lapses", []byte("v2"), shortTTL), "KVSet again with one")
		expiryMarker(t, st, shortTTL)()
		if v, found, err := st.KVGet(ctx(t), "github", "c1", "kept"); err != nil || !found || string(v) != "v2" {
			t.Fatalf("an entry set again without a ttl, past its first ttl: %q, found %v, %v", v, found, err)
		}
		if _, found, err := st.KVGet(ctx(t), "github", "c1", "lapses"); err != nil || found {
			t.Fatalf("an entry set again with a ttl, past it: found %v, %v", found, err)
		}
	}},
	{"a ttl too long for the clock does not expire the entry at once", func(t *testing.T, st storage.Store) {
		ok(t, st.KVSet(ctx(t), "github", "c1", "k", []byte("v"), time.Duration(math.MaxInt64)), "KVSet with the longest ttl")
		if _, found, err := st.KVGet(ctx(t), "github", "c1", "k"); err != nil || !found {
			t.Fatalf("an entry with the longest ttl: found %v, %v", found, err)
		}
	}},
	{"a full scope purges its expired entries before it refuses a set", func(t *testing.T, st storage.Store) {
		val := make([]byte, storage.MaxKVValueBytes) // with a 2-byte key, 15 entries fill the scope
		for i := range 7 {
			ok(t, st.KVSet(ctx(t), "github", "full", fmt.Sprintf("e%c", 'a'+i), val, 0), "KVSet entry %d", i)
		}
		for i := 7; i < 15; i++ {
			ok(t, st.KVSet(ctx(t), "github", "full", fmt.Sprintf("e%c", 'a'+i), val, fillTTL), "KVSet entry %d with a ttl", i)
		}
		expired := expiryMarker(t, st, fillTTL)
		wantErr(t, st.KVSet(ctx(t), "github", "full", "new", val, 0), storage.ErrTooLarge, "a set into the full scope before its entries expire")
		expired() // none of the expired entries is read: only the set can purge them
		ok(t, st.KVSet(ctx(t), "github", "full", "new", val, 0), "a set into the full scope once 8 of its entries expired")
		fillRoom(t, st, "github", "full", storage.MaxKVScopeBytes-7*(2+len(val))-(3+len(val)))
	}},
	{"a purge that frees too little still refuses the set", func(t *testing.T, st storage.Store) {
		val := make([]byte, storage.MaxKVValueBytes)
		for i := range 15 {
			ok(t, st.KVSet(ctx(t), "github", "tight", fmt.Sprintf("f%c", 'a'+i), val, 0), "KVSet entry %d", i)
		}
		ok(t, st.KVSet(ctx(t), "github", "tight", "tiny", make([]byte, 100), shortTTL), "KVSet with a ttl")
		expiryMarker(t, st, shortTTL)()
		wantErr(t, st.KVSet(ctx(t), "github", "tight", "big", val, 0), storage.ErrTooLarge, "a set that the purge of one small entry does not make room for")
		fillRoom(t, st, "github", "tight", storage.MaxKVScopeBytes-15*(2+len(val)))
	}},
}

// fillTTL is the ttl of the entries of a scope the suite fills and then waits to expire: long
// enough for the fill, and the set it refuses, to end before it.
const fillTTL = time.Second

// expiryMarker sets an entry with ttl in a scope of its own and returns a function that waits
// until it has expired, so that every entry set before it with the same ttl has expired too
// without the test reading them (a read may purge an expired entry).
func expiryMarker(t *testing.T, st storage.Store, ttl time.Duration) func() {
	t.Helper()
	ok(t, st.KVSet(ctx(t), "storagetest", "marker", "m", nil, ttl), "KVSet of the expiry marker")
	return func() {
		t.Helper()
		waitFor(t, ttl+expiryWait, "the expiry marker expires", func() (bool, string) {
			_, found, err := st.KVGet(ctx(t), "storagetest", "marker", "m")
			ok(t, err, "KVGet of the expiry marker")
			return !found, "still found"
		})
	}
}

// fillRoom sets entries into a kv scope until room more bytes (len(key) + len(value) each)
// are used, then checks that the scope is full to the byte: an entry of one byte more is
// ErrTooLarge. It checks the backend's count of a scope's size through the interface alone.
func fillRoom(t *testing.T, st storage.Store, connector, connection string, room int) {
	t.Helper()
	const keyLen = len("room000")
	for i := 0; room > 0; i++ {
		if room < keyLen {
			t.Fatalf("fillRoom: %d bytes left, too few for a key", room)
		}
		n := min(room-keyLen, storage.MaxKVValueBytes)
		if rest := room - keyLen - n; rest > 0 && rest < keyLen {
			n -= keyLen // leave enough for the next key
		}
		ok(t, st.KVSet(ctx(t), connector, connection, fmt.Sprintf("room%03d", i), make([]byte, n), 0), "KVSet filling the %d bytes left", room)
		room -= keyLen + n
	}
	wantErr(t, st.KVSet(ctx(t), connector, connection, "x", nil, 0), storage.ErrTooLarge, "a one-byte entry in a scope filled to its limit")
}
