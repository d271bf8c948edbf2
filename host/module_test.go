package host

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// TestTimeout pins ABI.md's deadline rule: the smallest of the action's timeout_ms, the
// manifest's limits.timeout_ms and the server maximum; 30 s when neither names one.
func TestTimeout(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())
	tests := []struct {
		name     string
		action   time.Duration
		manifest int64
		want     time.Duration
	}{
		{"none given is 30 s", 0, 0, 30 * time.Second},
		{"action only", 5 * time.Second, 0, 5 * time.Second},
		{"manifest only", 0, 45000, 45 * time.Second},
		{"the smaller of both", 20 * time.Second, 10000, 10 * time.Second},
		{"capped by the server maximum", 5 * time.Minute, 0, 60 * time.Second},
		{"manifest above the maximum is capped", 0, 600000, 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Module{h: h, manifest: &abi.Manifest{}}
			if tt.manifest > 0 {
				m.manifest.Limits = &abi.Limits{TimeoutMS: tt.manifest}
			}
			if got := m.timeout(tt.action); got != tt.want {
				t.Errorf("timeout = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	h, _ := New(Config{MaxMemoryMB: 100, DefaultMemoryMB: 50})
	defer h.Close(t.Context())
	for _, tt := range []struct{ limit, want int }{{0, 50}, {32, 32}, {500, 100}} {
		if got := h.memoryMB(tt.limit); got != tt.want {
			t.Errorf("memoryMB(%d) = %d, want %d", tt.limit, got, tt.want)
		}
	}
}

// TestCheckResult: a result document has exactly one of an object output and a complete error.
func TestCheckResult(t *testing.T) {
	tests := []struct {
		name   string
		output string
		err    *abi.Error
		ok     bool
	}{
		{"object output", `{"a":1}`, nil, true},
		{"complete error", "", &abi.Error{Code: "not_found", Message: "no such repo"}, true},
		{"both", `{}`, &abi.Error{Code: "x", Message: "y"}, false},
		{"neither", "", nil, false},
		{"array output", `[1]`, nil, false},
		{"string output", `"x"`, nil, false},
		{"error without message", "", &abi.Error{Code: "x"}, false},
		{"error without code", "", &abi.Error{Message: "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out json.RawMessage
			if tt.output != "" {
				out = json.RawMessage(tt.output)
			}
			err := checkResult(out, tt.err)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrPluginFailed)) {
				t.Errorf("checkResult = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestInspectRejectsNonWasm covers the checks that need no module: the magic header and a
// module that does not decode.
func TestInspectRejectsNonWasm(t *testing.T) {
	h, _ := New(Config{})
	defer h.Close(t.Context())
	for name, data := range map[string][]byte{
		"empty":      nil,
		"text":       []byte("#!/bin/sh\necho hi"),
		"truncated":  []byte("\x00asm\x01\x00\x00\x00\x01\x05"),
		"wasm v2":    []byte("\x00asm\x02\x00\x00\x00"),
		"bad opcode": []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x05\x01\x03\x00\xff\x0b"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.Inspect(t.Context(), data)
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Code != CheckInvalidWasm {
				t.Errorf("Inspect = %v, want %s", err, CheckInvalidWasm)
			}
		})
	}
}

// TestExitedInstanceIsClosed: a guest that calls proc_exit(0) before writing output makes the
// call fail with a message saying it exited, and its instance is closed, not pooled: the next
// call pays for a new instance and succeeds.
func TestExitedInstanceIsClosed(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	defer h.Close(ctx)
	wasm := buildTestPlugin(t, "hostile")
	man, err := h.Inspect(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.Load(ctx, wasm, man, "sha256:test")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	call := &Call{Binding: &Binding{ID: "c1"}}
	if _, _, err := m.Invoke(ctx, call, "ok", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	_, idleBefore, _ := m.PoolStats() // c1's instance, and describe's in the "" pool
	_, _, err = m.Invoke(ctx, call, "exit_zero", json.RawMessage(`{}`))
	if !errors.Is(err, ErrPluginFailed) || !strings.Contains(err.Error(), "exited with status 0") {
		t.Fatalf("exit_zero: %v, want ErrPluginFailed saying it exited with status 0", err)
	}
	if _, idle, busy := m.PoolStats(); idle != idleBefore-1 || busy != 0 {
		t.Errorf("after exit_zero the pools hold %d idle (%d before) and %d busy instances: the exited one went back", idle, idleBefore, busy)
	}
	res, rep, err := m.Invoke(ctx, call, "ok", json.RawMessage(`{}`))
	if err != nil || res.Error != nil || !rep.Instantiated {
		t.Errorf("the call after exit_zero: %v %+v, instantiated %v", err, res, rep != nil && rep.Instantiated)
	}
}
