package pdktest

import (
	"net/http"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

func TestInject(t *testing.T) {
	tests := []struct {
		name   string
		auth   abi.Auth
		cred   Credential
		header string
		value  string
		query  string
	}{
		{"api key in a header with a prefix", abi.Auth{Types: []string{abi.AuthAPIKey}, APIKey: &abi.APIKeyAuth{In: "header", Name: "Authorization", Prefix: "Bearer "}},
			Credential{APIKey: "k"}, "Authorization", "Bearer k", "a=1"},
		{"api key in the query", abi.Auth{Types: []string{abi.AuthAPIKey}, APIKey: &abi.APIKeyAuth{In: "query", Name: "api_key"}},
			Credential{APIKey: "k 1"}, "Authorization", "", "a=1&api_key=k+1"},
		{"basic", abi.Auth{Types: []string{abi.AuthBasic}}, Credential{Username: "u", Password: "p"}, "Authorization", "Basic dTpw", "a=1"},
		{"oauth2 as a bearer token", abi.Auth{Types: []string{abi.AuthOAuth2}, OAuth2: &abi.OAuth2Auth{}}, Credential{AccessToken: "at"}, "Authorization", "Bearer at", "a=1"},
		{"none injects nothing", abi.Auth{Types: []string{abi.AuthNone}}, Credential{}, "Authorization", "", "a=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Harness{manifest: abi.Manifest{Auth: tt.auth}, opts: Options{Credential: tt.cred}}
			r, _ := http.NewRequest("GET", "https://x.example/p?a=1", nil)
			h.inject(r)
			if got := r.Header.Get(tt.header); got != tt.value {
				t.Errorf("%s = %q, want %q", tt.header, got, tt.value)
			}
			if r.URL.RawQuery != tt.query {
				t.Errorf("query = %q, want %q", r.URL.RawQuery, tt.query)
			}
		})
	}
}
