package sdk

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/internal/sdkenv"
)

// runReceiver runs cmd, an example that subscribes and then prints each new-record event:
// once it prints "subscribed sub_...", n records are created in the records service, as
// another system would, and each must be printed as an event with its id and name. It
// returns the output (stdout, then stderr).
func runReceiver(t *testing.T, env *sdkenv.Env, cmd *exec.Cmd, n int) string {
	t.Helper()
	script := strings.Join(cmd.Args[1:], " ")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		out strings.Builder
	)
	subscribed := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.HasPrefix(sc.Text(), "subscribed sub_") {
				once.Do(func() { close(subscribed) })
			}
		}
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String() + stderr.String()
	}
	select {
	case <-subscribed:
	case <-scanned:
		cmd.Wait()
		t.Fatalf("%s exited before it subscribed:\n%s", script, output())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s did not subscribe within 30 s:\n%s", script, output())
	}
	var recs []map[string]any
	for i := range n {
		recs = append(recs, env.Records.Add(map[string]any{"name": fmt.Sprintf("%s-%d", filepath.Base(script), i+1)}))
	}
	done := make(chan error, 1)
	go func() { <-scanned; done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, output())
		}
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not stop within 45 s of the records:\n%s", script, output())
	}
	got := output()
	if strings.Contains(got, sdkenv.RecordsKey) {
		t.Errorf("%s printed the records service's API key", script)
	}
	for _, r := range recs {
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^event evt_\S+ trig\.items: %s %s$`, r["id"], regexp.QuoteMeta(r["name"].(string))))
		if !re.MatchString(got) {
			t.Errorf("%s printed no event for record %s %s:\n%s", script, r["id"], r["name"], got)
		}
	}
	return got
}

// syncBuf is a bytes.Buffer a child process writes while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
