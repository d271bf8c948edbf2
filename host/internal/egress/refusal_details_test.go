package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/plugboard/plugboard/abi"
)

// TestPrivateAddressDetails: a private_address refusal names the refused address and the range
// --egress-allow would need, so the server can tell the operator exactly what to allow.
func TestPrivateAddressDetails(t *testing.T) {
	up := newUpstream(t, nil)
	tests := []struct {
		name           string
		resolves       []string // for "svc.test"; nil: the URL host is the literal
		host           string
		address, allow string
	}{
		{name: "IP literal 127.0.0.1 asks for 127.0.0.0/8", host: "127.0.0.1", address: "127.0.0.1", allow: "127.0.0.0/8"},
		{name: "name resolving to 192.168.1.7 asks for 192.168.0.0/16", resolves: []string{"192.168.1.7"}, host: "svc.test", address: "192.168.1.7", allow: "192.168.0.0/16"},
		{name: "name resolving to several names the first", resolves: []string{"10.1.2.3", "127.0.0.1"}, host: "svc.test", address: "10.1.2.3", allow: "10.0.0.0/8"},
		{name: "IP literal ::1 asks for ::1/128", host: "[::1]", address: "::1", allow: "::1/128"},
		{name: "IPv4-mapped loopback asks for the IPv4 range", host: "[::ffff:127.0.0.1]", address: "::ffff:127.0.0.1", allow: "127.0.0.0/8"},
		{name: "unique local fd00::1 asks for fc00::/7", host: "[fd00::1]", address: "fd00::1", allow: "fc00::/7"},
		{name: "metadata 169.254.169.254 is not offered", host: "169.254.169.254", address: "169.254.169.254"},
		{name: "NAT64 of metadata is not offered", host: "[64:ff9b::a9fe:a9fe]", address: "64:ff9b::a9fe:a9fe"},
		{name: "multicast is not offered", resolves: []string{"224.0.0.1"}, host: "svc.test", address: "224.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := newResolver()
			if tt.resolves != nil {
				res.set(tt.host, tt.resolves...)
			}
			c, _ := newClient(t, Config{Resolver: res})
			url := fmt.Sprintf("http://%s:%d/x", tt.host, up.port())
			origin, err := abi.OriginOfURL(url)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{origin}}, NewBudget(5), get(url), nil)
			if got.Error == nil || got.Error.Code != abi.CodePrivateAddress {
				t.Fatalf("got %+v, want private_address", got)
			}
			var d struct{ Address, Allow string }
			if err := json.Unmarshal(got.Error.Details, &d); err != nil || d.Address != tt.address || d.Allow != tt.allow {
				t.Errorf("details = %s, want address %s and allow %s", got.Error.Details, tt.address, tt.allow)
			}
		})
	}
}
