package trigger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry/storage"
)

// Subscribe stores sub (its ID, TriggerRef with canonical params, IntervalS, Delivery, Owner
// and Status filled in by the caller) on the source of its key: an active source gains a
// subscriber, a stopping one is revived, and otherwise a new source starts (the baseline poll,
// or the upstream subscribe with the hook URL callbackBase+"/hooks/"+token). ref is the
// caller's prepared call of the trigger. Joining a poll source reschedules it when the new
// subscription changes its interval (see [Engine.SetInterval]). It fills in sub.SourceID and
// starts the push worker of a push subscription. A failing first plugin call is a
// [*BaselineError] and stores nothing.
func (e *Engine) Subscribe(ctx context.Context, ref Call, sub *storage.Subscription, secret []byte, callbackBase string) error {
	key := SourceKey(sub.Connector, sub.Trigger, sub.Connection, sub.Params)
	lock := e.keyLock(key)
	lock.Lock()
	defer lock.Unlock()
	src, found, err := e.st.FindSource(ctx, key)
	if err != nil {
		return err
	}
	switch {
	case found && src.Status == storage.SourceActive:
		sub.SourceID = src.ID
		err = e.st.AddSubscription(ctx, *sub, secret, nil)
	case found && src.Status == storage.SourceStopping:
		// Its upstream unsubscribe failed, so the registration is still there: revive it.
		sub.SourceID = src.ID
		err = e.st.AddSubscription(ctx, *sub, secret, func(s *storage.Source) {
			s.Status, s.Failures, s.LastError, s.NextPollAt = storage.SourceActive, 0, nil, time.Time{}
		})
	case ref.Trigger().Kind == abi.TriggerPoll:
		err = e.startPollSource(ctx, ref, key, sub, secret)
	default:
		err = e.startWebhookSource(ctx, ref, key, sub, secret, callbackBase)
	}
	if err != nil {
		return err
	}
	if found && src.Kind == storage.SourcePoll {
		// A shorter interval than the source's takes effect now, not after the next poll.
		e.rescheduleOrLog(ctx, src.ID, ref.Trigger())
	}
	if sub.Delivery.Type == DeliveryWebhook {
		e.startPusher(sub.ID)
	}
	return nil
}

// startWebhookSource registers a new webhook source upstream and stores it with its first
// subscription; this node leads it. The hook URL answers before subscribe is called, because
// some services (Microsoft Graph) call it during the registration.
func (e *Engine) startWebhookSource(ctx context.Context, ref Call, key string, sub *storage.Subscription, subSecret []byte, callbackBase string) error {
	token := randomToken(20)
	secret := randomToken(20)
	src := storage.Source{ID: "src_" + randomToken(16), Key: key, Kind: storage.SourceWebhook, Status: storage.SourceStarting,
		TriggerRef: sub.TriggerRef, HookToken: token, CallbackURL: callbackBase + "/hooks/" + token}
	if found, err := e.replaceStale(ctx, key); err != nil || found {
		return err
	}
	if err := e.st.CreateSource(ctx, src, []byte(secret), nil, nil); err != nil {
		return err
	}
	// Led from its creation (a new id: no other node has it), taken after the commit so that
	// a scan that listed the sources before it does not drop the lease as a deleted source's.
	e.hold(ctx, sourceLease(src.ID))
	res, err := e.webhookCall(ctx, ref, abi.WebhookRequest{Op: abi.WebhookSubscribe, Trigger: sub.Trigger, Params: sub.Params, CallbackURL: src.CallbackURL, Secret: secret})
	var renewAt time.Time
	if err == nil {
		renewAt, err = parseRenewAt(res.RenewAt)
	}
	if err != nil {
		_ = e.st.DeleteSource(context.WithoutCancel(ctx), src.ID)
		e.release(ctx, sourceLease(src.ID))
		return &BaselineError{Err: err}
	}
	sub.SourceID = src.ID
	err = e.st.AddSubscription(ctx, *sub, subSecret, func(s *storage.Source) {
		s.Status, s.State, s.RenewAt = storage.SourceActive, res.State, renewAt
	})
	if err != nil {
		src.Status, src.State = storage.SourceActive, res.State
		e.stopSource(context.WithoutCancel(ctx), src)
		return err
	}
	return nil
}

