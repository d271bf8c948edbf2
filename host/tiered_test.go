package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPrepareServesFromTheInterpreterThenCompiledCode: a prepared module answers while its
// optimized code is not compiled (the test holds the Host's background compile back), with the
// manifest Inspect gives; then the compiled code takes over while calls keep coming from several
// goroutines and connections, and none of them fails. Afterwards no instance of the interpreter
// is left and its code was released.
func TestPrepareServesFromTheInterpreterThenCompiledCode(t *testing.T) {
	h, err := New(Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	defer h.Close(ctx)
	wasm := buildTestPlugin(t, "anymanifest") // no timeout_ms: the race detector slows the interpreter a lot
	want, err := h.Inspect(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}

	h.optimizing.Lock() // the background compile waits for this
	man, m, err := h.Prepare(ctx, wasm, "sha256:test")
	if err != nil {
		h.optimizing.Unlock()
		t.Fatal(err)
	}
	defer m.Close(ctx)
	if !reflect.DeepEqual(man, want) {
		t.Errorf("Prepare's manifest differs from Inspect's:\n%+v\n%+v", man, want)
	}
	if !m.Interpreted() {
		t.Error("a prepared module does not start in the interpreter")
	}
	if _, _, err := m.Invoke(ctx, &Call{}, "echo", json.RawMessage(`{}`)); err != nil {
		h.optimizing.Unlock()
		t.Fatalf("a call on the interpreter: %v", err)
	}
	m.mu.Lock()
	interp := m.compiled
	m.mu.Unlock()

	// Calls from 4 goroutines on 2 connections, across the change of code.
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := &Call{Binding: &Binding{ID: fmt.Sprintf("c%d", g%2)}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := m.Invoke(ctx, call, "echo", json.RawMessage(`{}`)); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				calls.Add(1)
			}
		}()
	}
	h.optimizing.Unlock()
	deadline := time.Now().Add(3 * time.Minute)
	for m.Interpreted() {
		if time.Now().After(deadline) {
			t.Fatal("the optimized code never took over")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for n := calls.Load() + 20; calls.Load() < n; {
		time.Sleep(time.Millisecond) // calls on the compiled code
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed across the change of code; first: %v", n, calls.Load(), firstErr.Load())
	}

	m.mu.Lock()
	for conn, p := range m.pools {
		for _, inst := range p.idle {
			if inst.code != m.compiled || inst.code.interpreted {
				t.Errorf("pool %q keeps an instance of the interpreter", conn)
			}
		}
	}
	m.mu.Unlock()
	if !interp.retired.Load() || interp.live.Load() != 0 {
		t.Errorf("the interpreter's code: retired %v, %d instances live; want retired with none", interp.retired.Load(), interp.live.Load())
	}
}

// TestPrepareRefusesWhatInspectRefuses: the checks of Prepare are Inspect's, with its codes.
func TestPrepareRefusesWhatInspectRefuses(t *testing.T) {
	h, _ := New(Config{})
	ctx := t.Context()
	defer h.Close(ctx)
	for name, data := range map[string][]byte{
		"empty":       nil,
		"text":        []byte("#!/bin/sh\necho hi"),
		"truncated":   []byte("\x00asm\x01\x00\x00\x00\x01\x05"),
		"bad opcode":  []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x05\x01\x03\x00\xff\x0b"),
		"no describe": []byte("\x00asm\x01\x00\x00\x00"),
		"bad imports": buildTestPlugin(t, "badimport"),
	} {
		t.Run(name, func(t *testing.T) {
			_, ierr := h.Inspect(ctx, data)
			var want *CheckError
			if !errors.As(ierr, &want) {
				t.Fatalf("Inspect = %v, want a refusal", ierr)
			}
			_, m, err := h.Prepare(ctx, data, "sha256:test")
			var got *CheckError
			if !errors.As(err, &got) || got.Code != want.Code || m != nil {
				t.Errorf("Prepare = %v, %v; want Inspect's %s (%v)", m, err, want.Code, ierr)
			}
		})
	}
}

// TestPreparedModuleClosedBeforeItsCompile: a prepared module closed after its first call, while
// the background compile that call started waits, is released at once, the compile swaps
// nothing in, and Host.Close returns.
func TestPreparedModuleClosedBeforeItsCompile(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	wasm := buildTestPlugin(t, "hostile")
	h.optimizing.Lock()
	_, m, err := h.Prepare(ctx, wasm, "sha256:test")
	if err != nil {
		h.optimizing.Unlock()
		t.Fatal(err)
	}
	if _, _, err := m.Invoke(ctx, &Call{}, "ok", json.RawMessage(`{}`)); err != nil {
		h.optimizing.Unlock()
		t.Fatal(err)
	}
	m.Close(ctx)
	select {
	case <-m.Done():
	case <-time.After(time.Minute):
		t.Fatal("a prepared module with no call in flight was not released on Close")
	}
	h.optimizing.Unlock()
	closed := make(chan error)
	go func() { closed <- h.Close(ctx) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Host.Close did not return after the skipped compile")
	}
	if !m.Interpreted() {
		t.Error("compiled code was swapped into a closed module")
	}
}
