package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	lang      string // the fence's info string: sh, go, json, ""
	text      string
	line      int    // the line of the opening fence
	directive string // the <!-- docs-test: ... --> comment just before the fence, without the markers
}

var directiveRE = regexp.MustCompile(`^<!--\s*docs-test:\s*(.*?)\s*-->$`)

// docBlocks returns the fenced blocks of a Markdown document, each with the docs-test
// directive on the line before its fence (blank lines between are allowed).
func docBlocks(md string) []docBlock {
	var out []docBlock
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(trimmed, "```") {
			continue
		}
		indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " "))]
		b := docBlock{lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 1}
		for j := i - 1; j >= 0; j-- {
			if t := strings.TrimSpace(lines[j]); t != "" {
				if m := directiveRE.FindStringSubmatch(t); m != nil {
					b.directive = m[1]
				}
				break
			}
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		b.text = strings.Join(body, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

// docScript turns a document's blocks into one bash script, in order: shell blocks run as
// they are, Go blocks marked "file PATH" are written to PATH (relative to the directory the
// script is in at that point), and blocks marked "skip REASON" are left out and returned
// with their reason. Any other Go or shell block is an error: every snippet a reader can copy
// is either run or says why not.
func docScript(name string, blocks []docBlock) (script string, skipped []string, err error) {
	var sb strings.Builder
	for _, b := range blocks {
		where := fmt.Sprintf("%s:%d", name, b.line)
		shell := b.lang == "sh" || b.lang == "bash" || b.lang == "shell"
		if !shell && b.lang != "go" {
			continue // output examples, JSON documents, configuration of other programs
		}
		switch verb, arg, _ := strings.Cut(b.directive, " "); {
		case verb == "skip":
			if strings.TrimSpace(arg) == "" {
				return "", nil, fmt.Errorf("%s: a skipped block needs a reason: <!-- docs-test: skip REASON -->", where)
			}
			skipped = append(skipped, where+": "+arg)
		case verb == "file":
			fmt.Fprintf(&sb, "echo '### %s: writing %s' >&2\nmkdir -p \"$(dirname %q)\"\ncat > %q <<'DOCS_TEST_EOF'\n%sDOCS_TEST_EOF\n", where, arg, arg, arg, b.text)
		case verb == "" && shell:
			fmt.Fprintf(&sb, "echo '### %s' >&2\n%s", where, b.text)
		default:
			return "", nil, fmt.Errorf("%s: a %s block needs <!-- docs-test: file PATH --> or <!-- docs-test: skip REASON --> before it (directive %q)", where, b.lang, b.directive)
		}
	}
	return sb.String(), skipped, nil
}

// TestDocBlocks: the extraction the README test relies on finds fences, their info strings,
// indented fences and directives, and refuses a Go block with no directive.
func TestDocBlocks(t *testing.T) {
	md := "text\n\n<!-- docs-test: file a/main.go -->\n```go\npackage main\n```\n\n- item:\n\n  ```sh\n  echo hi\n  ```\n\n<!-- docs-test: skip needs a browser -->\n\n```sh\nopen x\n```\n```json\n{}\n```\n"
	bs := docBlocks(md)
	if len(bs) != 4 || bs[0].directive != "file a/main.go" || bs[1].text != "echo hi\n" || bs[2].directive != "skip needs a browser" || bs[3].lang != "json" {
		t.Fatalf("blocks: %+v", bs)
	}
	script, skipped, err := docScript("x.md", bs)
	if err != nil || len(skipped) != 1 || !strings.Contains(script, "cat > \"a/main.go\"") || !strings.Contains(script, "echo hi") || strings.Contains(script, "open x") {
		t.Fatalf("script %q, skipped %v, err %v", script, skipped, err)
	}
	if _, _, err := docScript("x.md", docBlocks("```go\npackage main\n```\n")); err == nil {
		t.Error("a Go block without a directive was accepted")
	}
	if _, _, err := docScript("x.md", docBlocks("<!-- docs-test: skip -->\n```sh\nx\n```\n")); err == nil {
		t.Error("a skip without a reason was accepted")
	}
}

// TestREADME runs README.md as a reader would: every shell block in order in one bash
// session (set -euo pipefail), in a directory laid out as `make run` leaves a checkout (bin/
// with the binary and the bundled connectors, a server on var/), with Go blocks written where
// their directive says. The internet is faked below the server: api.github.com and
// httpbin.org resolve, through --egress-connect-to and --egress-ca, to fakes written from
// the providers' documentation (githubfake, and an httpbin /get). The only edit to the text
// is the server's address: 127.0.0.1:8080 becomes the test server's port.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README against the real binary; run without -short")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's snippets need %s (.ci/run installs it): %v", tool, err)
		}
	}
	root, bin := plugboardBinary(t)
	md, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script, skipped, err := docScript("README.md", docBlocks(string(md)))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range skipped {
		t.Logf("not run: %s", s)
	}

	// A checkout after `make run`: bin/plugboard, bin/plugins/*.wasm, var/.
	work := t.TempDir()
	os.MkdirAll(filepath.Join(work, "bin", "plugins"), 0o755)
	if err := os.Symlink(bin, filepath.Join(work, "bin", "plugboard")); err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "plugins", "*", "main.go"))
	for _, d := range dirs {
		p := filepath.Base(filepath.Dir(d))
		b, err := os.ReadFile(wasmPlugin(t, root, "plugins/"+p, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(work, "bin", "plugins", p+".wasm"), b, 0o644)
	}
	os.MkdirAll(filepath.Join(work, "plugins"), 0o755)
	if b, err := os.ReadFile(filepath.Join(root, "plugins", "catalog.json")); err != nil {
		t.Fatal(err)
	} else {
		os.WriteFile(filepath.Join(work, "plugins", "catalog.json"), b, 0o644)
	}

	// The fake internet.
	gh := githubfake.New(t)
	gh.AddRepo("golang", "go")
	ca := newTestCA(t)
	github := ca.tlsServer(t, []string{"api.github.com"}, httputil.NewSingleHostReverseProxy(mustURL(t, gh.URL)))
	httpbin := ca.tlsServer(t, []string{"httpbin.org"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// httpbin's /get echoes the request: args, headers, origin and url.
		if r.URL.Path != "/get" {
			http.NotFound(w, r)
			return
		}
		args := map[string]string{}
		for k, v := range r.URL.Query() {
			args[k] = v[0]
		}
		headers := map[string]string{}
		for k := range r.Header {
			headers[k] = r.Header.Get(k)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"args": args, "headers": headers, "origin": "127.0.0.1", "url": "https://httpbin.org" + r.URL.RequestURI()})
	}))
	// app.example receives the tour's push subscription.
	app := ca.tlsServer(t, []string{"app.example"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o644)

	// As `make run` starts it, with the fake internet below it (startServe adds --egress-allow
	// 127.0.0.0/8, which the fakes on loopback need).
	srv := startServe(t, bin, filepath.Join(work, "var"), "", "--connectors-dir", filepath.Join(work, "bin", "plugins"),
		"--print-token", "--egress-ca", caFile,
		"--egress-connect-to", "api.github.com:443="+github+",httpbin.org:443="+httpbin+",app.example:443="+app)
	base := srv.url
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := strings.TrimPrefix(base, "http://")

	script = strings.ReplaceAll(script, "127.0.0.1:8080", addr)
	scriptFile := filepath.Join(t.TempDir(), "readme.sh")
	// curl fails on an HTTP error status too (the body is still shown), so a snippet whose
	// request the server refuses fails the test rather than printing a problem document.
	// (Where a snippet passes -f itself, as a readiness loop does, it is left as it is.)
	preamble := "set -euo pipefail\n" +
		`curl() { case " $* " in *" -f "*|*" -sf "*|*" -fsS "*|*" -sSf "*) command curl "$@" ;; *) command curl --fail-with-body "$@" ;; esac; }` + "\n"
	os.WriteFile(scriptFile, []byte(preamble+script), 0o644)
	sh := exec.CommandContext(ctx, "bash", scriptFile)
	sh.Dir = work
	sh.Env = append(os.Environ(),
		"GITHUB_TOKEN="+gh.Token,
		"PLUGBOARD_CONFIG="+filepath.Join(t.TempDir(), "config.json"),
		"PLUGBOARD_URL=", "PLUGBOARD_TOKEN=")
	// Its own process group, so what the snippets start in the background ends with it.
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	// Output goes to a file, not a pipe: a pipe would keep Run waiting for the servers the
	// cluster snippet starts in the background, which hold it open until they are stopped.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "readme.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	sh.Stdout, sh.Stderr = outFile, outFile
	done := make(chan error, 1)
	go func() {
		err := sh.Run()
		if sh.Process != nil {
			stopGroup(-sh.Process.Pid)
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
		err = <-done
		t.Errorf("the README's snippets did not finish within 5 minutes (a readiness loop waiting for a server that exited?)")
	}
	outText, _ := os.ReadFile(outFile.Name())
	if err != nil {
		t.Errorf("the README's snippets failed (%v); the last ### line names the block:\n%s\nserver log (tail):\n%s", err, tail(string(outText), 60), tail(srv.stderr.String(), 40))
	} else {
		t.Logf("README ran:\n%s", tail(string(outText), 30))
	}
}

// stopGroup ends the process group pgid (negative): SIGTERM, then SIGKILL after 10 s for
// whatever is left.
func stopGroup(pgid int) {
	if syscall.Kill(pgid, syscall.SIGTERM) != nil {
		return // the group is gone
	}
	for range 100 {
		time.Sleep(100 * time.Millisecond)
		if syscall.Kill(pgid, 0) != nil {
			return
		}
	}
	syscall.Kill(pgid, syscall.SIGKILL)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// testCA is a certificate authority made for one test, for TLS fakes of public hosts.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Plugboard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// tlsServer starts an HTTPS server for names with a certificate of the CA and returns its
// loopback address.
func (ca *testCA) tlsServer(t *testing.T, names []string, h http.Handler) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).String()
}
