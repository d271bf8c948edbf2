package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEgressFlags: --egress-connect-to and --egress-ca parse what they document and refuse
// the rest with a message that shows the expected form.
func TestEgressFlags(t *testing.T) {
	m, tlsCfg, err := egressConfig(" api.github.com:443=127.0.0.1:8443, httpbin.org:443=[::1]:9443 ", "")
	if err != nil || tlsCfg != nil || len(m) != 2 || m["api.github.com:443"] != "127.0.0.1:8443" || m["httpbin.org:443"] != "[::1]:9443" {
		t.Fatalf("parsed %v %v %v", m, tlsCfg, err)
	}
	for _, bad := range []string{"api.github.com=127.0.0.1:8443", "api.github.com:443", "api.github.com:443=127.0.0.1"} {
		if _, _, err := egressConfig(bad, ""); err == nil || !strings.Contains(err.Error(), "HOST:PORT=HOST2:PORT2") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	if _, _, err := egressConfig("", notPEM); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a file without certificates: %v", err)
	}
	if _, _, err := egressConfig("", filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
