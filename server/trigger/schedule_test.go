package trigger

import (
	"context"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

// sourceOf reads a subscription's source from the store.
func (c *cluster) sourceOf(sub storage.Subscription) storage.Source {
	c.t.Helper()
	src, err := c.st.GetSource(context.Background(), sub.SourceID)
	if err != nil {
		c.t.Fatal(err)
	}
	return src
}

// scheduledAt reports whether a source polls every ivS seconds: PollIntervalS is ivS and the
// next poll is that long after the last (±10% jitter from a poll, none from a reschedule).
func scheduledAt(src storage.Source, ivS int) bool {
	iv := time.Duration(ivS) * time.Second
	return src.PollIntervalS == ivS && !src.NextPollAt.Before(src.LastPolledAt.Add(iv-iv/10)) && !src.NextPollAt.After(src.LastPolledAt.Add(iv+iv/10))
}

// A subscription at 1 s created on the node that does not poll a 60 s source makes the node
// that does poll it within a second or so, not a minute; so does an interval shortened on the
// other node. When the short subscription leaves, the source goes back to 60 s.
func TestClusterShorterIntervalReachesThePoller(t *testing.T) {
	c := newCluster(t)
	a, b := c.engine("node-a"), c.engine("node-b")
	ctx := context.Background()
	queue := storage.Delivery{Type: DeliveryQueue}
	slow := c.subscribeEvery(a, "items", `{"feed":"sched"}`, queue, 60)
	if a.Sources() != 1 || b.Sources() != 0 {
		t.Fatalf("after subscribing on a: a leads %d sources, b %d; want 1 and 0", a.Sources(), b.Sources())
	}
	if src := c.sourceOf(slow); !scheduledAt(src, 60) {
		t.Fatalf("a new source at 60 s: interval %d s, last poll %s, next %s", src.PollIntervalS, src.LastPolledAt, src.NextPollAt)
	}

	polls := c.u.pollsBy("node-a")
	fast := c.subscribeEvery(b, "items", `{"feed":"sched"}`, queue, 1)
	if fast.SourceID != slow.SourceID {
		t.Fatalf("the 1 s subscription got source %s, want the shared %s", fast.SourceID, slow.SourceID)
	}
	if src := c.sourceOf(fast); src.PollIntervalS != 1 || src.NextPollAt.After(time.Now().Add(1200*time.Millisecond)) {
		t.Fatalf("after a 1 s subscription joined on b: interval %d s, next poll %s (now %s); want 1 s and within a second", src.PollIntervalS, src.NextPollAt, time.Now())
	}
	waitFor(t, 3*time.Second, "a to poll after a 1 s subscription joined on b", func() bool { return c.u.pollsBy("node-a") > polls })
	c.u.add(2)
	drain(t, b, fast, 2)
	drain(t, a, slow, 2)

	if err := b.DeleteSubscription(ctx, fast.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the source back at 60 s", func() bool { return scheduledAt(c.sourceOf(slow), 60) })

	ref, err := b.Prepare(ctx, "fake", "items", "", "", "c_test", true)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	polls = c.u.pollsBy("node-a")
	if _, err := b.SetInterval(ctx, ref, slow.ID, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "a to poll after the interval was shortened on b", func() bool { return c.u.pollsBy("node-a") > polls })
	if n := c.u.pollsBy("node-b"); n != 0 {
		t.Fatalf("b polled %d times while a led the source", n)
	}
	c.u.mu.Lock()
	defer c.u.mu.Unlock()
	if c.u.overlap != 0 {
		t.Fatalf("%d polls ran while another node polled the same source", c.u.overlap)
	}
}

// A poll that began before a shorter interval joined writes the schedule of the interval it
// began with; it then sees the new subscription and reschedules, so the next poll is a second
// after it, not a minute.
func TestPollRunningWhileTheIntervalShortensIsRescheduled(t *testing.T) {
	c := newCluster(t)
	a, b := c.engine("node-a"), c.engine("node-b")
	ctx := context.Background()
	queue := storage.Delivery{Type: DeliveryQueue}
	params := `{"feed":"race"}`
	slow := c.subscribeEvery(a, "items", params, queue, 60)

	gate := make(chan struct{})
	c.u.mu.Lock()
	c.u.gate = gate
	c.u.mu.Unlock()
	if _, err := c.st.UpdateSource(ctx, slow.SourceID, func(s *storage.Source) { s.NextPollAt = time.Now() }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "a poll of the 60 s source to begin", func() bool {
		c.u.mu.Lock()
		defer c.u.mu.Unlock()
		return c.u.inflight[params] > 0
	})
	c.subscribeEvery(b, "items", params, queue, 1)
	polls := c.u.pollsBy("node-a") // the poll held at the gate included
	c.u.mu.Lock()
	c.u.gate = nil
	c.u.mu.Unlock()
	close(gate)

	waitFor(t, 3*time.Second, "another poll a second after the one that began at 60 s", func() bool { return c.u.pollsBy("node-a") > polls })
	if src := c.sourceOf(slow); src.PollIntervalS != 1 {
		t.Fatalf("after the poll: interval %d s, want 1", src.PollIntervalS)
	}
}
