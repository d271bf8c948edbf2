package egress

import (
	"context"
	"net/http"
	"sync"
	"testing"
)

// TestKeepAliveUnderConcurrency: a connector making many calls at once to one origin (a pool
// of instances serving concurrent actions) keeps its upstream connections open between
// rounds, instead of dialing again whatever exceeded a small idle limit (the 8 kept per host
// before made a loaded action dial most of its upstream requests).
func TestKeepAliveUnderConcurrency(t *testing.T) {
	up := newUpstream(t, nil)
	c, dials := newClient(t, Config{AllowNetworks: loopback})
	o := up.origin("127.0.0.1")
	const concurrent, rounds = 32, 4
	for range rounds {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				got := c.Do(context.Background(), &Grant{ManifestOrigins: []string{o}}, nil, get(o+"/x"), nil)
				wantOK(t, got, http.StatusOK)
			})
		}
		wg.Wait()
	}
	// Round one dials up to one connection per caller; later rounds reuse them. A connection
	// returned to the idle pool a moment after the next round began may be dialed again, so
	// allow a few more than one round's worth.
	if n := len(dials.list()); n > concurrent+concurrent/4 {
		t.Errorf("%d rounds of %d concurrent requests to one origin dialed %d connections (upstream saw %d), want at most %d: idle connections are not kept",
			rounds, concurrent, n, up.connCount(), concurrent+concurrent/4)
	}
}
