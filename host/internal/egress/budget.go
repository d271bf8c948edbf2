package egress

import "sync/atomic"

// Budget is the number of outbound requests one plugin call may still send. Every request handed
// to the transport takes one: each redirect hop and the OAuth2 retry after a 401 included, and a
// request then refused by the dialer's address check (private_address). Requests refused before
// that (invalid_request, host_not_allowed, denied) take none. It is safe for concurrent use, so a
// guest that issues requests from several threads shares one budget.
//
// A nil *Budget is unlimited; the host always passes one per call.
type Budget struct {
	max  int64
	left atomic.Int64
}

// NewBudget returns a budget of n requests; n <= 0 allows none.
func NewBudget(n int) *Budget {
	b := &Budget{max: int64(max(n, 0))}
	b.left.Store(b.max)
	return b
}

// take spends one request; it reports false, spending nothing, when none is left.
func (b *Budget) take() bool {
	if b == nil {
		return true
	}
	for {
		n := b.left.Load()
		if n <= 0 {
			return false
		}
		if b.left.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// Used returns how many requests have been spent; 0 for a nil budget.
func (b *Budget) Used() int {
	if b == nil {
		return 0
	}
	return int(b.max - b.left.Load())
}

// Remaining returns how many requests are left; -1 for a nil (unlimited) budget.
func (b *Budget) Remaining() int {
	if b == nil {
		return -1
	}
	return int(b.left.Load())
}
