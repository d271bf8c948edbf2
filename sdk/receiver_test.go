package sdk

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/sdk/internal/sdkenv"
)

// runReceiver runs cmd, an example that subscribes and then prints each new-record event:
// once it prints "subscribed sub_...", n records are created in the records service, as
// another system would, and each must be printed as an event with its id and name. It
// returns the output (stdout, then stderr).
func runReceiver(t *testing.T, env *sdkenv.Env, cmd *exec.Cmd, n int) string {
	t.Helper()
	script := strings.Join(cmd.Args[1:], " ")
	var recs []map[string]any
	got := env.RunUntil(t, cmd, "subscribed sub_", func() {
		for i := range n {
			recs = append(recs, env.Records.Add(map[string]any{"name": fmt.Sprintf("%s-%d", filepath.Base(script), i+1)}))
		}
	})
	for _, r := range recs {
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^event evt_\S+ trig\.items: %s %s$`, r["id"], regexp.QuoteMeta(r["name"].(string))))
		if !re.MatchString(got) {
			t.Errorf("%s printed no event for record %s %s:\n%s", script, r["id"], r["name"], got)
		}
	}
	return got
}
