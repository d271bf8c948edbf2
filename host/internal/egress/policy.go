package egress

import (
	"net/netip"
)

// refusedRange is a special-purpose address block plugins may not reach unless
// [Config.AllowNetworks] covers the address. kind names the block in error messages.
type refusedRange struct {
	prefix netip.Prefix
	kind   string
}

// refusedRanges are the blocks that are not the public internet: loopback, private, link-local,
// multicast, unspecified, shared (CGNAT) and the other special-purpose blocks of the IANA
// registries (RFC 6890 and successors) that a host or its network may route somewhere internal.
// The first match names the kind, so the narrow ::/128 and ::1/128 come before ::/96.
var refusedRanges = []refusedRange{
	// IPv4. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are unmapped before they are checked.
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"}, // "this network"; 0.0.0.0 reaches the local host
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"}, // includes cloud metadata, 169.254.169.254
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes 255.255.255.255 broadcast

	// IPv6.
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"}, // deprecated ::a.b.c.d form
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Blocks whose IPv6 addresses carry an IPv4 address that a gateway will reach for us: NAT64
// (RFC 6052, the address in the low 32 bits) and 6to4 (RFC 3056, bits 16 to 48). Such an address
// is refused when the IPv4 address it carries is.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// policy decides which addresses a Client may dial.
type policy struct {
	allow []netip.Prefix // normalised Config.AllowNetworks
}

// newPolicy normalises the allowed prefixes: masked, and IPv4-mapped prefixes (::ffff:0:0/96
// and longer) turned into their IPv4 form so they match unmapped addresses. Invalid (zero)
// prefixes are dropped.
func newPolicy(allow []netip.Prefix) policy {
	var p policy
	for _, pr := range allow {
		if !pr.IsValid() {
			continue
		}
		pr = pr.Masked()
		if a := pr.Addr(); a.Is4In6() && pr.Bits() >= 96 {
			pr = netip.PrefixFrom(a.Unmap(), pr.Bits()-96)
		}
		p.allow = append(p.allow, pr)
	}
	return p
}

// check reports whether a may be dialed. When it may not, kind says why ("loopback",
// "private", ...). The address is checked without its zone and, if IPv4-mapped, as IPv4.
func (p policy) check(a netip.Addr) (kind string, ok bool) {
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return "invalid", false
	}
	for _, pr := range p.allow {
		if pr.Contains(a) {
			return "", true
		}
	}
	if kind := refusedKind(a); kind != "" {
		return kind, false
	}
	return "", true
}

// refusedKind names the refused block a (zone-less, unmapped) falls in, or "" for a public
// address. AllowNetworks plays no part: an IPv4 address carried inside NAT64 or 6to4 is judged
// against the table alone, because the gateway would reach it on its own network, not ours.
func refusedKind(a netip.Addr) string {
	for _, r := range refusedRanges {
		if r.prefix.Contains(a) {
			return r.kind
		}
	}
	if v4, ok := embeddedIPv4(a); ok {
		if kind := refusedKind(v4); kind != "" {
			return kind + " (inside a NAT64 or 6to4 address)"
		}
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address a NAT64 or 6to4 address carries.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case !a.Is6():
		return netip.Addr{}, false
	case nat64Prefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// allowFor is the range an operator would allow (--egress-allow) so that a, a refused address,
// may be dialed: the refused block a falls in (127.0.0.0/8 for 127.0.0.1). ok is false unless
// that block is one a development or on-premises setup reaches on purpose (loopback, private,
// unique local, shared): the host never suggests opening link-local (cloud metadata),
// multicast, unspecified or an address carried inside NAT64 or 6to4.
func allowFor(a netip.Addr) (p netip.Prefix, ok bool) {
	a = a.WithZone("").Unmap()
	for _, r := range refusedRanges {
		if r.prefix.Contains(a) {
			switch r.kind {
			case "loopback", "private", "private (unique local)", "shared (CGNAT)":
				return r.prefix, true
			}
			return netip.Prefix{}, false
		}
	}
	return netip.Prefix{}, false
}
