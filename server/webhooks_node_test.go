package server

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPushVerifiesWithStandardWebhooksLibrary delivers to a receiver written only against the
// Standard Webhooks spec, which verifies with the official library (npm standardwebhooks), so
// the signatures are checked by code that is not ours. While the receiver holds a wrong
// secret it refuses the deliveries; once it has the subscription's secret, the retries verify.
func TestPushVerifiesWithStandardWebhooksLibrary(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "server", "testdata", "webhooks")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: this test needs Node 20 or later")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks", "package.json")); err != nil {
		t.Fatalf("%s/node_modules lacks standardwebhooks: run `make test` or `npm ci --prefix server/testdata/webhooks`", dir)
	}
	cmd := exec.Command(node, "receiver.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	type line struct {
		Listening string          `json:"listening"`
		OK        bool            `json:"ok"`
		ID        string          `json:"id"`
		Payload   json.RawMessage `json:"payload"`
		Error     string          `json:"error"`
	}
	lines := make(chan line, 100)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l line
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		close(lines)
	}()
	next := func() line {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the node receiver exited")
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("no line from the node receiver")
		}
		return line{}
	}
	base := next().Listening
	if base == "" {
		t.Fatal("the node receiver did not report its address")
	}
	setSecret := func(s string) {
		resp, err := http.Post(base+"/secret", "text/plain", strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	setSecret("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") // some other subscription's secret

	f := newFeed(t)
	ts := triggerServer(t, f, func(o *Options) {
		o.Triggers.RetrySchedule = []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, time.Second, time.Second}
	})
	doc := ts.subscribe("items", nil, map[string]any{"type": "webhook", "url": base + "/hooks/plugboard"})
	sub := doc["id"].(string)
	items := f.add(2)

	refused := next()
	if refused.OK || refused.Error == "" || !strings.HasPrefix(refused.ID, "evt_") {
		t.Fatalf("a delivery signed with another secret was accepted: %+v", refused)
	}
	setSecret(doc["signing_secret"].(string))
	var got []map[string]any
	for len(got) < 2 {
		l := next()
		if !l.OK {
			continue // a retry that raced the new secret
		}
		var ev map[string]any
		if err := json.Unmarshal(l.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if ev["id"] != l.ID {
			t.Fatalf("webhook-id %s does not match the body's id %v", l.ID, ev["id"])
		}
		got = append(got, ev)
	}
	checkEvents(t, sub, got, items)
	if got[0]["id"] != refused.ID {
		t.Fatalf("the retry has id %v, want the refused attempt's %s (the idempotency key)", got[0]["id"], refused.ID)
	}
}
