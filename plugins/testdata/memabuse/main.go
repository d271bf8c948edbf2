// Command memabuse is a test plugin that misuses Extism kernel memory on request, with the
// memory API of github.com/extism/go-pdk and raw imports (no Plugboard pdk), to show that the
// host's kernel keeps every block of the call, and of the next call, intact (ABI.md section 5).
// Each action does one abuse, then work whose output shows the blocks it still holds are
// intact; host/memabuse_test.go runs each and a normal call after it on the same instance.
//
//   - sign is the normal call: HMAC of data through plugboard_credential, request block left to
//     the host, reply block freed once;
//   - free_request frees the request block after the host freed it (go-pdk's
//     "defer mem.Free()", rust-pdk's #[host_fn]), after allocating a block of its size;
//   - free_reply frees a reply block twice, around allocating a block of its size, and again
//     after the next import call;
//   - double_free frees its own blocks two and three times among other allocations;
//   - free_wild frees offsets that were never a block: 0, 1, garbage, the middle and the end
//     of a block, the middle of the input block, and the input block itself;
//   - free_output frees the block it named with output_set (go-pdk's Output has that free in
//     a TODO), free_error the block it named with error_set, then returns 1;
//   - keep holds a block in a global, and seek, in the next call, frees that stale offset;
//   - use_after_free reads a block it freed (a guest bug: the call fails, nothing else);
//   - never_free allocates blocks blocks of size bytes and frees none;
//   - churn allocates and frees a small block n times.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o memabuse.wasm ./plugins/testdata/memabuse
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	pdk "github.com/extism/go-pdk"

	"github.com/plugboard/plugboard/abi"
)

func main() {}

//go:wasmimport extism:host/user plugboard_credential
func importCredential(uint64) uint64

//go:wasmimport extism:host/env input_offset
func inputOffset() uint64

//go:wasmimport extism:host/env error_set
func errorSet(uint64)

// Input is the input of every action.
type Input struct {
	Data   string `json:"data"`
	Blocks int    `json:"blocks"`
	Size   int    `json:"size"`
	N      int    `json:"n"`
}

// Signed is the output of sign: the data and its HMAC under the connection's signing_secret.
type Signed struct {
	Data string `json:"data"`
	MAC  string `json:"mac"`
}

var actions = map[string]func(Input) (any, error){
	"sign":           sign,
	"free_request":   freeRequest,
	"free_reply":     freeReply,
	"double_free":    doubleFree,
	"free_wild":      freeWild,
	"keep":           keep,
	"seek":           seek,
	"use_after_free": useAfterFree,
	"never_free":     neverFree,
	"churn":          churn,
}

//go:wasmexport plugboard_describe
func describe() int32 {
	m := abi.Manifest{ABI: abi.Version, Name: "memabuse", Version: "1.0.0",
		Description: "Test plugin that misuses Extism kernel memory on request.",
		Auth:        abi.Auth{Types: []string{abi.AuthNone}},
		Limits:      &abi.Limits{MemoryMB: 32, TimeoutMS: 10000}}
	for _, name := range append(keys(), "free_output", "free_error") {
		m.Actions = append(m.Actions, abi.Action{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)})
	}
	b, _ := json.Marshal(m)
	pdk.Output(b)
	return 0
}

// keys are the names of actions, sorted: describe is deterministic.
func keys() []string { return slices.Sorted(maps.Keys(actions)) }

//go:wasmexport plugboard_invoke
func invoke() int32 {
	var req struct {
		Action string `json:"action"`
		Input  Input  `json:"input"`
	}
	if err := json.Unmarshal(pdk.Input(), &req); err != nil {
		return fail(err)
	}
	switch req.Action {
	case "free_output":
		mem := pdk.AllocateBytes([]byte(`{"output":{"freed":"output"}}`))
		pdk.OutputMemory(mem)
		mem.Free()
		mem.Free()
		return 0
	case "free_error":
		mem := pdk.AllocateString("memabuse: the error block was freed after error_set")
		errorSet(mem.Offset())
		mem.Free()
		mem.Free()
		return 1
	}
	fn, ok := actions[req.Action]
	if !ok {
		return fail(fmt.Errorf("no action %q", req.Action))
	}
	out, err := fn(req.Input)
	if err != nil {
		return fail(err)
	}
	b, err := json.Marshal(map[string]any{"output": out})
	if err != nil {
		return fail(err)
	}
	pdk.Output(b)
	return 0
}

