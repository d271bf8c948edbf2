package host

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

// The memabuse tests run plugins/testdata/memabuse, a go-pdk guest that misuses Extism kernel
// memory (ABI.md section 5): each abuse, then a normal call on the same instance, must answer
// exactly what a careful guest would.

// memabuseSecret is the connection secret memabuse's calls sign with.
const memabuseSecret = "s3cret"

// memabuse loads the memabuse plugin on a new host and returns it with a call of a connection
// holding memabuseSecret.
func memabuse(t *testing.T) (*Module, *Call) {
	t.Helper()
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	wasm := buildTestPlugin(t, "memabuse")
	man, err := h.Inspect(t.Context(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.Load(t.Context(), wasm, man, "sha256:memabuse")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m, &Call{Binding: &Binding{ID: "c1", Secrets: map[string]string{"signing_secret": memabuseSecret}}}
}

// invokeRaw runs action with input and returns the output document as the guest wrote it.
func invokeRaw(t *testing.T, m *Module, call *Call, action, input string) (string, *Report, error) {
	t.Helper()
	res, rep, err := m.Invoke(t.Context(), call, action, json.RawMessage(input))
	if err != nil {
		return "", rep, err
	}
	if res.Error != nil {
		return "", rep, fmt.Errorf("%s answered an error document: %s: %s", action, res.Error.Code, res.Error.Message)
	}
	return string(res.Output), rep, nil
}

// mac is what plugboard_credential answers for data: HMAC-SHA256 under memabuseSecret.
func mac(data string) string {
	h := hmac.New(sha256.New, []byte(memabuseSecret))
	h.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// signed is the output of memabuse's sign for data, with extra fields appended.
func signed(data, extra string) string {
	return fmt.Sprintf(`{"data":%q,"mac":%q%s}`, data, mac(data), extra)
}

// memabuseStep is one call of a case: its output must be want, or its error must wrap
// ErrPluginFailed and contain wantErr.
type memabuseStep struct {
	action, input string
	want, wantErr string
}

// TestGuestMemoryAbuseIsContained: each misuse of kernel memory leaves the call it is in and
// the next call on the same instance byte-exact. A call that failed (an error_set, a read of
// a freed block) fails alone, as the plugin's fault, and the next call gets a fresh instance.
func TestGuestMemoryAbuseIsContained(t *testing.T) {
	m, call := memabuse(t)
	request, _ := json.Marshal(abi.CredentialRequest{Op: abi.CredentialHMACSHA256, Field: "signing_secret",
		DataBase64: base64.StdEncoding.EncodeToString([]byte("d2"))})
	reply, _ := json.Marshal(abi.CredentialResponse{MACBase64: mac("d1")})
	tests := []struct {
		name  string
		steps []memabuseStep
	}{
		{"a reply block freed twice, and again after the next host call", []memabuseStep{
			{action: "free_reply", input: `{"data":"d1"}`, want: signed("d1", fmt.Sprintf(`,"mac2":%q,"b":%d`, mac("d1!"), len(reply)))}}},
		{"the request block freed again after the host freed it (go-pdk defer mem.Free, rust-pdk #[host_fn])", []memabuseStep{
			{action: "free_request", input: `{"data":"d2"}`, want: signed("d2", fmt.Sprintf(`,"after":%q`, strings.Repeat("r", len(request))))}}},
		{"own blocks freed two and three times among other blocks", []memabuseStep{
			{action: "double_free", input: `{"data":"d3"}`, want: signed("d3", `,"c":"charlie","d":"delta"`)}}},
		{"offsets that start no block freed: 0, garbage, inside and past a block, the input block", []memabuseStep{
			{action: "free_wild", input: `{"data":"d4"}`, want: signed("d4", `,"wild":"wild-d4"`)}}},
		{"the output block freed after output_set", []memabuseStep{
			{action: "free_output", input: `{}`, want: `{"freed":"output"}`}}},
		{"a block kept from the previous call freed in this one", []memabuseStep{
			{action: "keep", input: `{"data":"d6"}`, want: `{"kept":"kept:d6"}`},
			{action: "seek", input: `{"data":"d6"}`, want: `{"fresh":"seek:d6","stale_length":0}`}}},
		{"blocks never freed", []memabuseStep{
			{action: "never_free", input: `{"blocks":4,"size":64}`, want: `{"blocks":4,"sum":20}`}}},
		{"a block allocated and freed 100000 times", []memabuseStep{
			{action: "churn", input: `{"n":100000}`, want: `{"anchor":"anchor","churned":100000}`}}},
		{"the error block freed after error_set: the message is kept", []memabuseStep{
			{action: "free_error", input: `{}`, wantErr: "plugboard_invoke returned 1: memabuse: the error block was freed after error_set"}}},
		{"a freed block read: that call fails", []memabuseStep{
			{action: "use_after_free", input: `{}`, wantErr: "outside every allocated block"}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failed := false
			for _, s := range tt.steps {
				got, _, err := invokeRaw(t, m, call, s.action, s.input)
				switch {
				case s.wantErr != "":
					failed = true
					if !errors.Is(err, ErrPluginFailed) || !strings.Contains(err.Error(), s.wantErr) {
						t.Errorf("%s: error %v, want plugin_failed with %q", s.action, err, s.wantErr)
					}
				case err != nil:
					t.Fatalf("%s: %v", s.action, err)
				case got != s.want:
					t.Errorf("%s output\n got %s\nwant %s", s.action, got, s.want)
				}
			}
			data := fmt.Sprintf("normal call %d", i)
			got, rep, err := invokeRaw(t, m, call, "sign", fmt.Sprintf(`{"data":%q}`, data))
			if err != nil {
				t.Fatalf("the normal call after: %v", err)
			}
			if want := signed(data, ""); got != want {
				t.Errorf("the normal call after\n got %s\nwant %s", got, want)
			}
			if rep.Instantiated != failed {
				t.Errorf("the normal call after instantiated %v; want %v (a new instance only after a failed call)", rep.Instantiated, failed)
			}
		})
	}
}

// idleKernel is the kernel of the one idle instance of the connection's pool.
func idleKernel(t *testing.T, m *Module, connection string) *kernel {
	t.Helper()
	p := m.pool(connection)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) != 1 {
		t.Fatalf("%d idle instances, want 1", len(p.idle))
	}
	return p.idle[0].k
}

// TestGuestThatNeverFreesStaysBounded: a guest that frees nothing, 1 MiB of blocks a call, makes
// 200 calls (over six times its 32 MiB memory limit) on one instance. Each succeeds, the kernel
// memory after the last call is what it was after the tenth (one call's blocks), and the
// instance stays far under its limit. The guest's own linear memory is not pinned exactly: a
// Go guest's heap grows on its own until its garbage collector settles (about 8 MB after 3000
// calls of any action, measured).
func TestGuestThatNeverFreesStaysBounded(t *testing.T) {
	m, call := memabuse(t)
	const calls, blocks, size = 200, 16, 64 << 10
	want := fmt.Sprintf(`{"blocks":%d,"sum":%d}`, blocks, blocks*(blocks+1))
	var settled uint64
	for i := range calls {
		got, rep, err := invokeRaw(t, m, call, "never_free", fmt.Sprintf(`{"blocks":%d,"size":%d}`, blocks, size))
		if err != nil || got != want {
			t.Fatalf("call %d: %s, %v; want %s", i, got, err, want)
		}
		if i > 0 && rep.Instantiated {
			t.Fatalf("call %d ran on a new instance", i)
		}
		if rep.MemoryBytes > 16<<20 {
			t.Fatalf("call %d: the instance holds %d bytes", i, rep.MemoryBytes)
		}
		if i == 9 {
			settled = idleKernel(t, m, "c1").size()
		}
	}
	k := idleKernel(t, m, "c1")
	if k.size() != settled || settled > uint64(blocks*(size+blockOverhead)+4096) {
		t.Errorf("kernel memory after %d calls %d bytes, after 10 calls %d; one call's blocks are %d", calls, k.size(), settled, blocks*size)
	}
}

// TestGuestAllocFreeLoopHoldsNoHostMemory: 100000 allocations freed one by one leave the kernel
// with a few block entries, not one per allocation.
func TestGuestAllocFreeLoopHoldsNoHostMemory(t *testing.T) {
	m, call := memabuse(t)
	if got, _, err := invokeRaw(t, m, call, "churn", `{"n":100000}`); err != nil || got != `{"anchor":"anchor","churned":100000}` {
		t.Fatalf("churn: %s, %v", got, err)
	}
	if k := idleKernel(t, m, "c1"); len(k.blocks) > 256 {
		t.Errorf("the kernel keeps %d block entries after a call with 3 live blocks", len(k.blocks))
	}
}
