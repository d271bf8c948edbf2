package registry

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestNeedsRefresh pins API.md's rule: refresh when less than a third of the token's lifetime
// or 60 s remains, whichever is smaller.
func TestNeedsRefresh(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lifetime time.Duration // zero: no expiry known
		elapsed  time.Duration
		want     bool
	}{
		{"an hour's token with 61 s left is fresh", time.Hour, time.Hour - 61*time.Second, false},
		{"an hour's token with 59 s left is refreshed (60 s < a third)", time.Hour, time.Hour - 59*time.Second, true},
		{"a 90 s token with 31 s left is fresh", 90 * time.Second, 59 * time.Second, false},
		{"a 90 s token with 29 s left is refreshed (a third < 60 s)", 90 * time.Second, 61 * time.Second, true},
		{"an expired token is refreshed", time.Hour, 2 * time.Hour, true},
		{"a token without expiry is never refreshed ahead", 0, 100 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &oauthMeta{ObtainedAt: t0}
			if tt.lifetime > 0 {
				m.ExpiresAt = t0.Add(tt.lifetime)
			}
			if got := m.needsRefresh(t0.Add(tt.elapsed)); got != tt.want {
				t.Errorf("needsRefresh = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestApplyTokenKeepsRefreshTokenWhenNoneIsSent(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m, cred := &oauthMeta{LastError: "old"}, Credentials{RefreshToken: "r1"}
	applyToken(m, &cred, &oauth2.Token{AccessToken: "a2", ExpiresIn: 600}, now)
	if cred.AccessToken != "a2" || cred.RefreshToken != "r1" || !m.ExpiresAt.Equal(now.Add(10*time.Minute)) || m.LastError != "" {
		t.Errorf("after a response without refresh token: %+v %+v", cred, m)
	}
	applyToken(m, &cred, &oauth2.Token{AccessToken: "a3", RefreshToken: "r2"}, now)
	if cred.RefreshToken != "r2" || !m.ExpiresAt.IsZero() {
		t.Errorf("a rotated refresh token replaces the old one: %+v %+v", cred, m)
	}
}

// TestTokenErrors: refused grants (4xx) are told apart from failures, and messages carry the
// RFC 6749 code and description but never a secret or the response body.
func TestTokenErrors(t *testing.T) {
	cred := Credentials{ClientSecret: "cs-SECRET", RefreshToken: "rt-SECRET"}
	retrieve := func(status int, code, desc string) error {
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, Body: []byte(`{"echo":"rt-SECRET"}`), ErrorCode: code, ErrorDescription: desc}
	}
	tests := []struct {
		name    string
		err     error
		refused bool
		msg     string
	}{
		{"invalid_grant is refused", retrieve(400, "invalid_grant", "revoked"), true, "the token endpoint answered 400 invalid_grant: revoked"},
		{"invalid_client is refused", retrieve(401, "invalid_client", ""), true, "the token endpoint answered 401 invalid_client"},
		{"a 503 is a failure", retrieve(503, "", ""), false, "the token endpoint answered 503"},
		{"a description echoing a secret is scrubbed", retrieve(400, "invalid_grant", "bad token rt-SECRET"), true, "bad token [redacted]"},
		{"no refresh token is refused", errNoRefreshToken, true, "no refresh token"},
		{"a network error is a failure", errors.New("dial tcp: connection refused"), false, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if refused(tt.err) != tt.refused {
				t.Errorf("refused = %v", !tt.refused)
			}
			msg := describeTokenError(tt.err, cred)
			if !strings.Contains(msg, tt.msg) || strings.Contains(msg, "SECRET") || strings.Contains(msg, "echo") {
				t.Errorf("message %q", msg)
			}
		})
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://auth.example/token", true},
		{"http://127.0.0.1:8080/token", true},
		{"", false},
		{"/token", false},
		{"ftp://auth.example/token", false},
		{"https://user:pw@auth.example/token", false},
		{"https://auth.example/token#frag", false},
	} {
		if err := checkEndpoint("token_url", tt.url, true); (err == nil) != tt.ok {
			t.Errorf("checkEndpoint(%q) = %v", tt.url, err)
		}
	}
}
