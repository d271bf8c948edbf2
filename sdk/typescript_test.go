package sdk

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/sdk/internal/sdkenv"
)

// TestTypeScriptSDK builds the TypeScript package (sdk/typescript: the types generated from
// the OpenAPI document, then tsc), runs its unit tests, and then, against the real server of
// sdkenv, its end-to-end checks (test/e2e.mjs: invoke, typed errors, a queue subscription
// with the events iterator, a push verified with the SDK's verifier, MCP servers and keys)
// and each example of its README, checking what they print.
func TestTypeScriptSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the TypeScript SDK and starts the real server; run without -short")
	}
	dir := tsDir()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: the TypeScript SDK needs Node.js 20 or later (apt-get install nodejs npm)", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		t.Fatal("the TypeScript SDK's dependencies are not installed: run: cd sdk/typescript && npm ci")
	}

	schema := filepath.Join(dir, "src", "schema.d.ts")
	before, _ := os.ReadFile(schema)
	tsRun(t, dir, nil, "npm", "run", "build")
	after, err := os.ReadFile(schema)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("src/schema.d.ts was not what the build generates from server/openapi/openapi.yaml: run make sdk-models and commit sdk/typescript/src/schema.d.ts")
	} else if exec.Command("git", "-C", dir, "rev-parse", "--git-dir").Run() == nil {
		if out, err := exec.Command("git", "-C", dir, "diff", "--exit-code", "--stat", "--", "src/schema.d.ts").CombinedOutput(); err != nil {
			t.Errorf("src/schema.d.ts differs from the committed one: run make sdk-models and commit sdk/typescript/src/schema.d.ts\n%s", out)
		}
	}

	unit := tsRun(t, dir, nil, "npm", "test")
	wantTAP(t, "npm test", unit, 20)

	env := sdkenv.Start(t)
	e2e := env.Run(t, dir, "node", "--test-reporter=tap", "test/e2e.mjs")
	wantTAP(t, "test/e2e.mjs", e2e, 6)

	t.Run("examples/read_and_send", func(t *testing.T) {
		out := env.Run(t, dir, "node", "examples/read_and_send.mjs")
		for _, re := range []string{
			`(?m)^read \d+ records \(HTTP 200\)$`,
			`(?m)^sent \{"name":"Ada Lovelace","email":"ada@example.com"\}: HTTP 201, id rec_\d+$`,
			`(?m)^correlation id c_[a-z0-9]+$`,
			`(?m)^logged: http \S+ request, ok, 1 outbound call\(s\)$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("the output has no line matching %s:\n%s", re, out)
			}
		}
		found := false
		for _, r := range env.Records.All() {
			found = found || r["name"] == "Ada Lovelace"
		}
		if !found {
			t.Errorf("the records service has no record the example sent: %v", env.Records.All())
		}
	})
	for _, name := range []string{"receive_pull", "receive_push"} {
		t.Run("examples/"+name, func(t *testing.T) {
			out := tsReceiver(t, env, dir, "examples/"+name+".mjs", 3)
			if !strings.Contains(out, "received 3 events") && name == "receive_pull" {
				t.Errorf("the output does not end with the count:\n%s", out)
			}
		})
	}
}

// tsReceiver runs a receiving example with node (see runReceiver).
func tsReceiver(t *testing.T, env *sdkenv.Env, dir, script string, n int) string {
	t.Helper()
	cmd := exec.Command("node", script)
	cmd.Dir = dir
	cmd.Env = append(env.Vars(), fmt.Sprintf("EVENTS=%d", n), "TIMEOUT_S=30")
	return runReceiver(t, env, cmd, n)
}

// wantTAP fails the test unless a node --test run reports at least min passing tests and no
// failure.
func wantTAP(t *testing.T, what, out string, min int) {
	t.Helper()
	pass := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindStringSubmatch(out)
	fail := regexp.MustCompile(`(?m)^# fail (\d+)$`).FindStringSubmatch(out)
	var n int
	if pass != nil {
		fmt.Sscan(pass[1], &n)
	}
	if pass == nil || fail == nil || fail[1] != "0" || n < min {
		t.Fatalf("%s: want at least %d passing tests and none failing:\n%s", what, min, out)
	}
	t.Logf("%s: %d tests passed", what, n)
}

// tsRun runs a command in the package's folder and fails the test with its output when it
// fails.
func tsRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

func tsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "typescript")
}