// replaceStale deletes a source of key left in the starting state (a crash during subscribe).
func (e *Engine) replaceStale(ctx context.Context, key string) (bool, error) {
	src, found, err := e.st.FindSource(ctx, key)
	if err != nil || !found {
		return false, err
	}
	if src.Status == storage.SourceStarting {
		return false, e.st.DeleteSource(ctx, src.ID)
	}
	return true, nil
}

// DeleteSubscription deletes a subscription, stops its push worker, and stops its source when
// it was the last subscriber: a poll source is deleted; a webhook source is unsubscribed
// upstream by this node when it can lead the source, and otherwise marked stopping for the
// node that leads it. A poll source that keeps subscribers is rescheduled when the interval
// it polls at gets longer. The store's errors come back as they are ([storage.ErrNotFound]).
func (e *Engine) DeleteSubscription(ctx context.Context, id string) error {
	key := ""
	if sub, _, err := e.st.GetSubscription(ctx, id); err == nil {
		if src, err := e.st.GetSource(ctx, sub.SourceID); err == nil {
			key = src.Key
		}
	}
	lock := e.keyLock(key)
	lock.Lock()
	defer lock.Unlock()
	sub, remaining, err := e.st.DeleteSubscription(ctx, id)
	if err != nil {
		return err
	}
	// Stop its push worker before anything slow (an upstream unsubscribe), so nothing is pushed
	// for a subscription the store no longer has.
	e.stopPusher(id)
	if src, err := e.st.GetSource(ctx, sub.SourceID); err == nil {
		switch {
		case remaining == 0:
			e.stopOrHandOver(context.WithoutCancel(ctx), src)
		case src.Kind == storage.SourcePoll:
			// It may have had the shortest interval: the source's may now be longer.
			e.rescheduleAfterLeave(context.WithoutCancel(ctx), src)
		}
	}
	e.notify(id)
	return nil
}

// rescheduleAfterLeave reschedules a poll source a subscription left, with its trigger's
// default and minimum interval read through a prepared call. When the call cannot be
// prepared, the source keeps its shorter schedule until its next poll recomputes it.
func (e *Engine) rescheduleAfterLeave(ctx context.Context, src storage.Source) {
	ref, err := e.Prepare(ctx, src.Connector, src.Trigger, abi.TriggerPoll, src.Connection, e.newCorr(), true)
	if err != nil {
		e.log.Info("a subscription left a trigger source; its interval is recomputed at its next poll", "source", src.ID, "err", err)
		return
	}
	defer ref.Release()
	e.rescheduleOrLog(ctx, src.ID, ref.Trigger())
}

// stopOrHandOver stops a source without subscribers here when this node leads it or can take
// it, and otherwise marks it stopping and due, so that its leader unsubscribes it.
func (e *Engine) stopOrHandOver(ctx context.Context, src storage.Source) {
	if src.Kind == storage.SourcePoll || e.confirm(ctx, sourceLease(src.ID)) {
		e.stopSource(ctx, src)
		return
	}
	_, err := e.st.UpdateSource(ctx, src.ID, func(s *storage.Source) {
		if s.Status == storage.SourceActive {
			s.Status, s.Failures, s.NextPollAt = storage.SourceStopping, 0, time.Time{}
		}
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		e.log.Error("handing a trigger source's stop to its leader", "source", src.ID, "err", err)
	}
}

// webhookCall runs one step of plugboard_webhook.
func (e *Engine) webhookCall(ctx context.Context, ref Call, req abi.WebhookRequest) (*abi.WebhookResult, error) {
	res, _, err := ref.Webhook(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, e.guestError(res.Error)
	}
	return res, nil
}

// parseRenewAt reads a plugin's renew_at.
func parseRenewAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: renew_at %q is not RFC 3339", host.ErrPluginFailed, s)
	}
	return at.UTC(), nil
}

