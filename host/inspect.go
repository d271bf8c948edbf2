package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
)

var wasmMagic = []byte("\x00asm\x01\x00\x00\x00")

// Inspect runs the upload checks of API.md on a candidate plugin, in order: valid Wasm, only
// allowed imports, plugboard_describe exported, describe succeeds with no capabilities, the
// exports its manifest needs are present, and the manifest passes ABI.md section 3. The first
// failure is returned as a *[CheckError]; on success the validated manifest is returned.
func (h *Host) Inspect(ctx context.Context, wasm []byte) (*abi.Manifest, error) {
	if !bytes.HasPrefix(wasm, wasmMagic) {
		return nil, checkErr(CheckInvalidWasm, "not a WebAssembly 1.0 module (the file does not start with \\0asm version 1)")
	}
	rt := wazero.NewRuntimeWithConfig(ctx, h.inspectConfig())
	defer rt.Close(context.WithoutCancel(ctx))
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, checkErr(CheckInvalidWasm, "the module does not compile: %v", firstLine(err.Error()))
	}
	if err := checkImports(cm); err != nil {
		return nil, err
	}
	exports := cm.ExportedFunctions()
	if _, ok := exports[abi.ExportDescribe]; !ok {
		return nil, checkErr(CheckMissingExport, "the module does not export %s, which every plugin must", abi.ExportDescribe)
	}

	compiled, cache, err := h.compile(ctx, wasm, h.cfg.MaxMemoryMB)
	if errors.Is(err, ErrNoSpace) {
		return nil, err
	}
	if err != nil {
		return nil, checkErr(CheckInvalidWasm, "the module does not compile: %v", firstLine(err.Error()))
	}
	m := &Module{h: h, manifest: &abi.Manifest{Name: "(upload)"}, memoryMB: h.cfg.MaxMemoryMB,
		compiled: compiled, cache: cache, pools: map[string]*pool{}, done: make(chan struct{})}
	out, _, err := m.call(ctx, &Call{}, abi.ExportDescribe, "", nil, true)
	m.Close(ctx)
	if err != nil {
		return nil, checkErr(CheckDescribeFailed, "%s failed: %v", abi.ExportDescribe, err)
	}
	if !json.Valid(out) {
		return nil, checkErr(CheckDescribeFailed, "%s did not write a JSON document", abi.ExportDescribe)
	}
	// Exports are checked against what the manifest declares before the manifest's own rules,
	// so the check order of API.md holds; a manifest too broken to read declares nothing here.
	var declared abi.Manifest
	_ = json.Unmarshal(out, &declared)
	for _, name := range declared.RequiredExports() {
		if _, ok := exports[name]; !ok {
			return nil, checkErr(CheckMissingExport, "the manifest declares %s but the module does not export %s", what(name), name)
		}
	}
	man, err := check.ParseManifest(out)
	if err != nil {
		var me *check.ManifestError
		if errors.As(err, &me) {
			return nil, &CheckError{Code: CheckInvalidManifest, Err: me}
		}
		return nil, checkErr(CheckInvalidManifest, "%v", err)
	}
	return man, nil
}

func what(export string) string {
	switch export {
	case abi.ExportInvoke:
		return "actions"
	case abi.ExportPoll:
		return "a poll trigger"
	case abi.ExportWebhook:
		return "a webhook trigger"
	}
	return export
}

// checkImports allows functions from the Extism kernel, WASI preview 1 and Plugboard's own host
// functions, and nothing else (no imported memories, tables or globals either).
func checkImports(cm wazero.CompiledModule) error {
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch {
		case mod == abi.ModuleExtismEnv, mod == abi.ModuleWASI:
		case mod == abi.ModuleHost && slices.Contains(abi.HostImports, name):
		case mod == abi.ModuleHost:
			return checkErr(CheckImportNotAllowed, "import %s.%s is not a Plugboard host function (allowed: %s)", mod, name, strings.Join(abi.HostImports, ", "))
		default:
			hint := ""
			if mod == "env" {
				hint = " (AssemblyScript: compile with --use abort=<your function> and avoid Math.random/Date)"
			}
			return checkErr(CheckImportNotAllowed, "import %s.%s is outside the allowed modules %s, %s and %s%s", mod, name, abi.ModuleExtismEnv, abi.ModuleWASI, abi.ModuleHost, hint)
		}
	}
	for _, m := range cm.ImportedMemories() {
		mod, name, _ := m.Import()
		return checkErr(CheckImportNotAllowed, "imported memory %s.%s is not allowed; a plugin defines its own memory", mod, name)
	}
	return nil
}
