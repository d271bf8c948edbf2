package host

import (
	"context"

	"github.com/plugboard/plugboard/host/internal/egress"
)

// IsAddressRefused reports whether err, from a request sent with [Host.HostHTTPClient], is the
// refusal of an address the egress policy does not allow (private, loopback, link-local,
// multicast or unspecified, unless the server allows the range).
func IsAddressRefused(err error) bool { return egress.IsAddressRefused(err) }

// IsNameNotFound reports whether err, from [Host.CheckAddress] or a request sent with
// [Host.HostHTTPClient], says the host name does not exist or has no address (not a lookup
// that failed for now).
func IsNameNotFound(err error) bool { return egress.IsNameNotFound(err) }

// CheckAddress resolves host (a name or an IP literal, without a port) with the egress
// resolver and reports whether the egress policy lets a request reach it: nil when at least one
// address is allowed; an error for which [IsAddressRefused] holds when every address is
// refused (its message names the host and the refused addresses, and is safe to show); the
// lookup error otherwise ([IsNameNotFound] tells a missing name from a failed lookup).
func (h *Host) CheckAddress(ctx context.Context, host string) error {
	return h.egress.CheckHost(ctx, host)
}
