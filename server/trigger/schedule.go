package trigger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/registry/storage"
)

// A poll source's schedule is two fields of the source in the store: NextPollAt, which every
// node's scheduler reads at each Tick, and PollIntervalS, the interval NextPollAt was computed
// from. Whoever changes what the interval depends on (a subscription joining, leaving or
// changing its interval_s, on any node) recomputes both in the store at once, so the node that
// polls the source sees the new schedule at its next Tick without being told.
//
// Two changes on two nodes may race each other and a poll's commit (which writes the
// interval it read when the poll began). Each writer therefore reads the subscriptions again
// after writing and writes again when they call for another interval ([Engine.reschedule]):
// the last write is then made with the last set of subscriptions, whatever the interleaving.

// maxReschedules bounds the write-and-check rounds of one reschedule; subscriptions changing
// faster than that are caught by the check after the next poll.
const maxReschedules = 4

// rescheduled is when a poll source polls next once its interval became iv: its last poll
// plus iv (or plus the backoff of its consecutive failures), now when that is past. A poll due
// at once (another page of a poll that answered more: true) stays due.
func rescheduled(s storage.Source, iv time.Duration, now time.Time) time.Time {
	if !s.NextPollAt.After(s.LastPolledAt) {
		return s.NextPollAt
	}
	wait := iv
	if s.Failures > 0 {
		wait = backoff(iv, s.Failures-1)
	}
	if next := s.LastPolledAt.Add(wait); next.After(now) {
		return next
	}
	return now
}

// reschedule makes a poll source's schedule follow its subscriptions: it computes the
// interval from them (sourceInterval, with tr's default and minimum) and, when the source was
// scheduled with another one, moves NextPollAt to rescheduled's time, then checks again (see
// the comment at the top of this file). A source without subscriptions is left alone: it is
// being stopped.
func (e *Engine) reschedule(ctx context.Context, id string, tr abi.Trigger) error {
	for range maxReschedules {
		subs, err := e.st.Subscriptions(ctx, id)
		if err != nil || len(subs) == 0 {
			return ignoreNotFound(err)
		}
		iv := sourceInterval(tr, subs)
		src, err := e.st.GetSource(ctx, id)
		if err != nil {
			return ignoreNotFound(err)
		}
		if src.Kind != storage.SourcePoll || src.Status != storage.SourceActive || src.PollIntervalS == iv {
			return nil
		}
		now := time.Now()
		_, err = e.st.UpdateSource(ctx, id, func(s *storage.Source) {
			if s.PollIntervalS != iv {
				s.PollIntervalS = iv
				s.NextPollAt = rescheduled(*s, time.Duration(iv)*time.Second, now)
			}
		})
		if err != nil {
			return ignoreNotFound(err)
		}
		e.log.Debug("trigger source rescheduled", "source", id, "interval_s", iv, "was", src.PollIntervalS)
	}
	return nil
}

// rescheduleOrLog is reschedule for callers that already did what they were asked (the
// subscription is stored): a failure is logged, and the check after the source's next poll
// catches up.
func (e *Engine) rescheduleOrLog(ctx context.Context, id string, tr abi.Trigger) {
	if err := e.reschedule(context.WithoutCancel(ctx), id, tr); err != nil {
		e.log.Warn("rescheduling a trigger source after a subscription change failed; its next poll picks up the new interval", "source", id, "err", err)
	}
}

func ignoreNotFound(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// ErrNotPollTrigger is returned by [Engine.SetInterval] for a subscription of a webhook
// trigger, which has no interval.
var ErrNotPollTrigger = errors.New("trigger: interval_s is for poll triggers")

// SetInterval changes the interval_s of a poll subscription (0: the trigger's default) and
// reschedules its source at once: a shorter interval brings the next poll forward to at most
// the last poll plus the new interval, a longer one (when this subscription had the shortest)
// pushes it back. ref is the caller's prepared call of the subscription's trigger; the caller
// checks intervalS against the trigger's min_interval_s. A subscription of a webhook trigger
// is [ErrNotPollTrigger]; the store's errors come back as they are ([storage.ErrNotFound]).
func (e *Engine) SetInterval(ctx context.Context, ref Call, id string, intervalS int) (storage.Subscription, error) {
	tr := ref.Trigger()
	if tr.Kind != abi.TriggerPoll {
		return storage.Subscription{}, fmt.Errorf("%w; %s is a %s trigger", ErrNotPollTrigger, tr.Name, tr.Kind)
	}
	sub, err := e.st.UpdateSubscription(ctx, id, func(s *storage.Subscription) { s.IntervalS = intervalS })
	if err != nil {
		return sub, err
	}
	e.rescheduleOrLog(ctx, sub.SourceID, tr)
	return sub, nil
}
