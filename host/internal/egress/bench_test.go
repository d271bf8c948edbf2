package egress

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

// BenchmarkDo measures one GET through Do to a loopback server on a kept-alive connection:
// validation, the allow-list, header building, the round trip and the reply document.
func BenchmarkDo(b *testing.B) {
	up := newUpstream(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true,"items":[1,2,3]}`))
	})
	cases := []struct {
		name  string
		host  string
		grant func(o string) *Grant
	}{
		{name: "GET", host: "127.0.0.1", grant: func(o string) *Grant { return &Grant{ManifestOrigins: []string{o}} }},
		{name: "GET with name and bearer", host: "api.test", grant: func(o string) *Grant {
			return &Grant{ManifestOrigins: []string{o}, ConnectionOrigins: []string{o},
				Credential: &Credential{Type: abi.AuthOAuth2, AccessToken: "token"}}
		}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			c, _ := newClient(b, Config{AllowNetworks: loopback, Resolver: newResolver().set("api.test", "127.0.0.1")})
			o := up.origin(bc.host)
			g := bc.grant(o)
			req := &abi.HTTPRequest{Method: "GET", URL: o + "/items?page=1", Headers: map[string]string{"Accept": "application/json"}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if r := c.Do(ctx, g, nil, req, nil); r.Error != nil || r.Status != http.StatusOK {
					b.Fatalf("Do: %+v", r)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
	// The same GET with a bare net/http client, for the overhead Do adds (the server's own
	// allocations count in both).
	b.Run("baseline net/http", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		url := up.origin("127.0.0.1") + "/items?page=1"
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Accept", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
}