// Receive runs the receive step of a webhook source for one inbound request (any node may:
// no lease) and commits the events it returns, fanned out to the source's subscriptions,
// before returning the plugin's answer for the sender.
func (e *Engine) Receive(ctx context.Context, src storage.Source, req *abi.InboundRequest, correlationID string) (*abi.WebhookResult, error) {
	ref, err := e.Prepare(ctx, src.Connector, src.Trigger, abi.TriggerWebhook, src.Connection, correlationID, true) // receive needs no credential
	if err != nil {
		return nil, err
	}
	defer ref.Release()
	secret, err := e.st.TriggerSecret(ctx, "src", src.ID)
	if err != nil {
		return nil, err
	}
	res, err := e.webhookCall(ctx, ref, abi.WebhookRequest{Op: abi.WebhookReceive, Trigger: src.Trigger, Params: src.Params,
		Secret: string(secret), State: src.State, Request: req})
	if err != nil {
		e.metrics.Add("plugboard_trigger_receives_total", 1, "connector", src.Connector, "trigger", src.Trigger, "outcome", e.code(err))
		return nil, err
	}
	evs, err := e.convertEvents(res.Events, "plugboard_webhook receive")
	if err != nil {
		return nil, err
	}
	if len(evs) > 0 {
		cr, err := e.st.CommitEvents(ctx, src.ID, evs, storage.Origin{CorrelationID: correlationID, Traceparent: traceparentOf(ctx)}, e.limits(), nil)
		if err != nil {
			return nil, err
		}
		e.counted(src, "ok", cr)
		e.notify(cr.Notify...)
	}
	e.metrics.Add("plugboard_trigger_receives_total", 1, "connector", src.Connector, "trigger", src.Trigger, "outcome", "ok")
	if res.RenewAt != "" {
		e.renewEarly(ctx, src, res.RenewAt, correlationID)
	}
	return res, nil
}

