package main

import (
	"net"
	"strings"
	"testing"
)

// TestServePprof: --pprof-listen serves Go's profiler on its own address, and the API's
// listener never does.
func TestServePprof(t *testing.T) {
	_, bin := plugboardBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const token = "pba_pprof"
	srv := startServe(t, bin, t.TempDir(), token, "--pprof-listen", addr)

	status, body := httpDo(t, "GET", "http://"+addr+"/debug/pprof/cmdline", "", nil)
	if status != 200 || !strings.Contains(string(body), "serve") {
		t.Fatalf("GET /debug/pprof/cmdline on --pprof-listen: %d %q", status, body)
	}
	if status, _ := httpDo(t, "GET", "http://"+addr+"/debug/pprof/heap?debug=1", "", nil); status != 200 {
		t.Errorf("GET /debug/pprof/heap: %d", status)
	}
	if status, _ := httpDo(t, "GET", srv.url+"/debug/pprof/", token, nil); status != 404 {
		t.Errorf("GET /debug/pprof/ on the API listener: %d, want 404", status)
	}
}
