package natsstore

import (
	"errors"
	"testing"
	"time"
)

func TestOAuthStateSingleUse(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openTest(t, &Options{Now: func() time.Time { return now }})
	if _, err := s.TakeOAuthState(bg, "nothing-yet"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("take before any put: %v", err)
	}
	if err := s.PutOAuthState(bg, "h1", OAuthState{Connection: "gh", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOAuthState(bg, "h2", OAuthState{Connection: "gh", ExpiresAt: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	st, err := s.TakeOAuthState(bg, "h1")
	if err != nil || st.Connection != "gh" {
		t.Fatalf("take = %+v, %v", st, err)
	}
	if _, err := s.TakeOAuthState(bg, "h1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second take of the same state: %v, want ErrNotFound", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := s.TakeOAuthState(bg, "h2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("take of a lapsed state: %v, want ErrNotFound", err)
	}
	// Lapsed entries are dropped by the next put; the data survives a reopen.
	if err := s.PutOAuthState(bg, "h3", OAuthState{Connection: "gh", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, &Options{Now: func() time.Time { return now }})
	if st, err := s.TakeOAuthState(bg, "h3"); err != nil || st.Connection != "gh" {
		t.Errorf("after reopen: %+v, %v", st, err)
	}
	if s.MasterKeyID() != "k1" {
		t.Errorf("MasterKeyID = %q", s.MasterKeyID())
	}
}
