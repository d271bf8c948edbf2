package plugins_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/plugins/testdata/anymanifest/patch"
)

// build compiles the plugin at ./pkg (relative to this directory) to Wasm as the Makefile does.
func build(t *testing.T, pkg string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg)+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", pkg, len(wasm))
	return wasm
}

// stubHost answers the four Plugboard imports with reply(function, request), following
// ABI.md section 5: the host frees the request block and allocates the reply.
func stubHost(t *testing.T, reply func(function string, request []byte) []byte) []extism.HostFunction {
	var fns []extism.HostFunction
	for _, name := range abi.HostImports {
		fns = append(fns, extism.NewHostFunctionWithStack(name, func(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
			req, err := p.ReadBytes(stack[0])
			if err != nil {
				t.Errorf("%s: reading the request: %v", name, err)
			}
			if err := p.Free(stack[0]); err != nil {
				t.Errorf("%s: freeing the request: %v", name, err)
			}
			off, err := p.WriteBytes(reply(name, req))
			if err != nil {
				t.Errorf("%s: writing the reply: %v", name, err)
			}
			stack[0] = off
		}, []extism.ValueType{extism.ValueTypeI64}, []extism.ValueType{extism.ValueTypeI64}))
	}
	return fns
}

func load(t *testing.T, wasm []byte, fns []extism.HostFunction) *extism.Plugin {
	t.Helper()
	ctx := context.Background()
	p, err := extism.NewPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm}}},
		extism.PluginConfig{EnableWasi: true}, fns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(ctx) })
	return p
}

func call(t *testing.T, p *extism.Plugin, export string, input string) []byte {
	t.Helper()
	rc, out, err := p.Call(export, []byte(input))
	if err != nil || rc != 0 {
		t.Fatalf("%s returned %d: %v", export, rc, err)
	}
	return out
}

// imports lists the module's imports as "module.name".
func imports(t *testing.T, wasm []byte) []string {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		out = append(out, mod+"."+name)
	}
	return out
}

// TestGitHubPluginRunsUnderExtism builds the github connector with the standard toolchain and
// runs it in the Extism host SDK: the exports exist, the imports are the allowed ones, describe
// returns a valid manifest, and invoke round-trips through a stubbed plugboard_http.
func TestGitHubPluginRunsUnderExtism(t *testing.T) {
	wasm := build(t, "./github")
	for _, imp := range imports(t, wasm) {
		mod, name, _ := strings.Cut(imp, ".")
		switch {
		case mod == abi.ModuleExtismEnv, mod == abi.ModuleWASI:
		case mod == abi.ModuleHost && slices.Contains(abi.HostImports, name):
		default:
			t.Errorf("import %s is not allowed by ABI.md section 1", imp)
		}
	}

	var seen []string
	p := load(t, wasm, stubHost(t, func(fn string, req []byte) []byte {
		seen = append(seen, fn+" "+string(req))
		var r abi.HTTPRequest
		if err := abi.DecodeStrict(req, &r); err != nil {
			t.Errorf("the guest sent a malformed %s request: %v: %s", fn, err, req)
		}
		if strings.HasSuffix(r.URL, "/repos/octocat/missing") {
			return []byte(`{"error":{"code":"host_not_allowed","message":"refused"}}`)
		}
		return []byte(`{"status":200,"headers":{"Content-Type":"application/json"},"body":"{\"id\":42,\"name\":\"Hello-World\",\"full_name\":\"octocat/Hello-World\",\"owner\":{\"login\":\"octocat\",\"id\":1},\"created_at\":\"2011-01-26T19:01:12Z\",\"updated_at\":\"2011-01-26T19:14:43Z\"}"}`)
	}))
	for _, export := range []string{abi.ExportDescribe, abi.ExportInvoke, abi.ExportPoll, abi.ExportWebhook, abi.ExportOnTimer} {
		if !p.FunctionExists(export) {
			t.Errorf("export %s is missing", export)
		}
	}

	m, err := check.ParseManifest(call(t, p, abi.ExportDescribe, ""))
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if m.Name != "github" || len(m.Actions) != 4 {
		t.Errorf("manifest = %+v", m)
	}

	req := `{"action":"get_repo","input":{"owner":"octocat","repo":"Hello-World"},"connection":{"id":"gh","params":{"base_url":"https://api.github.com"}},"correlation_id":"c_1","deadline_unix_ms":0}`
	var res abi.InvokeResult
	if err := abi.DecodeStrict(call(t, p, abi.ExportInvoke, req), &res); err != nil {
		t.Fatal(err)
	}
	if res.Error != nil || !bytes.Contains(res.Output, []byte(`"full_name":"octocat/Hello-World"`)) {
		t.Errorf("invoke = output %s error %+v", res.Output, res.Error)
	}
	if len(seen) != 1 || !strings.Contains(seen[0], `"url":"https://api.github.com/repos/octocat/Hello-World"`) ||
		!strings.Contains(seen[0], `"X-Github-Api-Version":"2022-11-28"`) {
		t.Errorf("host calls = %q", seen)
	}

	// A host refusal becomes a guest error document, and a second call on the same instance works.
	req = strings.Replace(req, "Hello-World", "missing", 1)
	res = abi.InvokeResult{}
	if err := abi.DecodeStrict(call(t, p, abi.ExportInvoke, req), &res); err != nil {
		t.Fatal(err)
	}
	if res.Error == nil || res.Error.Code != abi.CodeInternal || string(res.Error.Details) != `{"host_code":"host_not_allowed"}` {
		t.Errorf("invoke after a refusal = output %s error %+v", res.Output, res.Error)
	}
}

