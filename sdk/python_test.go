package sdk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/internal/sdkenv"
)

// pyMinTests is how many tests the Python SDK's suite has at least (unit and end to end), so
// a suite that lost its tests, or skipped some, fails here.
const pyMinTests = 65

// TestPythonSDK runs the Python package's tests (sdk/python/tests: unit tests against local
// stubs, then the end-to-end ones against the real server of sdkenv: invoke, typed errors, a
// queue subscription with the events iterator, a push verified with the SDK's verifier,
// MCP servers and keys), each example of its README (checking what it prints), and checks
// that plugboard/_models.py is what tools/generate_models.py writes from the server's
// OpenAPI document.
func TestPythonSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real server; run without -short")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is not installed: the Python SDK's tests need Python 3.9 or later (apt-get install python3)")
	}
	dir := pyDir()
	if out, err := exec.Command("python3", "-c", "import sys; sys.exit(sys.version_info < (3, 9))").CombinedOutput(); err != nil {
		v, _ := exec.Command("python3", "--version").CombinedOutput()
		t.Fatalf("the Python SDK needs Python 3.9 or later; python3 is %s%s", strings.TrimSpace(string(v)), out)
	}
	env := sdkenv.Start(t)

	t.Run("unittest", func(t *testing.T) {
		out := pyRun(t, env, dir, nil, "-m", "unittest", "discover", "-s", "tests", "-v")
		ran := regexp.MustCompile(`(?m)^Ran (\d+) tests? in `).FindStringSubmatch(out)
		if ran == nil || !regexp.MustCompile(`(?m)^OK$`).MatchString(out) {
			t.Fatalf("the unittest run did not end with OK and no skipped test:\n%s", out)
		}
		n, _ := strconv.Atoi(ran[1])
		if n < pyMinTests {
			t.Errorf("the unittest run ran %d tests, want at least %d:\n%s", n, pyMinTests, out)
		}
		e2e := regexp.MustCompile(`(?m)^test_\w+ \(test_e2e\.[\w.]+\) \.\.\. ok$`).FindAllString(out, -1)
		if len(e2e) < 8 {
			t.Errorf("%d end-to-end tests passed, want at least 8 (were they skipped? PLUGBOARD_URL is set):\n%s", len(e2e), out)
		}
		t.Logf("unittest: %d tests ran, %d of them end to end", n, len(e2e))
	})

	t.Run("examples/read_and_send", func(t *testing.T) {
		out := pyRun(t, env, dir, nil, "examples/read_and_send.py")
		for _, re := range []string{
			`(?m)^read \d+ records$`,
			`(?m)^sent \{'name': 'Grace Hopper', 'team': 'compilers'\} -> 201 rec_\d+$`,
			`(?m)^correlation id c_[a-z0-9]+$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("the output has no line matching %s:\n%s", re, out)
			}
		}
		found := false
		for _, r := range env.Records.All() {
			found = found || (r["name"] == "Grace Hopper" && r["team"] == "compilers")
		}
		if !found {
			t.Errorf("the records service has no record the example sent: %v", env.Records.All())
		}
	})
	for _, name := range []string{"receive_pull", "receive_push"} {
		t.Run("examples/"+name, func(t *testing.T) {
			out := pyReceiver(t, env, dir, "examples/"+name+".py", 3)
			if !regexp.MustCompile(`(?m)^received 3 events$`).MatchString(out) {
				t.Errorf("the output does not end with the count:\n%s", out)
			}
		})
	}

	t.Run("models", func(t *testing.T) {
		regen := "run make sdk-models, then commit sdk/python/plugboard/_models.py"
		tmp := filepath.Join(t.TempDir(), "_models.py")
		pyRun(t, env, dir, nil, "tools/generate_models.py", env.URL+"/v1/openapi.json", "-o", tmp)
		want, err := os.ReadFile(tmp)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "plugboard", "_models.py"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("plugboard/_models.py is not what the generator writes from the server's OpenAPI document; regenerate: %s", regen)
		}
		if exec.Command("git", "-C", dir, "rev-parse", "--git-dir").Run() == nil {
			if out, err := exec.Command("git", "-C", dir, "diff", "--exit-code", "--stat", "HEAD", "--", "plugboard/_models.py").CombinedOutput(); err != nil {
				t.Errorf("plugboard/_models.py differs from the committed one: commit it (%s)\n%s", regen, out)
			}
		}
	})
}

// pyEnv is the environment of a python3 child: sdkenv's variables, the package on
// PYTHONPATH, no bytecode written into the tree, unbuffered output.
func pyEnv(env *sdkenv.Env, dir string, extra []string) []string {
	return append(append(env.Vars(), "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"), extra...)
}

// pyRun runs python3 with args in dir and fails the test with its output when it exits
// non-zero, runs over 2 minutes, or prints the records service's API key. It returns the
// combined output.
func pyRun(t *testing.T, env *sdkenv.Env, dir string, extra []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", args...)
	cmd.Dir = dir
	cmd.Env = pyEnv(env, dir, extra)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	if strings.Contains(string(out), sdkenv.RecordsKey) {
		t.Errorf("python3 %s printed the records service's API key", strings.Join(args, " "))
	}
	return string(out)
}

// pyReceiver runs a receiving example with python3 (see runReceiver).
func pyReceiver(t *testing.T, env *sdkenv.Env, dir, script string, n int) string {
	t.Helper()
	cmd := exec.Command("python3", script)
	cmd.Dir = dir
	cmd.Env = pyEnv(env, dir, []string{fmt.Sprintf("EVENTS=%d", n), "TIMEOUT_S=30"})
	return runReceiver(t, env, cmd, n)
}

func pyDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "python")
}
