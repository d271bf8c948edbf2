package egress

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

const secret = "s3cr3t-Key/+="

func TestCredentialInjection(t *testing.T) {
	up := newUpstream(t, nil)
	res := newResolver().set("api.test", "127.0.0.1")
	origin := up.origin("api.test")

	tests := []struct {
		name       string
		cred       *Credential
		connection []string // nil: the call has no connection
		req        *abi.HTTPRequest
		wantHeader map[string]string // "" value: header absent
		wantQuery  url.Values        // nil: not checked
	}{
		{
			name:       "api_key in a header with a prefix",
			cred:       &Credential{Type: abi.AuthAPIKey, APIKey: secret, APIKeyIn: &abi.APIKeyAuth{In: "header", Name: "x-api-key", Prefix: "Token "}},
			connection: []string{origin},
			req:        get(up.url("api.test", "/x")),
			wantHeader: map[string]string{"X-Api-Key": "Token " + secret},
		},
		{
			name:       "api_key in the query replaces a guest parameter and keeps the others",
			cred:       &Credential{Type: abi.AuthAPIKey, APIKey: secret, APIKeyIn: &abi.APIKeyAuth{In: "query", Name: "api_key"}},
			connection: []string{origin},
			req:        get(up.url("api.test", "/x?b=2&api_key=guest&a=%2F1")),
			wantQuery:  url.Values{"a": {"/1"}, "b": {"2"}, "api_key": {secret}},
		},
		{
			name:       "basic",
			cred:       &Credential{Type: abi.AuthBasic, Username: "bob", Password: secret},
			connection: []string{origin},
			req:        get(up.url("api.test", "/x")),
			wantHeader: map[string]string{"Authorization": "Basic Ym9iOnMzY3IzdC1LZXkvKz0="},
		},
		{
			name:       "oauth2 bearer",
			cred:       &Credential{Type: abi.AuthOAuth2, AccessToken: secret},
			connection: []string{origin},
			req:        get(up.url("api.test", "/x")),
			wantHeader: map[string]string{"Authorization": "Bearer " + secret},
		},
		{
			name:       "guest header of the same name is replaced, whatever its case",
			cred:       &Credential{Type: abi.AuthOAuth2, AccessToken: secret},
			connection: []string{origin},
			req:        &abi.HTTPRequest{Method: "GET", URL: up.url("api.test", "/x"), Headers: map[string]string{"authorization": "Bearer guest-made"}},
			wantHeader: map[string]string{"Authorization": "Bearer " + secret},
		},
		{
			name:       "guest api_key header of the same name is replaced",
			cred:       &Credential{Type: abi.AuthAPIKey, APIKey: secret, APIKeyIn: &abi.APIKeyAuth{In: "header", Name: "X-Api-Key"}},
			connection: []string{origin},
			req:        &abi.HTTPRequest{Method: "GET", URL: up.url("api.test", "/x"), Headers: map[string]string{"X-API-KEY": "guest"}},
			wantHeader: map[string]string{"X-Api-Key": secret},
		},
		{
			name:       "auth false sends none and keeps the guest's header",
			cred:       &Credential{Type: abi.AuthOAuth2, AccessToken: secret},
			connection: []string{origin},
			req:        &abi.HTTPRequest{Method: "GET", URL: up.url("api.test", "/x"), Auth: ptr(false), Headers: map[string]string{"Authorization": "Bearer guest-made"}},
			wantHeader: map[string]string{"Authorization": "Bearer guest-made"},
		},
		{
			name:       "auth false sends no query key",
			cred:       &Credential{Type: abi.AuthAPIKey, APIKey: secret, APIKeyIn: &abi.APIKeyAuth{In: "query", Name: "api_key"}},
			connection: []string{origin},
			req:        &abi.HTTPRequest{Method: "GET", URL: up.url("api.test", "/x?a=1"), Auth: ptr(false)},
			wantQuery:  url.Values{"a": {"1"}},
		},
		{
			name:       "a call without a connection injects nothing",
			cred:       &Credential{Type: abi.AuthOAuth2, AccessToken: secret},
			connection: nil,
			req:        get(up.url("api.test", "/x")),
			wantHeader: map[string]string{"Authorization": ""},
		},
		{
			name:       "auth true is the default",
			cred:       &Credential{Type: abi.AuthBasic, Username: "bob", Password: secret},
			connection: []string{origin},
			req:        &abi.HTTPRequest{Method: "GET", URL: up.url("api.test", "/x"), Auth: ptr(true)},
			wantHeader: map[string]string{"Authorization": "Basic Ym9iOnMzY3IzdC1LZXkvKz0="},
		},
		{
			name:       "type none injects nothing",
			cred:       &Credential{Type: abi.AuthNone},
			connection: []string{origin},
			req:        get(up.url("api.test", "/x")),
			wantHeader: map[string]string{"Authorization": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newClient(t, Config{AllowNetworks: loopback, Resolver: res})
			var rec records
			g := &Grant{ManifestOrigins: []string{origin}, ConnectionOrigins: tt.connection, Credential: tt.cred}
			got := echoed(t, c.Do(context.Background(), g, nil, tt.req, rec.add))
			for name, want := range tt.wantHeader {
				if v := got.Header.Values(name); want == "" && len(v) != 0 || want != "" && (len(v) != 1 || v[0] != want) {
					t.Errorf("%s = %q, want %q", name, v, want)
				}
			}
			if tt.wantQuery != nil {
				q, err := url.ParseQuery(got.Query)
				if err != nil {
					t.Fatal(err)
				}
				if q.Encode() != tt.wantQuery.Encode() {
					t.Errorf("query = %v, want %v", q, tt.wantQuery)
				}
			}
			for _, o := range rec.list() {
				if strings.Contains(o.Origin+o.Err+o.Method, "s3cr3t") {
					t.Errorf("record %+v holds the secret", o)
				}
			}
		})
	}
}

