package egress

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/abi"
)

func TestPrivateAddressRefused(t *testing.T) {
	up := newUpstream(t, nil)
	tests := []struct {
		name     string
		resolves []string // addresses "svc.test" resolves to; nil for an IP-literal URL
		host     string   // URL host (name or literal)
		kind     string   // expected in the message
	}{
		{name: "name resolving to 127.0.0.1 is refused", resolves: []string{"127.0.0.1"}, host: "svc.test", kind: "loopback"},
		{name: "name resolving to 10.0.0.1 is refused", resolves: []string{"10.0.0.1"}, host: "svc.test", kind: "private"},
		{name: "name resolving to 169.254.169.254 is refused", resolves: []string{"169.254.169.254"}, host: "svc.test", kind: "link-local"},
		{name: "name resolving to ::1 is refused", resolves: []string{"::1"}, host: "svc.test", kind: "loopback"},
		{name: "name resolving to ::ffff:127.0.0.1 is refused", resolves: []string{"::ffff:127.0.0.1"}, host: "svc.test", kind: "loopback"},
		{name: "name resolving to 100.64.0.1 is refused", resolves: []string{"100.64.0.1"}, host: "svc.test", kind: "CGNAT"},
		{name: "name resolving to 0.0.0.0 is refused", resolves: []string{"0.0.0.0"}, host: "svc.test", kind: "unspecified"},
		{name: "name resolving to fd00::1 is refused", resolves: []string{"fd00::1"}, host: "svc.test", kind: "unique local"},
		{name: "name resolving to several refused addresses is refused", resolves: []string{"10.0.0.1", "192.168.1.1", "127.0.0.1"}, host: "svc.test", kind: "10.0.0.1, 192.168.1.1, 127.0.0.1"},
		{name: "IP literal 127.0.0.1 is refused", host: "127.0.0.1", kind: "loopback"},
		{name: "IP literal 10.0.0.1 is refused", host: "10.0.0.1", kind: "private"},
		{name: "IP literal 169.254.169.254 is refused", host: "169.254.169.254", kind: "link-local"},
		{name: "IP literal ::1 is refused", host: "[::1]", kind: "loopback"},
		{name: "IP literal ::ffff:127.0.0.1 is refused", host: "[::ffff:127.0.0.1]", kind: "loopback"},
		{name: "IP literal ::127.0.0.1 (IPv4-compatible) is refused", host: "[::127.0.0.1]", kind: "IPv4-compatible"},
		{name: "IP literal 100.64.0.1 is refused", host: "100.64.0.1", kind: "CGNAT"},
		{name: "IP literal fe80::1 with a zone is refused", host: "[fe80::1%25lo]", kind: "link-local"},
		{name: "IP literal 64:ff9b::a9fe:a9fe (NAT64 of metadata) is refused", host: "[64:ff9b::a9fe:a9fe]", kind: "NAT64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := newResolver()
			if tt.resolves != nil {
				res.set(tt.host, tt.resolves...)
			}
			c, dials := newClient(t, Config{Resolver: res})
			url := fmt.Sprintf("http://%s:%d/x", tt.host, up.port())
			origin, err := abi.OriginOfURL(url)
			if err != nil {
				t.Fatal(err)
			}
			var rec records
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{origin}}, NewBudget(5), get(url), rec.add)
			wantErr(t, got, "private_address", tt.kind, "--egress-allow")
			if d := dials.list(); len(d) != 0 {
				t.Errorf("dialed %v", d)
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream got %d requests", n)
			}
			if out := rec.list(); len(out) != 1 || out[0].Status != 0 || out[0].Err == "" {
				t.Errorf("records = %+v", out)
			}
		})
	}
}

