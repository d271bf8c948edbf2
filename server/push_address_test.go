package server

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/host"
)

// dnsTable is a resolver whose answers a test changes as it goes: a name maps to addresses,
// or to a lookup error.
type dnsTable struct {
	mu    sync.Mutex
	addrs map[string][]string
	errs  map[string]error
}

func (d *dnsTable) set(name string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs[name] = addrs
}

func (d *dnsTable) LookupNetIP(ctx context.Context, network, name string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.errs[name]; err != nil {
		return nil, err
	}
	as, ok := d.addrs[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	out := make([]netip.Addr, len(as))
	for i, a := range as {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

func newDNSTable() *dnsTable {
	return &dnsTable{addrs: map[string][]string{}, errs: map[string]error{
		"flaky.test": &net.DNSError{Err: "i/o timeout", Name: "flaky.test", IsTimeout: true, IsTemporary: true},
	}}
}

// A push subscription whose URL can only reach refused addresses is refused at creation with
// the egress code (private_address) and a detail that says what to do; a name that does not
// exist is refused too; a name that has one allowed address, or whose lookup fails for now,
// is accepted (the pusher checks every attempt again).
func TestSubscriptionRefusesUnreachablePushURL(t *testing.T) {
	dns := newDNSTable()
	dns.set("loopback.test", "127.0.0.1")
	dns.set("metadata.test", "169.254.169.254")
	dns.set("private.test", "10.0.0.1", "192.168.1.1")

	t.Run("without --egress-allow", func(t *testing.T) {
		ts := startServer(t, func(o *Options) {
			o.EgressAllow = nil
			o.Host = host.Config{CacheDir: sharedCache, Egress: host.EgressConfig{Resolver: dns}}
		})
		for _, tc := range []struct{ name, url, code, mention string }{
			{"127.0.0.1 is refused", "http://127.0.0.1:9000/hook", "private_address", "127.0.0.1"},
			{"[::1] is refused", "http://[::1]:9000/hook", "private_address", "::1"},
			{"a name resolving to 127.0.0.1 is refused", "http://loopback.test/hook", "private_address", "127.0.0.1"},
			{"the cloud metadata address is refused", "http://metadata.test/latest/meta-data/", "private_address", "169.254.169.254"},
			{"a name resolving only to private addresses is refused", "https://private.test/hook", "private_address", "10.0.0.1"},
			{"a name that does not exist is refused", "https://nxdomain.test/hook", "invalid_request", "nxdomain.test"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
					"delivery": map[string]any{"type": "webhook", "url": tc.url}})
				p := r.json(t)
				detail, _ := p["detail"].(string)
				if r.Status != 400 || p["code"] != tc.code || p["source"] != "plugboard" || !strings.Contains(detail, tc.mention) {
					t.Fatalf("create answered %d %s, want 400 %s naming %s", r.Status, r.Body, tc.code, tc.mention)
				}
				if tc.code == "private_address" && !strings.Contains(detail, "--egress-allow") {
					t.Errorf("detail %q does not say how to allow the range", detail)
				}
				t.Logf("%s", detail)
			})
		}
	})

	t.Run("with --egress-allow 127.0.0.1/32", func(t *testing.T) {
		f := newFeed(t)
		dns.set("mixed.test", "10.0.0.1", "93.184.215.14")
		ts := triggerServer(t, f, func(o *Options) {
			o.EgressAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			o.Host = host.Config{CacheDir: sharedCache, Egress: host.EgressConfig{Resolver: dns}}
		})
		create := func(url string) response {
			return ts.do("POST", "/v1/subscriptions", map[string]any{"connector": "trig", "trigger": "items", "connection": "feed",
				"interval_s": 1, "delivery": map[string]any{"type": "webhook", "url": url}})
		}
		for _, tc := range []struct {
			name, url string
			status    int
		}{
			{"127.0.0.1 inside the allowed range is accepted", "http://127.0.0.1:9/hook", 201},
			{"a name resolving to it is accepted", "http://loopback.test:9/hook", 201},
			{"127.0.0.2 outside the allowed range is refused", "http://127.0.0.2:9/hook", 400},
			{"a name with one public address is accepted", "https://mixed.test/hook", 201},
			{"a lookup that fails for now is accepted", "https://flaky.test/hook", 201},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if r := create(tc.url); r.Status != tc.status {
					t.Fatalf("create answered %d %s, want %d", r.Status, r.Body, tc.status)
				}
			})
		}
	})
}

// A push that the egress policy refuses at delivery (the name resolved to a public address at
// creation and to a private one later) shows in the subscription's last_error {code, message,
// at} and in push.attempts, on every attempt.
func TestPushRefusedAtDeliveryShowsInLastError(t *testing.T) {
	f := newFeed(t)
	dns := newDNSTable()
	dns.set("rebind.test", "93.184.215.14")
	ts := triggerServer(t, f, func(o *Options) {
		o.EgressAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		o.Host = host.Config{CacheDir: sharedCache, Egress: host.EgressConfig{Resolver: dns}}
		o.Triggers.RetrySchedule = []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, time.Hour}
	})
	sub := ts.subscribe("items", nil, map[string]any{"type": "webhook", "url": "http://rebind.test/hook"})["id"].(string)
	dns.set("rebind.test", "127.0.0.2") // before any event, so no push ever goes to the public address
	f.add(1)

	var doc map[string]any
	eventually(t, 15*time.Second, "four refused attempts", func() bool {
		doc = ts.must(200, ts.do("GET", "/v1/subscriptions/"+sub, nil)).json(t)
		return doc["push"].(map[string]any)["attempts"].(float64) >= 4
	})
	le, _ := doc["last_error"].(map[string]any)
	if le == nil {
		t.Fatalf("last_error is null after refused pushes: %v", doc)
	}
	msg, _ := le["message"].(string)
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(le["at"].(string)))
	if le["code"] != "private_address" || !strings.Contains(msg, "127.0.0.2") || !strings.Contains(msg, "--egress-allow") ||
		err != nil || time.Since(at) > time.Minute {
		t.Fatalf("last_error = %v, want private_address naming 127.0.0.2 and --egress-allow, at a recent time", le)
	}
	push := doc["push"].(map[string]any)
	if push["last_error_code"] != "private_address" || push["next_attempt_at"] == nil {
		t.Errorf("push = %v, want last_error_code private_address and a retry scheduled", push)
	}
	if c := doc["counts"].(map[string]any); c["delivered"].(float64) != 0 || c["pending"].(float64) != 1 {
		t.Errorf("counts = %v, want the event pending, not delivered", c)
	}
}
