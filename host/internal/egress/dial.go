package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Resolver looks up the addresses of a host name. *net.Resolver implements it; tests pass a
// fake. network is "ip" (both families).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// addressError is the dialer's refusal: every address the host resolved to is refused by the
// policy. It becomes a private_address error document.
type addressError struct {
	host    string       // the name (or IP literal) being dialed
	literal bool         // host is an IP literal
	refused []netip.Addr // the refused addresses, in resolver order
	kind    string       // why the first one is refused
}

func (e *addressError) Error() string {
	if e.literal {
		return fmt.Sprintf("%s is a %s address", e.host, e.kind)
	}
	shown := e.refused[:min(len(e.refused), 4)]
	addrs := make([]string, len(shown))
	for i, a := range shown {
		addrs[i] = a.String()
	}
	more := ""
	if len(e.refused) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(e.refused)-len(shown))
	}
	return fmt.Sprintf("%s resolves only to refused addresses (%s%s; the first is %s)",
		e.host, strings.Join(addrs, ", "), more, e.kind)
}

// resolveError is a failed or empty lookup.
type resolveError struct {
	host string
	err  error // nil: the resolver answered no address
}

func (e *resolveError) Error() string {
	if e.err == nil {
		return "cannot resolve " + e.host + ": no addresses"
	}
	var dnsErr *net.DNSError
	if errors.As(e.err, &dnsErr) {
		return "cannot resolve " + e.host + ": " + dnsErr.Err
	}
	return "cannot resolve " + e.host + ": " + e.err.Error()
}

func (e *resolveError) Unwrap() error { return e.err }

// dialContext is the transport's DialContext. It resolves the host once, keeps the addresses the
// policy allows, and dials those addresses, never the name: the address that was checked is the
// address that is connected to, so a second lookup (DNS rebinding) cannot change it. A name with
// no allowed address fails with *addressError; refused addresses are never dialed, even when
// allowed ones are present. A Config.ConnectTo entry for the address replaces it first.
func (c *Client) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if to, ok := c.connectTo[strings.ToLower(address)]; ok {
		address = to
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("invalid port %q", portStr)
	}

	allowed, err := c.allowedAddrs(ctx, host)
	if err != nil {
		return nil, err
	}

	// Try each allowed address in resolver order, giving each a fair share of the time left,
	// as the net package does for a name with several addresses.
	var first error
	for i, a := range allowed {
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if deadline, ok := ctx.Deadline(); ok && i < len(allowed)-1 {
			dctx, cancel = context.WithDeadline(ctx, partialDeadline(time.Now(), deadline, len(allowed)-i))
		}
		conn, err := c.dial(dctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		cancel()
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// allowedAddrs resolves host (a name or an IP literal) once and returns the addresses the
// policy allows, unmapped and without duplicates, in resolver order. A failed or empty lookup
// is a *resolveError; a host with no allowed address is an *addressError.
func (c *Client) allowedAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	literal := false
	if a, err := netip.ParseAddr(host); err == nil {
		addrs, literal = []netip.Addr{a}, true
	} else {
		host = strings.ToLower(host) // as in the origin that was allowed
		addrs, err = c.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, &resolveError{host: host, err: err}
		}
		if len(addrs) == 0 {
			return nil, &resolveError{host: host}
		}
	}

	allowed := make([]netip.Addr, 0, len(addrs))
	var refused *addressError
	for _, a := range addrs {
		if kind, ok := c.policy.check(a); ok {
			a = a.Unmap() // dial IPv4 as IPv4
			if !slices.Contains(allowed, a) {
				allowed = append(allowed, a)
			}
		} else if refused == nil {
			refused = &addressError{host: host, literal: literal, refused: []netip.Addr{a}, kind: kind}
		} else {
			refused.refused = append(refused.refused, a)
		}
	}
	if len(allowed) == 0 {
		return nil, refused
	}
	return allowed, nil

}

// CheckHost resolves host (a name or an IP literal, without a port) as the dialer would and
// reports whether a request to it could be sent: nil when at least one of its addresses is
// allowed, an error for which [IsAddressRefused] holds when every address is refused, and
// the lookup's error (see [IsNameNotFound]) when it does not resolve. It lets a caller refuse
// a URL up front, for example a push subscriber's; the dialer still checks every connection,
// since the name may resolve differently later.
//
// A host that Config.ConnectTo sends elsewhere (on any port) is checked at its targets, as a
// connection to it would be dialed: allowed when any target is.
func (c *Client) CheckHost(ctx context.Context, host string) error {
	var err error
	mapped := false
	for from, to := range c.connectTo {
		if h, _, _ := net.SplitHostPort(from); !strings.EqualFold(h, host) {
			continue
		}
		mapped = true
		th, _, serr := net.SplitHostPort(to)
		if serr != nil {
			th = to
		}
		if _, err = c.allowedAddrs(ctx, th); err == nil {
			return nil
		}
	}
	if mapped {
		return err
	}
	_, err = c.allowedAddrs(ctx, host)
	return err
}

// partialDeadline returns the deadline of one of several dial attempts sharing the time left.
func partialDeadline(now, deadline time.Time, remaining int) time.Time {
	left := deadline.Sub(now)
	share := left / time.Duration(remaining)
	const floor = 2 * time.Second
	if share < floor {
		share = min(floor, left)
	}
	return now.Add(share)
}

// controlAddress is the dialer's Control hook, a second line of defence: the socket is about to
// connect to address, which must be one the policy allows. dialContext only ever passes such
// addresses, so this refusing means a bug, not a guest's doing.
func (c *Client) controlAddress(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: refusing to connect to unparsable address %q", address)
	}
	if kind, ok := c.policy.check(ap.Addr()); !ok {
		return &addressError{host: ap.Addr().String(), literal: true, refused: []netip.Addr{ap.Addr()}, kind: kind}
	}
	return nil
}
