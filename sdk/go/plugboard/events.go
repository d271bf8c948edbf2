package plugboard

import (
	"context"
	"iter"
	"time"
)

// EventsOptions tune [Client.Events]. The zero value is the defaults.
type EventsOptions struct {
	// Max is how many events one pull leases at most (1 to 1000); 0 leaves it to the server
	// (100).
	Max int
	// Wait is how long one pull waits for an event while none is ready (the long-poll,
	// wait_s, rounded up to seconds; the server caps it). 0 means [DefaultEventsWait]; a
	// negative Wait pulls without waiting, which makes the loop busy: use it in tests only.
	Wait time.Duration
}

// DefaultEventsWait is the long-poll of [Client.Events] when [EventsOptions.Wait] is 0.
const DefaultEventsWait = 20 * time.Second

// ackTimeout bounds the acknowledgment sent when the loop stops, which may be after the
// caller's context was cancelled.
const ackTimeout = 10 * time.Second

// Events consumes a queue subscription: it long-polls GET /v1/subscriptions/{id}/events,
// yields the events one by one, and acknowledges each event once the loop body has returned
// for it and the loop asks for the next. The acknowledgments of a batch go in one POST
// .../events/ack, before the next pull, and when the loop stops.
//
// The event the loop stops on (a break or return in the body, a panic) is not acknowledged,
// nor are the events of its batch not yet yielded: the server delivers them again once their
// 30 s lease ends. Delivery is at least once, so handle events idempotently by [Event.ID]:
//
//	for ev, err := range c.Events(ctx, sub.ID, plugboard.EventsOptions{}) {
//		if err != nil {
//			return err // the pull or an acknowledgment failed; range again to resume
//		}
//		if err := store(ev); err != nil {
//			break // ev is not acknowledged: it comes back in 30 s
//		}
//	} // each stored event was acknowledged
//
// The loop runs until the body stops it or ctx is done; an empty batch just pulls again. When
// ctx is done the loop ends without an error (the events already handled are still
// acknowledged). A failed pull or acknowledgment is yielded as the error of a zero Event and
// ends the loop: calls answered 429 or 503 were already retried as the client's options say.
// An acknowledgment that fails once the loop has stopped cannot be reported; those events come
// back after their lease.
func (c *Client) Events(ctx context.Context, subscription string, opts EventsOptions) iter.Seq2[Event, error] {
	wait := opts.Wait
	switch {
	case wait == 0:
		wait = DefaultEventsWait
	case wait < 0:
		wait = 0
	}
	return func(yield func(Event, error) bool) {
		var done []string // handled, not yet acknowledged
		ack := func(ctx context.Context) error {
			if len(done) == 0 {
				return nil
			}
			if _, err := c.AckEvents(ctx, subscription, done); err != nil {
				return err
			}
			done = done[:0]
			return nil
		}
		defer func() {
			// The loop stopped (break, panic, ctx, error): acknowledge what was handled, with a
			// context of its own since ctx may be the reason it stopped.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
			defer cancel()
			_ = ack(actx)
		}()
		for ctx.Err() == nil {
			batch, err := c.PullEvents(ctx, subscription, opts.Max, wait)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				yield(Event{}, err)
				return
			}
			for _, ev := range batch {
				if ctx.Err() != nil || !yield(ev, nil) {
					return
				}
				done = append(done, ev.ID)
			}
			if err := ack(ctx); err != nil {
				if ctx.Err() == nil {
					yield(Event{}, err)
				}
				return
			}
		}
	}
}
