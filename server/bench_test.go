package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"testing"

	"github.com/plugboard/plugboard/host"
)

// benchUpstream answers like a small JSON API.
func benchUpstream() *httptest.Server {
	body := []byte(`{"id":42,"name":"widget","tags":["a","b"],"ok":true}`)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
}

func benchGet(b *testing.B, client *http.Client, req func() *http.Request) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := client.Do(req())
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkActionCall is a warm action call through the full HTTP path: API request, auth,
// schema validation, connection binding, pooled instance, plugboard_http with credential
// injection, one upstream request, result mapping. Compare with BenchmarkDirect and
// BenchmarkReverseProxy for the same upstream.
func BenchmarkActionCall(b *testing.B) {
	ts := benchConnection(b)
	benchAction(b, ts)
}

// benchConnection starts a server with the http connector and a connection "bench" to a
// benchUpstream that is closed with the benchmark.
func benchConnection(b *testing.B) *testServer {
	up := benchUpstream()
	b.Cleanup(up.Close)
	ts := startServer(b, nil)
	ts.must(201, ts.upload("http"))
	ts.must(201, ts.do("POST", "/v1/connections", map[string]any{
		"id": "bench", "connectors": []string{"http"}, "params": map[string]any{"base_url": up.URL},
		"auth": map[string]any{"type": "api_key", "api_key": "k"},
	}))
	return ts
}

// benchAction calls the http connector's request action with connection "bench" b.N times.
func benchAction(b *testing.B, ts *testServer) {
	body, _ := json.Marshal(map[string]any{"connection": "bench", "input": map[string]any{"path": "/item"}})
	target := ts.http.URL + "/v1/connectors/http/actions/request"
	benchGet(b, &http.Client{}, func() *http.Request {
		req, _ := http.NewRequest("POST", target, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		return req
	})
}

// BenchmarkDirect calls the upstream with no intermediary.
func BenchmarkDirect(b *testing.B) {
	up := benchUpstream()
	defer up.Close()
	client := &http.Client{}
	benchGet(b, client, func() *http.Request {
		req, _ := http.NewRequest("GET", up.URL+"/item", nil)
		return req
	})
}

// BenchmarkReverseProxy calls the upstream through httputil.ReverseProxy: the floor for any
// HTTP intermediary.
func BenchmarkReverseProxy(b *testing.B) {
	up := benchUpstream()
	defer up.Close()
	u, _ := url.Parse(up.URL)
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(u))
	defer proxy.Close()
	client := &http.Client{}
	benchGet(b, client, func() *http.Request {
		req, _ := http.NewRequest("GET", proxy.URL+"/item", nil)
		return req
	})
}

// BenchmarkUploadToReady measures POST /v1/connectors of the Go-built http connector until it
// serves (checks, describe, store, compile, first instance): with an empty compilation cache,
// and with a warm one (the same module compiled before, as after a restart).
func BenchmarkUploadToReady(b *testing.B) {
	wasm := pluginWasm(b, "http")
	for _, tc := range []struct {
		name string
		warm bool
	}{{"cold_cache", false}, {"warm_cache", true}} {
		b.Run(tc.name, func(b *testing.B) {
			warmDir := b.TempDir()
			b.ReportMetric(float64(len(wasm))/(1<<20), "MiB/module")
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				cache := warmDir
				if !tc.warm {
					cache = b.TempDir()
				}
				srv, err := New(context.Background(), &Options{DataDir: b.TempDir(), AdminToken: testToken,
					EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
					Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)), Host: host.Config{CacheDir: cache}})
				if err != nil {
					b.Fatal(err)
				}
				if tc.warm && i == 0 {
					if _, err := srv.Registry().Upload(context.Background(), wasm, true); err != nil {
						b.Fatal(err)
					}
					srv.Close(context.Background())
					srv, _ = New(context.Background(), &Options{DataDir: b.TempDir(), AdminToken: testToken,
						Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Host: host.Config{CacheDir: cache}})
				}
				b.StartTimer()
				if _, err := srv.Registry().Upload(context.Background(), wasm, true); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				srv.Close(context.Background())
			}
		})
	}
}
