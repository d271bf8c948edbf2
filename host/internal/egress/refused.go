package egress

import "errors"

// IsAddressRefused reports whether err is the dialer's refusal of a private, loopback,
// link-local or otherwise disallowed address.
func IsAddressRefused(err error) bool {
	var ae *addressError
	return errors.As(err, &ae)
}
