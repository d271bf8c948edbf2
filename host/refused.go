package host

import "github.com/plugboard/plugboard/host/internal/egress"

// IsAddressRefused reports whether err, from a request sent with [Host.HostHTTPClient], is the
// refusal of an address the egress policy does not allow (private, loopback, link-local,
// multicast or unspecified, unless the server allows the range).
func IsAddressRefused(err error) bool { return egress.IsAddressRefused(err) }
