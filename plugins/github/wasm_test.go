package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	extism "github.com/extism/go-sdk"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/plugins/github/githubfake"
)

// TestTriggersRunUnderExtism builds the connector for wasip1 and runs its trigger exports in the
// Extism host SDK: the HMAC check and the poll cursor work in Wasm as they do natively.
func TestTriggersRunUnderExtism(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin for wasip1; run without -short")
	}
	out := filepath.Join(t.TempDir(), "github.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var hostCalls []string
	fns := []extism.HostFunction{}
	for _, name := range abi.HostImports {
		fns = append(fns, extism.NewHostFunctionWithStack(name, func(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
			req, _ := p.ReadBytes(stack[0])
			_ = p.Free(stack[0])
			hostCalls = append(hostCalls, string(req))
			reply := `{"status":200,"headers":{"Content-Type":"application/json"},"body":"[{\"number\":7,\"title\":\"t\",\"state\":\"open\",\"created_at\":\"2026-11-28T07:00:00Z\",\"updated_at\":\"2026-11-28T07:00:00Z\",\"user\":{\"login\":\"u\"}}]"}`
			off, _ := p.WriteBytes([]byte(reply))
			stack[0] = off
		}, []extism.ValueType{extism.ValueTypeI64}, []extism.ValueType{extism.ValueTypeI64}))
	}
	ctx := context.Background()
	p, err := extism.NewPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm}}}, extism.PluginConfig{EnableWasi: true}, fns)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	call := func(export string, in any) []byte {
		t.Helper()
		b, _ := json.Marshal(in)
		rc, out, err := p.Call(export, b)
		if err != nil || rc != 0 {
			t.Fatalf("%s returned %d: %v", export, rc, err)
		}
		return out
	}
	conn := map[string]any{"id": "gh", "params": map[string]any{"base_url": "https://api.github.com"}}

	var poll abi.PollResult
	json.Unmarshal(call(abi.ExportPoll, map[string]any{"trigger": "new_issue", "params": map[string]string{"owner": "o", "repo": "r"},
		"cursor": nil, "connection": conn, "correlation_id": "c_1", "deadline_unix_ms": 0}), &poll)
	if poll.Error != nil || len(poll.Events) != 0 || poll.Cursor != `{"since":"2026-11-28T07:00:00Z","last_number":7}` {
		t.Errorf("baseline poll = %+v", poll)
	}
	if len(hostCalls) != 1 || !strings.Contains(hostCalls[0], "direction=desc") {
		t.Errorf("host calls %q", hostCalls)
	}

	body := []byte(`{"action":"opened","issue":{"number":8,"title":"x","state":"open","user":{"login":"u"},"labels":[{"name":"bug"}],"created_at":"2026-11-28T07:01:00Z","updated_at":"2026-11-28T07:01:00Z"},"repository":{"full_name":"o/r"},"sender":{"login":"u"}}`)
	receive := func(sig string) abi.WebhookResult {
		var res abi.WebhookResult
		json.Unmarshal(call(abi.ExportWebhook, map[string]any{"op": "receive", "trigger": "issue_event", "params": map[string]string{"owner": "o", "repo": "r"},
			"secret": "s3", "state": json.RawMessage(`{"hook_id":1}`), "connection": conn, "correlation_id": "c_2", "deadline_unix_ms": 0,
			"request": abi.InboundRequest{Method: "POST", Path: "/hooks/tok", Query: map[string]string{}, BodyBase64: base64.StdEncoding.EncodeToString(body),
				Headers: map[string]string{"X-Github-Event": "issues", "X-Github-Delivery": "d-1", "X-Hub-Signature-256": sig}}}), &res)
		return res
	}
	if res := receive(githubfake.Signature("s3", body)); res.Error != nil || len(res.Events) != 1 || res.Events[0].ID != "d-1" || res.Events[0].Type != "opened" {
		t.Errorf("signed delivery = %+v", res)
	}
	if res := receive(githubfake.Signature("other", body)); len(res.Events) != 0 || res.Response == nil || res.Response.Status != 401 {
		t.Errorf("forged delivery = %+v", res)
	}
}
