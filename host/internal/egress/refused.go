package egress

import (
	"errors"
	"net"
)

// IsAddressRefused reports whether err is the dialer's refusal of a private, loopback,
// link-local or otherwise disallowed address.
func IsAddressRefused(err error) bool {
	var ae *addressError
	return errors.As(err, &ae)
}

// IsNameNotFound reports whether err is a lookup that found the name does not exist (or has
// no address), as opposed to one that failed for now (a timeout, an unreachable resolver).
func IsNameNotFound(err error) bool {
	var re *resolveError
	if !errors.As(err, &re) {
		return false
	}
	var dnsErr *net.DNSError
	return re.err == nil || errors.As(re.err, &dnsErr) && dnsErr.IsNotFound
}
