package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestEgressAllowList: --dev adds loopback and the private networks to --egress-allow, never
// link-local (cloud metadata); without it only the given CIDRs are allowed.
func TestEgressAllowList(t *testing.T) {
	contains := func(allow []netip.Prefix, addr string) bool {
		a := netip.MustParseAddr(addr)
		return slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	allow, err := egressAllowList("", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"127.0.0.1", "::1", "10.1.2.3", "172.20.0.1", "192.168.1.10", "fd12::1"} {
		if !contains(allow, a) {
			t.Errorf("--dev does not allow %s", a)
		}
	}
	for _, a := range []string{"169.254.169.254", "fe80::1", "100.64.0.1", "8.8.8.8"} {
		if contains(allow, a) {
			t.Errorf("--dev allows %s", a)
		}
	}
	allow, err = egressAllowList(" 10.9.0.0/16 ,", false)
	if err != nil || len(allow) != 1 || allow[0] != netip.MustParsePrefix("10.9.0.0/16") {
		t.Errorf("--egress-allow 10.9.0.0/16 = %v, %v", allow, err)
	}
	if allow, _ = egressAllowList("10.9.0.0/16", true); !contains(allow, "10.9.1.1") || !contains(allow, "127.0.0.1") {
		t.Errorf("--dev with --egress-allow = %v, want both", allow)
	}
	if _, err := egressAllowList("localhost", true); err == nil || !strings.Contains(err.Error(), "not a CIDR like 10.0.0.0/8") {
		t.Errorf("a bad CIDR: %v", err)
	}
}

// TestServeDevReachesALocalUpstream runs `plugboard serve` with the bundled http connector (built
// from source) against an upstream on 127.0.0.1: without --dev the call answers 403
// private_address with a detail naming --egress-allow and --dev; restarted with --dev on the same
// data directory, the same call succeeds.
func TestServeDevReachesALocalUpstream(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	connectors := t.TempDir()
	wasm, err := os.ReadFile(wasmPlugin(t, root, "plugins/http", t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(connectors, "http.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"fake":true}`)
	}))
	defer upstream.Close()
	t.Setenv("PLUGBOARD_ADMIN_TOKEN", "pba_devflag")
	data := t.TempDir()

	serve := func(extra ...string) (url string, stdout *lockedBuffer, stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
		done := make(chan error, 1)
		args := append([]string{"--listen", "127.0.0.1:0", "--data", data, "--connectors-dir", connectors}, extra...)
		go func() { done <- runServe(ctx, args, stdout, stderr) }()
		waitOutput(t, stdout, `serving on http://\S+`)
		url = regexp.MustCompile(`serving on (http://\S+)`).FindStringSubmatch(stdout.String())[1]
		return url, stdout, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve %v: %v\n%s", extra, err, stderr.String())
			}
		}
	}
	call := func(url, method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer pba_devflag")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, doc
	}
	invoke := `{"connection": "fake", "input": {"path": "/items"}}`

	url, out, stop := serve()
	if st, doc := call(url, "POST", "/v1/connections", `{"id": "fake", "connectors": ["http"], "params": {"base_url": "`+upstream.URL+`"}, "auth": {"type": "none"}}`); st != 201 {
		t.Fatalf("creating the connection: %d %v", st, doc)
	}
	st, doc := call(url, "POST", "/v1/connectors/http/actions/request", invoke)
	detail, _ := doc["detail"].(string)
	if st != 403 || doc["code"] != "private_address" || !strings.Contains(detail, "--egress-allow 127.0.0.0/8") || !strings.Contains(detail, "--dev") {
		t.Errorf("without --dev: %d %v, want 403 private_address naming --egress-allow 127.0.0.0/8 and --dev", st, doc)
	}
	if strings.Contains(out.String(), "Dev mode") {
		t.Errorf("dev mode announced without --dev:\n%s", out.String())
	}
	stop()

	url, out, stop = serve("--dev")
	defer stop()
	waitOutput(t, out, `Dev mode \(--dev\): connectors may reach loopback and private networks \(127\.0\.0\.0/8`)
	st, doc = call(url, "POST", "/v1/connectors/http/actions/request", invoke)
	if o, _ := doc["output"].(map[string]any); st != 200 || o["status"] != 200.0 {
		t.Errorf("with --dev: %d %v, want 200 with the fake's answer", st, doc)
	}
}

// TestMakeRunPassesEgressAllow: `make run EGRESS_ALLOW=...` starts serve with --egress-allow, and
// plain `make run` with none (make -n prints the commands without running them).
func TestMakeRunPassesEgressAllow(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed; the README's `make run` needs it")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	serveLine := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(mk, append([]string{"-n", "-B", "run"}, args...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "EGRESS_ALLOW=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n run %v: %v\n%s", args, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "plugboard serve") {
				return l
			}
		}
		t.Fatalf("make -n run %v prints no serve command:\n%s", args, out)
		return ""
	}
	if l := serveLine("EGRESS_ALLOW=127.0.0.0/8,10.0.0.0/8"); !strings.HasSuffix(strings.TrimSpace(l), "--egress-allow 127.0.0.0/8,10.0.0.0/8") {
		t.Errorf("make run EGRESS_ALLOW=... runs %q", l)
	}
	if l := serveLine(); strings.Contains(l, "--egress-allow") {
		t.Errorf("make run runs %q", l)
	}
}
