package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

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
		return nil, notWasm()
	}
	rt := wazero.NewRuntimeWithConfig(ctx, h.inspectConfig())
	defer rt.Close(context.WithoutCancel(ctx))
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, checkErr(CheckInvalidWasm, "the module does not compile: %v", firstLine(err.Error()))
	}
	return h.check(ctx, cm, func() (*compiled, error) {
		compiled, err := h.compile(ctx, wasm, h.cfg.MaxMemoryMB)
		if errors.Is(err, ErrNoSpace) {
			return nil, err
		}
		if err != nil {
			return nil, checkErr(CheckInvalidWasm, "the module does not compile: %v", firstLine(err.Error()))
		}
		return compiled, nil
	})
}

// notWasm is the refusal of bytes that do not start as a WebAssembly module.
func notWasm() *CheckError {
	return checkErr(CheckInvalidWasm, "not a WebAssembly 1.0 module (the file does not start with \\0asm version 1)")
}

// check runs the upload checks after decoding on cm, the module as decoded and validated:
// imports, exports, then plugboard_describe on an instance of the code run returns (the
// server's maximum memory limit), closed afterwards, and the manifest's rules.
func (h *Host) check(ctx context.Context, cm wazero.CompiledModule, run func() (*compiled, error)) (*abi.Manifest, error) {
	if err := checkImports(cm); err != nil {
		return nil, err
	}
	exports := cm.ExportedFunctions()
	if _, ok := exports[abi.ExportDescribe]; !ok {
		return nil, checkErr(CheckMissingExport, "the module does not export %s, which every plugin must", abi.ExportDescribe)
	}

	compiled, err := run()
	if err != nil {
		return nil, err
	}
	m := h.newModule(&abi.Manifest{Name: "(upload)"}, "", h.cfg.MaxMemoryMB, compiled)
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
	if err := h.checkInitialMemory(cm, man); err != nil {
		return nil, err
	}
	return man, nil
}

// checkInitialMemory refuses a module whose memories start larger than the memory limit its
// manifest gives it (limits.memory_mb capped by the server, or the default): such a module
// passes describe, which runs under the server's maximum, but no instance of it could ever
// start. The Extism kernel's own memory starts at 1 MiB, which every limit allows.
func (h *Host) checkInitialMemory(cm wazero.CompiledModule, man *abi.Manifest) error {
	asked := 0
	if man.Limits != nil {
		asked = man.Limits.MemoryMB
	}
	limitMB := h.memoryMB(asked)
	for _, mem := range cm.ExportedMemories() {
		pages := mem.Min()
		if uint64(pages) <= uint64(limitMB)*16 { // 64 KiB pages
			continue
		}
		var limit string
		switch {
		case asked <= 0:
			limit = fmt.Sprintf("the default memory limit is %d MiB (the manifest sets no limits.memory_mb)", limitMB)
		case asked > limitMB:
			limit = fmt.Sprintf("limits.memory_mb is %d, capped to the server's maximum of %d", asked, limitMB)
		default:
			limit = fmt.Sprintf("limits.memory_mb is %d", asked)
		}
		return checkErr(CheckInvalidManifest, "the module's initial memory is %.1f MiB (%d pages) but %s; raise limits.memory_mb or lower the initial memory, or no instance can start",
			float64(pages)/16, pages, limit)
	}
	return nil
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
		case mod == abi.ModuleExtismEnv:
			if err := checkKernelImport(f); err != nil {
				return err
			}
		case mod == abi.ModuleWASI:
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

// checkKernelImport refuses an import of abi.ModuleExtismEnv that the host's kernel does not
// serve, or serves with another signature: no instance of such a module could start.
func checkKernelImport(f api.FunctionDefinition) error {
	mod, name, _ := f.Import()
	for _, k := range kernelFunctions {
		if k.name != name {
			continue
		}
		if !slices.Equal(f.ParamTypes(), k.params) || !slices.Equal(f.ResultTypes(), k.results) {
			return checkErr(CheckImportNotAllowed, "import %s.%s has the signature %s, but the Extism kernel's is %s",
				mod, name, signature(f.ParamTypes(), f.ResultTypes()), signature(k.params, k.results))
		}
		return nil
	}
	return checkErr(CheckImportNotAllowed, "import %s.%s is not an Extism kernel function (the host serves %s)", mod, name, strings.Join(kernelNames(), ", "))
}

// signature spells a function type as (i64, i32) -> i64.
func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(params) + ") -> (" + names(results) + ")"
}