func TestAllowNetworks(t *testing.T) {
	up := newUpstream(t, nil)
	tests := []struct {
		name      string
		allow     []string
		resolves  []string // for "svc.test"; nil: the URL host is 127.0.0.1
		wantCode  string
		wantDials []string // hosts dialed (port added)
	}{
		{name: "with AllowNetworks 127.0.0.0/8 the loopback server is reached", allow: []string{"127.0.0.0/8"}, resolves: []string{"127.0.0.1"}, wantDials: []string{"127.0.0.1"}},
		{name: "IP literal inside AllowNetworks is reached", allow: []string{"127.0.0.0/8"}, wantDials: []string{"127.0.0.1"}},
		{name: "a single allowed host is enough", allow: []string{"127.0.0.1/32"}, resolves: []string{"127.0.0.1"}, wantDials: []string{"127.0.0.1"}},
		{name: "IPv4-mapped answer is dialed as IPv4 when allowed", allow: []string{"127.0.0.0/8"}, resolves: []string{"::ffff:127.0.0.1"}, wantDials: []string{"127.0.0.1"}},
		{name: "IPv4-mapped AllowNetworks prefix allows the IPv4 range", allow: []string{"::ffff:127.0.0.0/104"}, resolves: []string{"127.0.0.1"}, wantDials: []string{"127.0.0.1"}},
		{name: "mixed answer dials only the allowed address", allow: []string{"127.0.0.0/8"}, resolves: []string{"10.0.0.1", "169.254.169.254", "127.0.0.1"}, wantDials: []string{"127.0.0.1"}},
		{name: "AllowNetworks of another range does not open loopback", allow: []string{"10.0.0.0/8"}, resolves: []string{"127.0.0.1"}, wantCode: "private_address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var allow []netip.Prefix
			for _, a := range tt.allow {
				allow = append(allow, netip.MustParsePrefix(a))
			}
			res := newResolver()
			host := "127.0.0.1"
			if tt.resolves != nil {
				host = "svc.test"
				res.set(host, tt.resolves...)
			}
			c, dials := newClient(t, Config{AllowNetworks: allow, Resolver: res})
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{up.origin(host)}}, nil, get(up.url(host, "/x")), nil)
			if tt.wantCode != "" {
				wantErr(t, got, tt.wantCode)
			} else {
				wantOK(t, got, http.StatusOK)
			}
			var want []string
			for _, h := range tt.wantDials {
				want = append(want, fmt.Sprintf("%s:%d", h, up.port()))
			}
			if got := dials.list(); !slices.Equal(got, want) {
				t.Errorf("dialed %v, want %v", got, want)
			}
		})
	}
}

// TestDialUsesCheckedAddress plays a rebinding DNS server. The client resolves once per new
// connection, never per request, and dials exactly the address it checked; once the name rebinds
// to a private address, the next new connection looks up again and is refused without a dial.
func TestDialUsesCheckedAddress(t *testing.T) {
	up := newUpstream(t, nil)
	res := newResolver().set("rebind.test", "127.0.0.1")
	c, dials := newClient(t, Config{AllowNetworks: loopback, Resolver: res})
	g := &Grant{ManifestOrigins: []string{up.origin("rebind.test")}}
	checked := fmt.Sprintf("127.0.0.1:%d", up.port())

	steps := []struct {
		name     string
		rebind   bool // the name answers 10.0.0.1 from now on, and idle connections are closed
		wantCode string
	}{
		{name: "first request resolves once and dials the checked address"},
		{name: "second request adds no lookup beyond its connection"},
		{name: "a new connection after rebinding resolves again and is refused", rebind: true, wantCode: "private_address"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.rebind {
				res.replace("rebind.test", "10.0.0.1")
				c.CloseIdleConnections()
			}
			got := c.Do(context.Background(), g, nil, get(up.url("rebind.test", "/x")), nil)
			if s.wantCode == "" {
				wantOK(t, got, http.StatusOK)
			} else {
				wantErr(t, got, s.wantCode, "10.0.0.1")
			}
			// Every lookup but a refused one leads to exactly one dial of the checked address
			// and one connection upstream. Whether the second request reuses the first
			// connection depends on how fast net/http pools it, and a dial it started may
			// finish in the background, so poll until the counts settle.
			refused := btoi(s.wantCode != "")
			var lookups, conns int
			var d []string
			for deadline := time.Now().Add(5 * time.Second); ; {
				lookups, d, conns = res.count("rebind.test"), dials.list(), up.connCount()
				if lookups == len(d)+refused && len(d) == conns || time.Now().After(deadline) {
					break
				}
				runtime.Gosched()
			}
			if lookups != len(d)+refused || len(d) != conns {
				t.Errorf("lookups %d, dials %v, upstream connections %d: want lookups = dials (+1 refused) = connections", lookups, d, conns)
			}
			for _, a := range d {
				if a != checked {
					t.Errorf("dialed %s, want the checked %s", a, checked)
				}
			}
		})
	}
}