// fail reports an internal error document: a check of the guest found a block not as it left it.
func fail(err error) int32 {
	b, _ := json.Marshal(abi.ErrorReply{Error: &abi.Error{Code: abi.CodeInternal, Message: err.Error()}})
	pdk.Output(b)
	return 0
}

// credentialRequest is the plugboard_credential request signing data.
func credentialRequest(data string) []byte {
	b, _ := json.Marshal(abi.CredentialRequest{Op: abi.CredentialHMACSHA256, Field: "signing_secret",
		DataBase64: base64.StdEncoding.EncodeToString([]byte(data))})
	return b
}

// macOf decodes a plugboard_credential reply.
func macOf(reply []byte) (string, error) {
	var r struct {
		abi.CredentialResponse
		Error *abi.Error `json:"error"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return "", fmt.Errorf("reply %q: %v", reply, err)
	}
	if r.Error != nil || r.MACBase64 == "" {
		return "", fmt.Errorf("reply %q", reply)
	}
	return r.MACBase64, nil
}

// call sends a plugboard_credential request and returns the reply block, unread.
func call(data string) pdk.Memory {
	req := pdk.AllocateBytes(credentialRequest(data))
	return pdk.FindMemory(importCredential(req.Offset()))
}

// sign is the normal call.
func sign(in Input) (any, error) {
	reply := call(in.Data)
	mac, err := macOf(reply.ReadBytes())
	reply.Free()
	return Signed{in.Data, mac}, err
}

// lengthOf is the kernel's length of the block at off (0: none).
func lengthOf(off uint64) uint64 {
	m := pdk.FindMemory(off)
	return m.Length()
}

// freeAt frees off, whatever it names.
func freeAt(off uint64) {
	m := pdk.NewMemory(off, 0)
	m.Free()
}

// read returns the n bytes at off.
func read(off, n uint64) []byte {
	m := pdk.NewMemory(off, n)
	return m.ReadBytes()
}

// expect checks that mem holds want.
func expect(mem pdk.Memory, want string) error {
	if mem.Length() != uint64(len(want)) {
		return fmt.Errorf("block at %d has length %d, want %d", mem.Offset(), mem.Length(), len(want))
	}
	if got := string(mem.ReadBytes()); got != want {
		return fmt.Errorf("block at %d holds %q, want %q", mem.Offset(), got, want)
	}
	if n := lengthOf(mem.Offset()); n != uint64(len(want)) {
		return fmt.Errorf("the kernel says the block at %d has %d bytes, want %d", mem.Offset(), n, len(want))
	}
	return nil
}

// freeRequest is the go-pdk idiom around a host call: the request is freed after the host has
// freed it. Before that second free, a block of the request's size is allocated: an allocator
// that reused the freed request's offset would hand it out here (or to the reply), and the
// second free would free it.
func freeRequest(in Input) (any, error) {
	body := credentialRequest(in.Data)
	req := pdk.AllocateBytes(body)
	reply := pdk.FindMemory(importCredential(req.Offset()))
	after := pdk.AllocateBytes([]byte(strings.Repeat("r", len(body))))
	req.Free()
	req.Free()
	if err := expect(after, strings.Repeat("r", len(body))); err != nil {
		return nil, err
	}
	mac, err := macOf(reply.ReadBytes())
	if err != nil {
		return nil, err
	}
	reply.Free()
	return struct {
		Signed
		After string `json:"after"`
	}{Signed{in.Data, mac}, string(after.ReadBytes())}, nil
}

// freeReply frees a reply block twice, the second time after allocating a block of its size
// (which an allocator that reused the freed offset would hand out), and again after the next
// host call.
func freeReply(in Input) (any, error) {
	first := call(in.Data)
	mac, err := macOf(first.ReadBytes())
	if err != nil {
		return nil, err
	}
	first.Free()
	same := strings.Repeat("b", int(first.Length()))
	b := pdk.AllocateBytes([]byte(same))
	first.Free()
	second := call(in.Data + "!")
	first.Free()
	mac2, err := macOf(second.ReadBytes())
	if err != nil {
		return nil, err
	}
	if err := expect(b, same); err != nil {
		return nil, err
	}
	second.Free()
	second.Free()
	return struct {
		Signed
		MAC2 string `json:"mac2"`
		B    int    `json:"b"`
	}{Signed{in.Data, mac}, mac2, len(same)}, nil
}

// doubleFree frees its own blocks more than once among other allocations and a host call.
func doubleFree(in Input) (any, error) {
	a := pdk.AllocateBytes([]byte("alpha"))
	a.Free()
	a.Free()
	b := pdk.AllocateBytes([]byte("bravo"))
	c := pdk.AllocateBytes([]byte("charlie"))
	a.Free()
	b.Free()
	b.Free()
	d := pdk.AllocateBytes([]byte("delta"))
	s, err := sign(in)
	if err != nil {
		return nil, err
	}
	a.Free()
	b.Free()
	for _, e := range []error{expect(c, "charlie"), expect(d, "delta")} {
		if e != nil {
			return nil, e
		}
	}
	return struct {
		Signed
		C string `json:"c"`
		D string `json:"d"`
	}{s.(Signed), "charlie", "delta"}, nil
}

// freeWild frees offsets that are not the start of a block of the guest, and the input block.
func freeWild(in Input) (any, error) {
	first := pdk.Input()
	text := "wild-" + in.Data
	w := pdk.AllocateBytes([]byte(text))
	n := uint64(len(text))
	in0 := inputOffset()
	for _, off := range []uint64{0, 1, 8, 1 << 16, 0xdeadbeef, 1 << 63, ^uint64(0),
		w.Offset() + 1, w.Offset() + n - 1, w.Offset() + n, w.Offset() + n + 8, w.Offset() - 8,
		in0 + 1, in0, in0} {
		freeAt(off)
	}
	if err := expect(w, text); err != nil {
		return nil, err
	}
	if again := pdk.Input(); string(again) != string(first) {
		return nil, errors.New("the input changed after free_wild")
	}
	s, err := sign(in)
	if err != nil {
		return nil, err
	}
	return struct {
		Signed
		Wild string `json:"wild"`
	}{s.(Signed), text}, nil
}

// kept is the block keep leaves for the next call.
var kept pdk.Memory

func keep(in Input) (any, error) {
	kept = pdk.AllocateBytes([]byte("kept:" + in.Data))
	return map[string]string{"kept": "kept:" + in.Data}, nil
}

// seek allocates a block of the kept one's size, frees the kept (stale) offset and checks its
// own block.
func seek(in Input) (any, error) {
	fresh := pdk.AllocateBytes([]byte("seek:" + in.Data))
	stale := kept.Offset()
	kept.Free()
	kept.Free()
	if err := expect(fresh, "seek:"+in.Data); err != nil {
		return nil, fmt.Errorf("after freeing the stale offset %d: %v", stale, err)
	}
	return map[string]any{"fresh": "seek:" + in.Data, "stale_length": lengthOf(stale)}, nil
}

func useAfterFree(in Input) (any, error) {
	m := pdk.AllocateBytes([]byte("gone"))
	m.Free()
	return map[string]string{"read": string(m.ReadBytes())}, nil
}

// neverFree allocates blocks of size bytes, writes a number at the start and the end of each,
// frees none, and answers the sum of the numbers read back.
func neverFree(in Input) (any, error) {
	if in.Size < 16 {
		return nil, errors.New("size must be at least 16")
	}
	mems := make([]pdk.Memory, in.Blocks)
	var word [8]byte
	for i := range mems {
		mems[i] = pdk.Allocate(in.Size)
		if mems[i].Offset() == 0 {
			return nil, fmt.Errorf("alloc(%d) answered 0 at block %d", in.Size, i)
		}
		binary.LittleEndian.PutUint64(word[:], uint64(i+1))
		mems[i].Store(word[:])
		tail := pdk.NewMemory(mems[i].Offset()+uint64(in.Size)-8, 8)
		tail.Store(word[:])
	}
	var sum uint64
	for i := range mems {
		head := read(mems[i].Offset(), 8)
		tail := read(mems[i].Offset()+uint64(in.Size)-8, 8)
		sum += binary.LittleEndian.Uint64(head) + binary.LittleEndian.Uint64(tail)
	}
	return map[string]uint64{"blocks": uint64(in.Blocks), "sum": sum}, nil
}

// churn allocates and frees a small block n times while one block stays allocated.
func churn(in Input) (any, error) {
	anchor := pdk.AllocateBytes([]byte("anchor"))
	for range in.N {
		m := pdk.Allocate(8)
		m.Free()
	}
	if err := expect(anchor, "anchor"); err != nil {
		return nil, err
	}
	return map[string]any{"churned": in.N, "anchor": "anchor"}, nil
}
