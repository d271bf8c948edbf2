package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A report of wrk 4.1 --latency with errors, as the Debian package prints it.
const wrkReport = `Running 10s test @ http://127.0.0.1:41234/v1/connectors/ashttp/actions/get
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    31.05ms   12.20ms 203.11ms   80.12%
    Req/Sec   492.33     61.04   640.00     70.50%
  Latency Distribution
     50%   30.97ms
     75%   36.10ms
     90%   44.71ms
     99%    1.02s
  9812 requests in 10.01s, 3.12MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 17
Requests/sec:    980.27
Transfer/sec:    319.52KB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	want := result{rps: 980.27, requests: 9812, p50: 30970 * time.Microsecond, p99: 1020 * time.Millisecond, non2xx: 17, socket: 7}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	clean := strings.NewReplacer("  Socket errors: connect 0, read 2, write 1, timeout 4\n", "", "  Non-2xx or 3xx responses: 17\n", "").Replace(wrkReport)
	if r, err := parseWrk(clean); err != nil || r.non2xx != 0 || r.socket != 0 {
		t.Errorf("a report without error lines: %+v, %v", r, err)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("a report without Requests/sec was accepted")
	}
}

// TestScriptQuotes checks that bodies and headers with quotes, backslashes, control and
// non-ASCII bytes reach the Lua
// script as Lua string literals, and that a GET needs no script.
func TestScriptQuotes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "r.lua")
	got, err := request{body: `{"a":"b\"c"}`, headers: [][2]string{{"Authorization", "Bearer x'y\\z\n\u00e9"}}}.script(file)
	if err != nil || got != file {
		t.Fatal(got, err)
	}
	b, _ := os.ReadFile(file)
	want := "wrk.method = \"POST\"\nwrk.body = \"{\\\"a\\\":\\\"b\\\\\\\"c\\\"}\"\nwrk.headers[\"Authorization\"] = \"Bearer x'y\\\\z\\010\\195\\169\"\n"
	if string(b) != want {
		t.Errorf("script =\n%s\nwant\n%s", b, want)
	}
	if got, err := (request{}).script(file + ".get"); got != "" || err != nil {
		t.Errorf("a GET got script %q, %v", got, err)
	}
}