// TestAnyManifestPatching builds the anymanifest test plugin and shows the byte patch works on
// the real module: the marker occurs once, describe returns the patched manifest, and invoke
// reports the patched version.
func TestAnyManifestPatching(t *testing.T) {
	wasm := build(t, "./testdata/anymanifest")
	if n := bytes.Count(wasm, []byte(patch.Marker)); n != 1 {
		t.Fatalf("the marker occurs %d times in the module", n)
	}
	noHost := stubHost(t, func(string, []byte) []byte { return []byte(`{"error":{"code":"denied","message":"no"}}`) })

	p := load(t, wasm, noHost)
	if !p.FunctionExists(abi.ExportDescribe) || !p.FunctionExists(abi.ExportInvoke) ||
		p.FunctionExists(abi.ExportPoll) || p.FunctionExists(abi.ExportWebhook) {
		t.Error("anymanifest must export describe and invoke only")
	}
	if _, err := check.ParseManifest(call(t, p, abi.ExportDescribe, "")); err != nil {
		t.Errorf("the default manifest is invalid: %v", err)
	}

	manifest := `{"abi":1,"name":"patched","version":"9.8.7","auth":{"types":["none"]},"actions":[{"name":"go","input_schema":{"type":"object"}}]}`
	patched, err := patch.Patch(wasm, []byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	p = load(t, patched, noHost)
	if got := call(t, p, abi.ExportDescribe, ""); string(got) != manifest {
		t.Errorf("describe = %s", got)
	}
	out := call(t, p, abi.ExportInvoke, `{"action":"go","input":{"x":[1,2]},"connection":null,"correlation_id":"c","deadline_unix_ms":0}`)
	var res struct {
		Output struct {
			Version string          `json:"version"`
			Action  string          `json:"action"`
			Input   json.RawMessage `json:"input"`
		} `json:"output"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Output.Version != "9.8.7" || res.Output.Action != "go" || string(res.Output.Input) != `{"x":[1,2]}` {
		t.Errorf("invoke = %s (%v)", out, err)
	}

	failing, _ := patch.Patch(wasm, []byte("!fail:no manifest today"))
	p = load(t, failing, noHost)
	if rc, _, err := p.Call(abi.ExportDescribe, nil); rc != 1 || err == nil || err.Error() != "no manifest today" {
		t.Errorf("a !fail block: rc %d err %v", rc, err)
	}
}