func TestCredentialRefused(t *testing.T) {
	tests := []struct {
		name string
		cred *Credential
	}{
		{name: "unknown credential type is denied", cred: &Credential{Type: "kerberos", APIKey: secret}},
		{name: "api_key without settings is denied", cred: &Credential{Type: abi.AuthAPIKey, APIKey: secret}},
		{name: "api_key in a cookie is denied", cred: &Credential{Type: abi.AuthAPIKey, APIKey: secret, APIKeyIn: &abi.APIKeyAuth{In: "cookie", Name: "k"}}},
		{name: "api_key with an invalid header name is denied", cred: &Credential{Type: abi.AuthAPIKey, APIKey: secret, APIKeyIn: &abi.APIKeyAuth{In: "header", Name: "X Key"}}},
		{name: "token with a newline is denied", cred: &Credential{Type: abi.AuthOAuth2, AccessToken: secret + "\r\nX-Evil: 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			c, dials := newClient(t, Config{AllowNetworks: loopback})
			o := up.origin("127.0.0.1")
			b := NewBudget(5)
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}, ConnectionOrigins: []string{o}, Credential: tt.cred}, b, get(o+"/x"), nil)
			wantErr(t, got, "denied")
			if strings.Contains(got.Error.Message, "s3cr3t") {
				t.Errorf("message %q holds the secret", got.Error.Message)
			}
			if len(dials.list()) != 0 || b.Used() != 0 {
				t.Errorf("a refused credential was sent")
			}
		})
	}
}

func TestOAuth2RefreshOn401(t *testing.T) {
	tests := []struct {
		name         string
		fresh        string // what Refresh returns
		refreshErr   error
		budget       int
		wantStatus   int
		wantRetries  int
		wantRequests int
	}{
		{name: "token refreshed once on 401 and the request sent again", fresh: "fresh", budget: 5, wantStatus: 200, wantRetries: 1, wantRequests: 2},
		{name: "a refreshed token that is also refused answers the 401", fresh: "also-stale", budget: 5, wantStatus: 401, wantRetries: 1, wantRequests: 2},
		{name: "a failed refresh answers the 401", refreshErr: errors.New("token endpoint down: " + secret), budget: 5, wantStatus: 401, wantRequests: 1},
		{name: "no budget left for the retry answers the 401", fresh: "fresh", budget: 1, wantStatus: 401, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer fresh" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			var calls atomic.Int32
			cred := &Credential{Type: abi.AuthOAuth2, AccessToken: "stale", Refresh: func(ctx context.Context) (string, error) {
				calls.Add(1)
				return tt.fresh, tt.refreshErr
			}}
			c, _ := newClient(t, Config{AllowNetworks: loopback})
			o := up.origin("127.0.0.1")
			var rec records
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}, ConnectionOrigins: []string{o}, Credential: cred}, NewBudget(tt.budget), get(o+"/x"), rec.add)
			wantOK(t, got, tt.wantStatus)
			if tt.budget > 1 && calls.Load() != 1 {
				t.Errorf("Refresh called %d times, want 1", calls.Load())
			}
			if n := len(up.requests()); n != tt.wantRequests {
				t.Errorf("upstream got %d requests, want %d", n, tt.wantRequests)
			}
			out := rec.list()
			if len(out) != 1 || out[0].Retries != tt.wantRetries || out[0].Status != tt.wantStatus {
				t.Errorf("records = %+v, want one with %d retries", out, tt.wantRetries)
			}
		})
	}
}