func TestControlHookRefusesUncheckedAddress(t *testing.T) {
	c := New(Config{AllowNetworks: loopback})
	tests := []struct {
		name    string
		address string
		wantErr bool
	}{
		{name: "allowed loopback", address: "127.0.0.1:80"},
		{name: "public", address: "8.8.8.8:443"},
		{name: "private", address: "10.1.2.3:80", wantErr: true},
		{name: "metadata", address: "169.254.169.254:80", wantErr: true},
		{name: "not an address", address: "example.com:80", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.controlAddress("tcp4", tt.address, nil); (err != nil) != tt.wantErr {
				t.Errorf("controlAddress(%s) = %v, want error %v", tt.address, err, tt.wantErr)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		addr  string
		allow []string
		want  string // "" allowed, else a word of the kind
	}{
		{addr: "8.8.8.8"},
		{addr: "1.1.1.1"},
		{addr: "172.32.0.1"},
		{addr: "100.128.0.1"},
		{addr: "2606:4700:4700::1111"},
		{addr: "64:ff9b::808:808"}, // NAT64 of 8.8.8.8
		{addr: "2002:808:808::1"},  // 6to4 of 8.8.8.8
		{addr: "::ffff:8.8.8.8"},   // mapped public
		{addr: "0.0.0.0", want: "unspecified"},
		{addr: "0.1.2.3", want: "unspecified"},
		{addr: "10.255.255.255", want: "private"},
		{addr: "100.64.0.1", want: "CGNAT"},
		{addr: "100.127.255.255", want: "CGNAT"},
		{addr: "127.0.0.1", want: "loopback"},
		{addr: "127.255.255.254", want: "loopback"},
		{addr: "169.254.169.254", want: "link-local"},
		{addr: "172.16.0.1", want: "private"},
		{addr: "172.31.255.255", want: "private"},
		{addr: "192.0.0.170", want: "IETF"},
		{addr: "192.0.2.1", want: "documentation"},
		{addr: "192.168.0.1", want: "private"},
		{addr: "198.18.0.1", want: "benchmarking"},
		{addr: "224.0.0.1", want: "multicast"},
		{addr: "239.255.255.250", want: "multicast"},
		{addr: "240.0.0.1", want: "reserved"},
		{addr: "255.255.255.255", want: "reserved"},
		{addr: "::", want: "unspecified"},
		{addr: "::1", want: "loopback"},
		{addr: "::ffff:127.0.0.1", want: "loopback"},
		{addr: "::ffff:10.0.0.1", want: "private"},
		{addr: "::ffff:169.254.169.254", want: "link-local"},
		{addr: "::ffff:0.0.0.0", want: "unspecified"},
		{addr: "::127.0.0.1", want: "IPv4-compatible"},
		{addr: "::10.0.0.1", want: "IPv4-compatible"},
		{addr: "fc00::1", want: "unique local"},
		{addr: "fd12:3456::1", want: "unique local"},
		{addr: "fe80::1", want: "link-local"},
		{addr: "fe80::1%eth0", want: "link-local"},
		{addr: "fec0::1", want: "site-local"},
		{addr: "ff02::1", want: "multicast"},
		{addr: "2001:db8::1", want: "documentation"},
		{addr: "2001:0:4136:e378::1", want: "Teredo"},
		{addr: "100::1", want: "discard"},
		{addr: "64:ff9b::7f00:1", want: "loopback"},      // NAT64 of 127.0.0.1
		{addr: "64:ff9b::a9fe:a9fe", want: "link-local"}, // NAT64 of 169.254.169.254
		{addr: "64:ff9b:1::8.8.8.8", want: "NAT64"},
		{addr: "2002:a00:1::1", want: "private"}, // 6to4 of 10.0.0.1
		{addr: "127.0.0.1", allow: []string{"127.0.0.0/8"}},
		{addr: "::ffff:127.0.0.1", allow: []string{"127.0.0.0/8"}},
		{addr: "10.1.2.3", allow: []string{"::ffff:10.0.0.0/104"}},
		{addr: "fd00::5", allow: []string{"fd00::/8"}},
		{addr: "10.1.2.3", allow: []string{"10.1.2.3/32"}},
		{addr: "10.1.2.4", allow: []string{"10.1.2.3/32"}, want: "private"},
		{addr: "64:ff9b::a00:1", allow: []string{"10.0.0.0/8"}, want: "private"}, // the gateway's 10/8 is not ours
		{addr: "::127.0.0.1", allow: []string{"127.0.0.0/8"}, want: "IPv4-compatible"},
	}
	for _, tt := range tests {
		name := tt.addr
		if tt.allow != nil {
			name += " with " + fmt.Sprint(tt.allow)
		}
		t.Run(name, func(t *testing.T) {
			var allow []netip.Prefix
			for _, a := range tt.allow {
				allow = append(allow, netip.MustParsePrefix(a))
			}
			kind, ok := newPolicy(allow).check(netip.MustParseAddr(tt.addr))
			switch {
			case tt.want == "" && !ok:
				t.Errorf("refused as %q, want allowed", kind)
			case tt.want != "" && ok:
				t.Errorf("allowed, want refused as %s", tt.want)
			case tt.want != "" && !strings.Contains(kind, tt.want):
				t.Errorf("refused as %q, want %q", kind, tt.want)
			}
		})
	}
}
