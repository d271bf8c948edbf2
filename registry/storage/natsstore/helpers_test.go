package natsstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/plugboard/plugboard/registry/storage/storagetest"
)

var bg = context.Background()

// servers maps the URL of each running test server to it.
var servers sync.Map

// restartOpts maps the URL of each test server to the options that start it again on the
// same port and store directory.
var restartOpts sync.Map

func contextWithCancel() (context.Context, context.CancelFunc) { return context.WithCancel(bg) }

// startServer runs an in-process nats-server with JetStream on a random loopback port and
// stops it at the end of the test.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	dir := t.TempDir()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start within 10 s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		servers.Delete(ns.ClientURL())
	})
	servers.Store(ns.ClientURL(), ns)
	port := ns.Addr().(*net.TCPAddr).Port
	restartOpts.Store(ns.ClientURL(), &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	return ns
}

// testNS is one namespace on one server: the URL and the key file every node shares.
type testNS struct {
	url     string
	keyFile string
	prefix  string
}

func newNS(t testing.TB) testNS {
	ns := startServer(t)
	return testNS{url: ns.ClientURL(), keyFile: filepath.Join(t.TempDir(), "master.key"), prefix: "pbtest"}
}

// open opens a Store (one node) on the namespace and closes it at the end of the test. opts
// may be nil; its URLs, Prefix and MasterKeyFile are the namespace's unless set.
func (n testNS) open(t testing.TB, opts *Options) *Store {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.URLs == "" {
		o.URLs = n.url
	}
	if o.Prefix == "" {
		o.Prefix = n.prefix
	}
	if o.MasterKeyFile == "" {
		o.MasterKeyFile = n.keyFile
	}
	if o.Name == "" {
		o.Name = t.Name()
	}
	if o.Logger == nil {
		o.Logger = quietLog
	}
	s, err := Open(bg, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// openTest opens one node on a new server.
func openTest(t testing.TB, opts *Options) *Store {
	t.Helper()
	return newNS(t).open(t, opts)
}

// reopen closes s and opens the same namespace again with opts.
func reopen(t testing.TB, s *Store, opts *Options) *Store {
	t.Helper()
	s.Close()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MasterKeyFile == "" {
		o.MasterKeyFile = s.keyFile
	}
	return testNS{url: s.urls, prefix: s.prefix, keyFile: s.keyFile}.open(t, &o)
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawStream returns every message body of a stream, concatenated: what JetStream holds.
func rawStream(t testing.TB, s *Store, stream string) []byte {
	t.Helper()
	st, err := s.js.Stream(bg, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(bg)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := st.GetMsg(bg, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Data...)
		out = append(out, '\n')
	}
	return out
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// canary marks the secret of testConnection, so a test can look for it where it must not be.
const canary = storagetest.Canary

func testConnection(id string) Connection { return storagetest.Connection(id) }

func sameConnection(t *testing.T, got, want Connection) {
	t.Helper()
	if got.ID != want.ID || !slices.Equal(got.Connectors, want.Connectors) || !bytes.Equal(got.Params, want.Params) ||
		got.AuthType != want.AuthType || !slices.Equal(got.Hosts, want.Hosts) || got.Status != want.Status ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) ||
		!bytes.Equal(got.Meta, want.Meta) || !bytes.Equal(got.Secret, want.Secret) {
		t.Errorf("connection = %v %s %s %s %v %v\nwant         %v %s %s %s %v %v", got, got.Params, got.Meta, got.Secret, got.CreatedAt, got.UpdatedAt,
			want, want.Params, want.Meta, want.Secret, want.CreatedAt, want.UpdatedAt)
	}
}

// newSourceWithSubs creates the poll source src_1 (secret "source-secret") with subs, the
// first with the secret "whsec_first".
func newSourceWithSubs(t *testing.T, s *Store, subs ...Subscription) Source {
	t.Helper()
	src := Source{ID: "src_1", Key: "k1", Kind: SourcePoll, Status: SourceActive, TriggerRef: TriggerRef{Connector: "c", Trigger: "tr", Params: json.RawMessage(`{}`)}}
	first := subs[0]
	first.SourceID = src.ID
	if err := s.CreateSource(bg, src, []byte("source-secret"), &first, []byte("whsec_first")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range subs[1:] {
		sub.SourceID = src.ID
		if err := s.AddSubscription(bg, sub, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// evs returns one new event per id, its data naming the id.
func evs(ids ...string) []NewEvent {
	out := make([]NewEvent, len(ids))
	for i, id := range ids {
		out[i] = NewEvent{SourceEventID: id, Data: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id))}
	}
	return out
}
