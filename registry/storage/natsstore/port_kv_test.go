package natsstore

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"strconv"
)

// scopeSize reads a scope's stored size.
func scopeSize(t *testing.T, s *Store, connector, connection string) int64 {
	t.Helper()
	e, err := s.get(bg, s.state, kvScopeKey(connector, connection))
	if err != nil {
		t.Fatal(err)
	}
	if !e.exists {
		return 0
	}
	n, err := strconv.ParseInt(string(e.val), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func kvGet(t *testing.T, s *Store, connector, connection, key string) (string, bool) {
	t.Helper()
	v, found, err := s.KVGet(bg, connector, connection, key)
	if err != nil {
		t.Fatalf("KVGet(%s): %v", key, err)
	}
	return string(v), found
}

func TestKVRoundTrip(t *testing.T) {
	s := openTest(t, nil)
	if err := s.KVSet(bg, "github", "gh-main", "cursor", []byte(`"abc"`), 0); err != nil {
		t.Fatal(err)
	}
	if v, found := kvGet(t, s, "github", "gh-main", "cursor"); !found || v != `"abc"` {
		t.Fatalf("KVGet = %q, %v", v, found)
	}
	tests := []struct {
		name                       string
		connector, connection, key string
	}{
		{"other key", "github", "gh-main", "other"},
		{"other connection", "github", "gh-2", "cursor"},
		{"other connector", "gitlab", "gh-main", "cursor"},
		{"no connection", "github", "", "cursor"},
		{"prefix-sharing scope", "githu", "bgh-main", "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is another scope", func(t *testing.T) {
			if v, found := kvGet(t, s, tt.connector, tt.connection, tt.key); found {
				t.Errorf("found %q", v)
			}
		})
	}
	if err := s.KVSet(bg, "github", "", "k", []byte(`1`), 0); err != nil {
		t.Fatal(err)
	}
	if v, found := kvGet(t, s, "github", "", "k"); !found || v != "1" {
		t.Errorf("scope without a connection: %q, %v", v, found)
	}
	for range 2 { // deleting twice is fine
		if err := s.KVDelete(bg, "github", "gh-main", "cursor"); err != nil {
			t.Fatal(err)
		}
	}
	if _, found := kvGet(t, s, "github", "gh-main", "cursor"); found {
		t.Error("found after delete")
	}
	if n := scopeSize(t, s, "github", "gh-main"); n != 0 {
		t.Errorf("empty scope has size %d", n)
	}
}

func TestKVLimits(t *testing.T) {
	s := openTest(t, nil)
	big := bytes.Repeat([]byte("v"), MaxKVValueBytes)
	tests := []struct {
		name  string
		key   string
		value []byte
		ttl   time.Duration
		want  error
	}{
		{"key of 256 bytes", strings.Repeat("k", MaxKVKeyBytes), []byte("1"), 0, nil},
		{"key of 257 bytes", strings.Repeat("k", MaxKVKeyBytes+1), []byte("1"), 0, ErrTooLarge},
		{"value of 64 KiB", "v", big, 0, nil},
		{"value of 64 KiB + 1", "v2", append(big, 'x'), 0, ErrTooLarge},
		{"empty key", "", []byte("1"), 0, ErrInvalid},
		{"negative ttl", "neg", []byte("1"), -time.Second, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.KVSet(bg, "c", "conn", tt.key, tt.value, tt.ttl)
			if !errors.Is(err, tt.want) {
				t.Errorf("KVSet err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, _, err := s.KVGet(bg, "c", "conn", strings.Repeat("k", MaxKVKeyBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("KVGet with a long key: %v", err)
	}
	if err := s.KVDelete(bg, "c", "conn", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("KVDelete with an empty key: %v", err)
	}
}

func TestKVScopeTotal(t *testing.T) {
	s := openTest(t, nil)
	val := bytes.Repeat([]byte("x"), MaxKVValueBytes-2) // key "kNN" + value = 64 KiB + 1
	entry := int64(3 + len(val))
	n := int(MaxKVScopeBytes / entry) // 15 entries fit
	key := func(i int) string { return "k" + string(rune('a'+i/26)) + string(rune('a'+i%26)) }
	for i := range n {
		if err := s.KVSet(bg, "c", "conn", key(i), val, 0); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if got := scopeSize(t, s, "c", "conn"); got != int64(n)*entry {
		t.Fatalf("size = %d, want %d", got, int64(n)*entry)
	}
	if err := s.KVSet(bg, "c", "conn", key(n), val, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("entry past 1 MiB: err = %v, want ErrTooLarge", err)
	}
	if err := s.KVSet(bg, "other", "conn", key(n), val, 0); err != nil {
		t.Fatalf("another scope is not full: %v", err)
	}

	t.Run("an overwrite counts only the difference", func(t *testing.T) {
		if err := s.KVSet(bg, "c", "conn", key(0), val, 0); err != nil {
			t.Fatalf("same-size overwrite of a full scope: %v", err)
		}
		grown := bytes.Repeat([]byte("g"), MaxKVValueBytes) // 2 bytes more than val
		if err := s.KVSet(bg, "c", "conn", key(1), grown, 0); err != nil {
			t.Fatalf("growing an entry into the room left: %v", err)
		}
		room := MaxKVScopeBytes - scopeSize(t, s, "c", "conn")
		fill := make([]byte, room-1)
		if err := s.KVSet(bg, "c", "conn", "z", fill, 0); err != nil {
			t.Fatalf("filling the scope to exactly 1 MiB: %v", err)
		}
		if got := scopeSize(t, s, "c", "conn"); got != MaxKVScopeBytes {
			t.Fatalf("size = %d, want %d", got, MaxKVScopeBytes)
		}
		if err := s.KVSet(bg, "c", "conn", "z", append(fill, 0), 0); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("growing by one byte past 1 MiB: err = %v, want ErrTooLarge", err)
		}
		if err := s.KVSet(bg, "c", "conn", "z", fill, 0); err != nil {
			t.Fatalf("same-size overwrite at exactly 1 MiB: %v", err)
		}
		if err := s.KVSet(bg, "c", "conn", key(1), grown[:100], 0); err != nil {
			t.Fatal(err)
		}
		if got, want := scopeSize(t, s, "c", "conn"), int64(MaxKVScopeBytes-(len(grown)-100)); got != want {
			t.Errorf("size after shrinking = %d, want %d", got, want)
		}
		if err := s.KVDelete(bg, "c", "conn", "z"); err != nil {
			t.Fatal(err)
		}
		if err := s.KVSet(bg, "c", "conn", key(n), val, 0); err != nil {
			t.Errorf("a shrink frees room: %v", err)
		}
	})
	t.Run("a delete frees room", func(t *testing.T) {
		if err := s.KVSet(bg, "c", "conn", key(n+1), val, 0); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if err := s.KVDelete(bg, "c", "conn", key(2)); err != nil {
			t.Fatal(err)
		}
		if err := s.KVSet(bg, "c", "conn", key(n+1), val, 0); err != nil {
			t.Fatal(err)
		}
	})
}

func TestKVTTL(t *testing.T) {
	clk := newClock()
	s := openTest(t, &Options{Now: clk.Now})
	if err := s.KVSet(bg, "c", "conn", "short", []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.KVSet(bg, "c", "conn", "forever", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.KVSet(bg, "c", "conn", "huge-ttl", []byte("3"), time.Duration(1<<63-1)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute - time.Nanosecond)
	if _, found := kvGet(t, s, "c", "conn", "short"); !found {
		t.Fatal("expired early")
	}
	clk.Advance(time.Nanosecond)
	if _, found := kvGet(t, s, "c", "conn", "short"); found {
		t.Fatal("found at its expiry")
	}
	if got := scopeSize(t, s, "c", "conn"); got != int64(len("forever")+1+len("huge-ttl")+1) {
		t.Errorf("the expired entry was not purged on read: size %d", got)
	}
	clk.Advance(100 * 365 * 24 * time.Hour)
	for _, k := range []string{"forever", "huge-ttl"} {
		if _, found := kvGet(t, s, "c", "conn", k); !found {
			t.Errorf("%s expired", k)
		}
	}

	t.Run("setting again resets the ttl", func(t *testing.T) {
		if err := s.KVSet(bg, "c", "conn", "k", []byte("1"), time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.KVSet(bg, "c", "conn", "k", []byte("2"), 0); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		if v, found := kvGet(t, s, "c", "conn", "k"); !found || v != "2" {
			t.Errorf("got %q, %v", v, found)
		}
	})
	t.Run("a full scope purges expired entries before refusing", func(t *testing.T) {
		val := bytes.Repeat([]byte("x"), MaxKVValueBytes)
		for i := range 15 {
			ttl := time.Duration(0)
			if i%2 == 0 {
				ttl = time.Second
			}
			if err := s.KVSet(bg, "full", "conn", "e"+string(rune('a'+i)), val, ttl); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.KVSet(bg, "full", "conn", "new", val, 0); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("full scope: err = %v, want ErrTooLarge", err)
		}
		clk.Advance(time.Second)
		if err := s.KVSet(bg, "full", "conn", "new", val, 0); err != nil {
			t.Fatalf("after the ttl entries expired: %v", err)
		}
		if got, want := scopeSize(t, s, "full", "conn"), int64(7*(2+len(val))+len("new")+len(val)); got != want {
			t.Errorf("size = %d, want %d (7 entries kept and the new one)", got, want)
		}
	})
	t.Run("a purge that frees too little still refuses, and keeps the purge", func(t *testing.T) {
		val := bytes.Repeat([]byte("x"), MaxKVValueBytes)
		for i := range 15 {
			if err := s.KVSet(bg, "tight", "conn", "f"+string(rune('a'+i)), val, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.KVSet(bg, "tight", "conn", "tiny", make([]byte, 100), time.Second); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		if err := s.KVSet(bg, "tight", "conn", "big", val, 0); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if got, want := scopeSize(t, s, "tight", "conn"), int64(15*(2+len(val))); got != want {
			t.Errorf("size = %d, want %d (the expired entry purged)", got, want)
		}
	})
}
