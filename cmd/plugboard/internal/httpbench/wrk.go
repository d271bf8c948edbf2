package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// result is what one wrk run printed.
type result struct {
	rps      float64
	requests int // answers wrk read
	p50, p99 time.Duration
	non2xx   int    // "Non-2xx or 3xx responses"
	socket   int    // "Socket errors": connect, read, write and timeout added up
	server   counts // a Plugboard run's calls as the server counted them
}

// request is what wrk sends: a GET of the URL, or a POST of body with headers (a Lua script,
// since wrk takes a method and a body only from one).
type request struct {
	body    string
	headers [][2]string
}

// script writes the Lua script of r to file; a GET needs none and gets "".
func (r request) script(file string) (string, error) {
	if r.body == "" {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("wrk.method = \"POST\"\n")
	fmt.Fprintf(&b, "wrk.body = %s\n", luaQuote(r.body))
	for _, h := range r.headers {
		fmt.Fprintf(&b, "wrk.headers[%s] = %s\n", luaQuote(h[0]), luaQuote(h[1]))
	}
	return file, os.WriteFile(file, []byte(b.String()), 0o600)
}

// luaQuote is s as a Lua string literal: quote and backslash escaped, every byte outside
// printable ASCII as a decimal escape, which every Lua (wrk's LuaJIT included) reads.
func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// runWrk runs wrk --latency with conns connections (and at most that many threads) for d.
func runWrk(ctx context.Context, wrk string, threads, conns int, d time.Duration, url, script string) (result, error) {
	args := []string{"-t", strconv.Itoa(min(threads, conns)), "-c", strconv.Itoa(conns), "-d", d.String(), "--latency"}
	if script != "" {
		args = append(args, "-s", script)
	}
	out, err := exec.CommandContext(ctx, wrk, append(args, url)...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return parseWrk(string(out))
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reCount   = regexp.MustCompile(`(\d+) requests in `)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSocket  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
)

// parseWrk reads the figures of wrk --latency's report. wrk prints the Non-2xx and Socket
// errors lines only when there were some.
func parseWrk(out string) (result, error) {
	var r result
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk printed no Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reCount.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.Atoi(m[1])
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m := reSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.socket += n
		}
	}
	units := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}
	for _, m := range reLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		d := time.Duration(v * float64(units[m[3]])).Round(time.Microsecond)
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if r.p50 == 0 {
		return r, fmt.Errorf("wrk printed no latency distribution:\n%s", out)
	}
	return r, nil
}