// renewEarly moves a webhook source's renewal to at, the renew_at of a receive result, when
// that is sooner than the one scheduled: the delivery said the upstream subscription needs
// attention (Microsoft Graph's reauthorizationRequired or subscriptionRemoved). A renewal
// waiting out the backoff of earlier failures runs at at as well. The leader's scheduler
// picks it up on its next tick. A renew_at that does not parse is logged and ignored: the
// delivery's events are committed already.
func (e *Engine) renewEarly(ctx context.Context, src storage.Source, renewAt, correlationID string) {
	at, err := parseRenewAt(renewAt)
	if err != nil {
		e.log.Warn("a webhook receive asked for a renewal at a time that is not RFC 3339; ignored", "source", src.ID,
			"connector", src.Connector, "trigger", src.Trigger, "renew_at", renewAt, "correlation_id", correlationID)
		return
	}
	_, err = e.st.UpdateSource(ctx, src.ID, func(s *storage.Source) {
		if s.Status != storage.SourceActive {
			return // starting (its subscribe sets renew_at) or stopping: nothing to renew
		}
		if s.RenewAt.IsZero() || at.Before(s.RenewAt) {
			s.RenewAt = at
		}
		if s.NextPollAt.After(at) {
			s.NextPollAt = time.Time{}
		}
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		e.log.Error("scheduling an early webhook renewal", "source", src.ID, "err", err, "correlation_id", correlationID)
		return
	}
	e.log.Info("webhook receive asked for an early renewal", "source", src.ID, "connector", src.Connector,
		"trigger", src.Trigger, "renew_at", at, "correlation_id", correlationID)
}

// renew calls the webhook source's renew step and stores the new state and renew_at.
func (e *Engine) renew(ctx context.Context, id string) {
	src, err := e.st.GetSource(ctx, id)
	if err != nil {
		return
	}
	corr := e.newCorr()
	now := time.Now()
	err = func() error {
		ref, err := e.Prepare(ctx, src.Connector, src.Trigger, abi.TriggerWebhook, src.Connection, corr, true)
		if err != nil {
			return err
		}
		defer ref.Release()
		secret, err := e.st.TriggerSecret(ctx, "src", id)
		if err != nil {
			return err
		}
		res, err := e.webhookCall(ctx, ref, abi.WebhookRequest{Op: abi.WebhookRenew, Trigger: src.Trigger, Params: src.Params,
			CallbackURL: src.CallbackURL, Secret: string(secret), State: src.State})
		if err != nil {
			return err
		}
		at, err := parseRenewAt(res.RenewAt)
		if err != nil {
			return err
		}
		_, err = e.st.UpdateSource(ctx, id, func(s *storage.Source) {
			if len(res.State) > 0 {
				s.State = res.State
			}
			s.RenewAt, s.LastError, s.Failures, s.NextPollAt = at, nil, 0, time.Time{}
		})
		e.metrics.Add("plugboard_trigger_renewals_total", 1, "connector", src.Connector, "trigger", src.Trigger, "outcome", "ok")
		return err
	}()
	if err == nil || ctx.Err() != nil {
		return
	}
	code := e.code(err)
	e.metrics.Add("plugboard_trigger_renewals_total", 1, "connector", src.Connector, "trigger", src.Trigger, "outcome", code)
	e.log.Warn("webhook renewal failed; retrying", "source", id, "connector", src.Connector, "trigger", src.Trigger, "err", err, "correlation_id", corr)
	_, _ = e.st.UpdateSource(ctx, id, func(s *storage.Source) {
		s.LastError = e.triggerError(err, now)
		s.Failures++
		s.NextPollAt = now.Add(backoff(30*time.Second, s.Failures-1))
	})
}

// maxUnsubscribeAttempts bounds the retries of a failing upstream unsubscribe (with backoff
// from 5 s, capped at 30 min: about 3 hours in all); then the source is deleted anyway and the
// upstream registration may remain.
const maxUnsubscribeAttempts = 12

// stopSource stops a source without subscribers: a webhook source unsubscribes upstream, then
// the source is deleted and its lease released. A failing unsubscribe leaves the source
// stopping, retried by the scheduler of its leader with backoff; its hook URL answers 410
// meanwhile.
func (e *Engine) stopSource(ctx context.Context, src storage.Source) {
	if src.Kind == storage.SourceWebhook && (src.Status == storage.SourceActive || src.Status == storage.SourceStopping) {
		corr := e.newCorr()
		err := func() error {
			ref, err := e.Prepare(ctx, src.Connector, src.Trigger, abi.TriggerWebhook, src.Connection, corr, true)
			if err != nil {
				return err
			}
			defer ref.Release()
			_, err = e.webhookCall(ctx, ref, abi.WebhookRequest{Op: abi.WebhookUnsubscribe, Trigger: src.Trigger, Params: src.Params, State: src.State})
			return err
		}()
		attempt := 1
		if src.Status == storage.SourceStopping {
			attempt = src.Failures + 1
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case attempt < maxUnsubscribeAttempts:
			now := time.Now()
			e.log.Warn("upstream unsubscribe failed; retrying", "source", src.ID, "connector", src.Connector, "trigger", src.Trigger, "attempt", attempt, "err", err, "correlation_id", corr)
			_, _ = e.st.UpdateSource(ctx, src.ID, func(s *storage.Source) {
				s.Status, s.Failures, s.LastError = storage.SourceStopping, attempt, e.triggerError(err, now)
				s.NextPollAt = now.Add(backoff(5*time.Second, attempt-1))
			})
			return
		default:
			e.log.Error("upstream unsubscribe failed; giving up, the upstream registration may remain", "source", src.ID, "connector", src.Connector, "trigger", src.Trigger, "attempts", attempt, "err", err, "correlation_id", corr)
		}
	}
	err := e.st.DeleteSource(ctx, src.ID)
	if err != nil && !errors.Is(err, storage.ErrExists) {
		e.log.Error("deleting trigger source", "source", src.ID, "err", err)
	}
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		e.release(ctx, sourceLease(src.ID))
	}
}

// retryStop retries the unsubscribe of a stopping source, unless a subscription revived it.
func (e *Engine) retryStop(ctx context.Context, due storage.Source) {
	lock := e.keyLock(due.Key)
	lock.Lock()
	defer lock.Unlock()
	src, err := e.st.GetSource(ctx, due.ID)
	if err != nil || src.Status != storage.SourceStopping {
		return
	}
	if subs, err := e.st.Subscriptions(ctx, src.ID); err != nil || len(subs) > 0 {
		return
	}
	e.stopSource(ctx, src)
}
