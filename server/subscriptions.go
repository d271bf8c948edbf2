package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/abi/check"
	"github.com/plugboard/plugboard/host"
	"github.com/plugboard/plugboard/registry"
	"github.com/plugboard/plugboard/registry/storage"
	"github.com/plugboard/plugboard/server/trigger"
)

// Problem codes of the subscription endpoints.
const (
	codeTriggerNotFound      = "trigger_not_found"
	codeSubscriptionNotFound = "subscription_not_found"
)

type subscriptionRequest struct {
	Connector  string            `json:"connector"`
	Trigger    string            `json:"trigger"`
	Connection string            `json:"connection,omitempty"`
	Params     json.RawMessage   `json:"params,omitempty"`
	IntervalS  int               `json:"interval_s,omitempty"`
	Delivery   *storage.Delivery `json:"delivery"`
}

// subscriptionDoc is a subscription as API.md shows it.
type subscriptionDoc struct {
	ID            string                `json:"id"`
	Connector     string                `json:"connector"`
	Trigger       string                `json:"trigger"`
	Connection    string                `json:"connection,omitempty"`
	Params        json.RawMessage       `json:"params"`
	IntervalS     int                   `json:"interval_s,omitempty"`
	Delivery      storage.Delivery      `json:"delivery"`
	Status        string                `json:"status"`
	StatusReason  string                `json:"status_reason,omitempty"`
	Owner         string                `json:"owner,omitempty"`
	CreatedAt     time.Time             `json:"created_at"`
	SigningSecret string                `json:"signing_secret,omitempty"`
	LastPolledAt  *time.Time            `json:"last_polled_at"`
	NextPollAt    *time.Time            `json:"next_poll_at,omitempty"` // poll triggers only
	LastEventAt   *time.Time            `json:"last_event_at"`
	LastError     *storage.TriggerError `json:"last_error"`
	LagS          float64               `json:"lag_s"`
	Counts        subscriptionCounts    `json:"counts"`
	Push          *storage.PushState    `json:"push,omitempty"`
	Source        sourceDoc             `json:"source"`
}

type subscriptionCounts struct {
	Events    int64 `json:"events"`
	Delivered int64 `json:"delivered"`
	Pending   int64 `json:"pending"`
	Dropped   int64 `json:"dropped"`
	Failed    int64 `json:"failed"`
}

type sourceDoc struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	Subscribers int        `json:"subscribers"`
	IntervalS   int        `json:"interval_s,omitempty"`
	NextPollAt  *time.Time `json:"next_poll_at,omitempty"`
	RenewAt     *time.Time `json:"renew_at,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// subscriptionDoc renders a subscription with its source's status.
func (s *Server) subscriptionDoc(v storage.SubscriptionView, src storage.Source, subscribers []storage.SubscriptionView, reauth func(connection string) bool) subscriptionDoc {
	d := subscriptionDoc{ID: v.ID, Connector: v.Connector, Trigger: v.Trigger, Connection: v.Connection, Params: v.Params,
		IntervalS: v.IntervalS, Delivery: v.Delivery, Status: v.Status, StatusReason: v.StatusReason, Owner: v.Owner,
		CreatedAt: v.CreatedAt, LastPolledAt: timePtr(src.LastPolledAt), LastEventAt: timePtr(src.LastEventAt), LastError: src.LastError,
		Counts: subscriptionCounts{Events: v.Events, Delivered: v.Delivered, Pending: v.Pending, Dropped: v.Dropped, Failed: v.Failed},
		Source: sourceDoc{ID: src.ID, Kind: src.Kind, Subscribers: len(subscribers), NextPollAt: timePtr(src.NextPollAt), RenewAt: timePtr(src.RenewAt)}}
	if !v.OldestPending.IsZero() {
		d.LagS = max(time.Since(v.OldestPending).Seconds(), 0)
	}
	if v.Delivery.Type == deliveryWebhook {
		p := v.Push
		d.Push = &p
		// last_error is the most recent failure still standing, the source's (a poll, an
		// upstream registration) or the push's (cleared by the next delivered attempt).
		if p.LastError != "" && (d.LastError == nil || p.LastAttemptAt.After(d.LastError.At)) {
			code := p.LastErrorCode
			if code == "" { // recorded before push errors had codes
				code = trigger.CodeDeliveryFailed
			}
			d.LastError = &storage.TriggerError{Code: code, Message: p.LastError, At: p.LastAttemptAt}
		}
	}
	if src.Kind == storage.SourcePoll {
		d.NextPollAt = timePtr(src.NextPollAt)
		// The interval the scheduler polls at; for a source stored before it was recorded (it
		// is from its next poll on), the shortest interval asked for.
		d.Source.IntervalS = src.PollIntervalS
		for _, sub := range subscribers {
			if src.PollIntervalS == 0 && sub.IntervalS > 0 && (d.Source.IntervalS == 0 || sub.IntervalS < d.Source.IntervalS) {
				d.Source.IntervalS = sub.IntervalS
			}
		}
	}
	if d.Status == storage.SubActive && v.Connection != "" {
		if reauth(v.Connection) {
			d.Status = "paused"
			d.StatusReason = fmt.Sprintf("connection %s needs consent again (POST /v1/connections/%s/reauthorize); polling resumes once it is ready", v.Connection, v.Connection)
		}
	}
	return d
}

// reauthLookup reports whether a connection needs consent again, reading each connection once
// however many subscriptions use it.
func (s *Server) reauthLookup(ctx context.Context) func(connection string) bool {
	seen := map[string]bool{}
	return func(id string) bool {
		reauth, ok := seen[id]
		if !ok {
			c, err := s.reg.GetConnection(ctx, id)
			reauth = err == nil && c.Status == registry.StatusNeedsReauth
			seen[id] = reauth
		}
		return reauth
	}
}

// canonicalParams validates params against the trigger's params_schema and renders them in
// one canonical form, so equal params name the same source.
func canonicalParams(raw json.RawMessage, schema json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage(`{}`)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, problemf(http.StatusBadRequest, codeInvalidParams, "params: %v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, newProblem(http.StatusBadRequest, codeInvalidParams, "params must be a JSON object")
	}
	if len(schema) > 0 && string(schema) != "{}" {
		sc, err := check.CompileSchema(schema)
		if err != nil {
			return nil, fmt.Errorf("compiling params_schema: %w", err)
		}
		if errs := sc.Validate(raw); errs != nil {
			p := newProblem(http.StatusBadRequest, codeInvalidParams, describeSchemaErrors("params", errs))
			p.Errors = errs
			return nil, p
		}
	}
	return json.Marshal(v) // map keys sorted
}

// checkDeliveryURL refuses URLs a push could never reach or should never carry.
func checkDeliveryURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return problemf(http.StatusBadRequest, codeInvalidRequest, "delivery.url must be an absolute http or https URL, not %q", raw)
	}
	if u.User != nil {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "delivery.url must not carry credentials; verify deliveries with the signing secret instead")
	}
	return nil
}

// deliveryCheckTimeout bounds the lookup of a push URL's host at subscription creation.
const deliveryCheckTimeout = 5 * time.Second

// checkDeliveryReach refuses a push URL whose host the pusher could never reach under the
// server's egress policy (--egress-allow): every address it resolves to is refused (400
// private_address, the code plugboard_http answers for the same case), or the name does not
// exist (400 invalid_request). A lookup that fails for now (a timeout, an unreachable
// resolver) does not refuse the subscription: a DNS hiccup should not make a correct URL
// look wrong; the pusher resolves again at every attempt and records what it finds in
// last_error. So does a name that resolves differently later.
func (s *Server) checkDeliveryReach(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err // checkDeliveryURL ran first
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryCheckTimeout)
	defer cancel()
	err = s.host.CheckAddress(ctx, u.Hostname())
	switch {
	case err == nil:
		return nil
	case host.IsAddressRefused(err):
		return problemf(http.StatusBadRequest, abi.CodePrivateAddress,
			"delivery.url: %v; Plugboard pushes only to public addresses unless the server's --egress-allow covers the range: give a public URL, or start the server with --egress-allow CIDR", err)
	case host.IsNameNotFound(err):
		return problemf(http.StatusBadRequest, codeInvalidRequest,
			"delivery.url: %v; check the host name (the Plugboard server resolves it, so it must be known to the server's DNS)", err)
	}
	s.log.Warn("subscription: the push URL's host did not resolve now; accepted, the pusher retries", "host", u.Hostname(), "err", err, "correlation_id", correlationID(ctx))
	return nil
}

// POST /v1/subscriptions
func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req subscriptionRequest
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	switch {
	case req.Connector == "" || req.Trigger == "":
		return newProblem(http.StatusBadRequest, codeInvalidRequest, `"connector" and "trigger" are required`)
	case req.Delivery == nil:
		return newProblem(http.StatusBadRequest, codeInvalidRequest, `"delivery" is required: {"type": "webhook", "url": "https://..."} or {"type": "queue"}`)
	case req.Delivery.Type == deliveryWebhook:
		if err := checkDeliveryURL(req.Delivery.URL); err != nil {
			return err
		}
	case req.Delivery.Type == deliveryQueue:
		if req.Delivery.URL != "" {
			return newProblem(http.StatusBadRequest, codeInvalidRequest, "delivery.url is only for webhook delivery; a queue subscription pulls from GET /v1/subscriptions/{id}/events")
		}
	default:
		return problemf(http.StatusBadRequest, codeInvalidRequest, "delivery.type must be \"webhook\" or \"queue\", not %q", req.Delivery.Type)
	}
	if req.IntervalS < 0 {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "interval_s must be positive")
	}
	p := principalFrom(ctx)
	if err := s.authorizeTarget(ctx, req.Connector, req.Connection); err != nil {
		return err
	}
	if req.Delivery.Type == deliveryWebhook {
		if err := s.checkDeliveryReach(ctx, req.Delivery.URL); err != nil {
			return err
		}
	}
	corr := correlationID(ctx)
	ref, err := s.trig.Prepare(ctx, req.Connector, req.Trigger, "", req.Connection, corr, false)
	if err != nil {
		return err
	}
	defer ref.Release()
	tr := ref.Trigger()
	if tr.Kind == abi.TriggerPoll {
		if _, lo := tr.Interval(); req.IntervalS != 0 && req.IntervalS < lo {
			return problemf(http.StatusBadRequest, codeInvalidRequest, "interval_s %d is below the trigger's min_interval_s of %d", req.IntervalS, lo)
		}
	} else if req.IntervalS != 0 {
		return problemf(http.StatusBadRequest, codeInvalidRequest, "interval_s is for poll triggers; %s.%s is a %s trigger", req.Connector, req.Trigger, tr.Kind)
	}
	params, err := canonicalParams(req.Params, tr.ParamsSchema)
	if err != nil {
		return err
	}
	sub := storage.Subscription{ID: trigger.NewSubscriptionID(),
		TriggerRef: storage.TriggerRef{Connector: req.Connector, Trigger: req.Trigger, Connection: req.Connection, Params: params},
		IntervalS:  req.IntervalS, Delivery: *req.Delivery, Owner: p.KeyID, Status: storage.SubActive}
	var secret []byte
	if sub.Delivery.Type == deliveryWebhook {
		secret = []byte(trigger.NewSigningSecret())
	}
	if err := s.trig.Subscribe(ctx, ref, &sub, secret, s.publicBase(r)); err != nil {
		if be, ok := errors.AsType[*trigger.BaselineError](err); ok {
			return baselineProblem(be.Err)
		}
		return err
	}
	s.log.Info("subscription created", "subscription", sub.ID, "connector", sub.Connector, "trigger", sub.Trigger, "source", sub.SourceID, "delivery", sub.Delivery.Type, "correlation_id", corr)
	doc, err := s.loadSubscriptionDoc(ctx, sub.ID)
	if err != nil {
		return err
	}
	doc.SigningSecret = string(secret)
	writeJSON(w, http.StatusCreated, doc)
	return nil
}

// baselineProblem turns the failure of a new source's first plugin call into API.md's 502:
// the plugin's error code with source plugin, or plugin_failed.
func baselineProblem(err error) error {
	p := toProblem(err)
	if p.Source == "plugin" || p.Status >= 500 {
		p.Status = http.StatusBadGateway
		if p.Source != "plugin" && p.Code == codeInternal {
			p.Code = codePluginFailed
		}
		p.Title = http.StatusText(http.StatusBadGateway)
		p.Detail = "starting the trigger source failed: " + p.Detail
		return p
	}
	return err
}

// loadSubscriptionDoc reads one subscription with its source.
func (s *Server) loadSubscriptionDoc(ctx context.Context, id string) (subscriptionDoc, error) {
	sub, oldest, err := s.st.GetSubscription(ctx, id)
	if err != nil {
		return subscriptionDoc{}, subscriptionErr(err, id)
	}
	src, err := s.st.GetSource(ctx, sub.SourceID)
	if err != nil {
		return subscriptionDoc{}, err
	}
	peers, err := s.st.Subscriptions(ctx, src.ID)
	if err != nil {
		return subscriptionDoc{}, err
	}
	return s.subscriptionDoc(storage.SubscriptionView{Subscription: sub, OldestPending: oldest}, src, peers, s.reauthLookup(ctx)), nil
}

func subscriptionErr(err error, id string) error {
	if errors.Is(err, storage.ErrNotFound) {
		return problemf(http.StatusNotFound, codeSubscriptionNotFound, "no subscription %s; GET /v1/subscriptions lists them", id)
	}
	return err
}

// ownSubscription loads a subscription the caller may see: its owner, an admin, or a reader
// (within its scopes).
func (s *Server) ownSubscription(ctx context.Context, id string, write bool) (storage.Subscription, error) {
	sub, _, err := s.st.GetSubscription(ctx, id)
	if err != nil {
		return sub, subscriptionErr(err, id)
	}
	if !s.maySeeSubscription(principalFrom(ctx), sub, write) {
		return sub, problemf(http.StatusForbidden, codeForbidden, "subscription %s belongs to another key", id)
	}
	return sub, nil
}

func (s *Server) maySeeSubscription(p *principal, sub storage.Subscription, write bool) bool {
	switch {
	case p.isAdmin():
		return true
	case !p.allowsConnector(sub.Connector) || !p.allowsConnection(sub.Connection):
		return false
	case p.KeyID == sub.Owner:
		return true
	}
	return !write && p.Role == "reader"
}

// GET /v1/subscriptions
func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	subs, err := s.st.Subscriptions(ctx, "")
	if err != nil {
		return err
	}
	srcs, err := s.st.Sources(ctx)
	if err != nil {
		return err
	}
	byID := map[string]storage.Source{}
	for _, src := range srcs {
		byID[src.ID] = src
	}
	peers := map[string][]storage.SubscriptionView{}
	for _, sub := range subs {
		peers[sub.SourceID] = append(peers[sub.SourceID], sub)
	}
	p := principalFrom(ctx)
	out := []subscriptionDoc{}
	reauth := s.reauthLookup(ctx)
	for _, sub := range subs {
		if s.maySeeSubscription(p, sub.Subscription, false) {
			out = append(out, s.subscriptionDoc(sub, byID[sub.SourceID], peers[sub.SourceID], reauth))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": out})
	return nil
}

// GET /v1/subscriptions/{id}
func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if _, err := s.ownSubscription(r.Context(), id, false); err != nil {
		return err
	}
	doc, err := s.loadSubscriptionDoc(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// PATCH /v1/subscriptions/{id} {"interval_s": N}
func (s *Server) patchSubscription(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	sub, err := s.ownSubscription(ctx, id, true)
	if err != nil {
		return err
	}
	var req struct {
		IntervalS *int `json:"interval_s"`
	}
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	if req.IntervalS == nil {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, `"interval_s" is required: the polling interval in seconds, or 0 for the trigger's default`)
	}
	if *req.IntervalS < 0 {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, "interval_s must be positive, or 0 for the trigger's default")
	}
	ref, err := s.trig.Prepare(ctx, sub.Connector, sub.Trigger, "", sub.Connection, correlationID(ctx), true)
	if err != nil {
		return err
	}
	defer ref.Release()
	tr := ref.Trigger()
	if tr.Kind != abi.TriggerPoll {
		return problemf(http.StatusBadRequest, codeInvalidRequest, "interval_s is for poll triggers; %s.%s is a %s trigger, and a subscription of it has nothing to change", sub.Connector, sub.Trigger, tr.Kind)
	}
	if _, lo := tr.Interval(); *req.IntervalS != 0 && *req.IntervalS < lo {
		return problemf(http.StatusBadRequest, codeInvalidRequest, "interval_s %d is below the trigger's min_interval_s of %d", *req.IntervalS, lo)
	}
	if _, err := s.trig.SetInterval(ctx, ref, id, *req.IntervalS); err != nil {
		return subscriptionErr(err, id)
	}
	doc, err := s.loadSubscriptionDoc(ctx, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// DELETE /v1/subscriptions/{id}
func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	sub, err := s.ownSubscription(ctx, id, true)
	if err != nil {
		return err
	}
	if err := s.trig.DeleteSubscription(ctx, sub.ID); err != nil {
		return subscriptionErr(err, id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// GET /v1/subscriptions/{id}/events?max=100&wait_s=20
func (s *Server) pullEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	sub, err := s.ownSubscription(ctx, id, true)
	if err != nil {
		return err
	}
	if sub.Delivery.Type != deliveryQueue {
		return problemf(http.StatusConflict, codeInvalidRequest, "subscription %s is delivered by push to its URL; only queue subscriptions are pulled", id)
	}
	q := r.URL.Query()
	maxN, err := queryInt(q, "max", 100, 1, 1000)
	if err != nil {
		return err
	}
	wait, err := queryInt(q, "wait_s", 0, 0, 60)
	if err != nil {
		return err
	}
	got, err := s.trig.Pull(ctx, id, maxN, time.Duration(wait)*time.Second)
	if err != nil {
		return subscriptionErr(err, id)
	}
	out := make([]trigger.Event, len(got))
	for i, p := range got {
		out[i] = trigger.Deliver(sub, p.Event)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
	return nil
}

func queryInt(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, problemf(http.StatusBadRequest, codeInvalidRequest, "%s must be an integer from %d to %d, not %q", name, lo, hi, v)
	}
	return n, nil
}

// POST /v1/subscriptions/{id}/events/ack {"ids": [...]}
func (s *Server) ackEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	if _, err := s.ownSubscription(ctx, id, true); err != nil {
		return err
	}
	var req struct {
		IDs []string `json:"ids"`
	}
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	if len(req.IDs) == 0 {
		return newProblem(http.StatusBadRequest, codeInvalidRequest, `"ids" must list the delivered event ids to acknowledge`)
	}
	seqs := make([]uint64, 0, len(req.IDs))
	for _, eid := range req.IDs {
		if seq, ok := trigger.ParseDeliveredID(id, eid); ok {
			seqs = append(seqs, seq)
		}
	}
	n, err := s.st.Ack(ctx, id, seqs)
	if err != nil {
		return subscriptionErr(err, id)
	}
	writeJSON(w, http.StatusOK, map[string]int{"acked": n})
	return nil
}

// POST /v1/subscriptions/{id}/replay {"since": "RFC 3339"}
func (s *Server) replayEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	sub, err := s.ownSubscription(ctx, id, true)
	if err != nil {
		return err
	}
	var req struct {
		Since string `json:"since"`
	}
	if err := decodeJSON(r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	since, err := time.Parse(time.RFC3339Nano, req.Since)
	if err != nil {
		return problemf(http.StatusBadRequest, codeInvalidRequest, `"since" must be an RFC 3339 time such as 2026-11-28T09:00:00Z, not %q`, req.Since)
	}
	n, err := s.trig.Replay(ctx, sub, since)
	if err != nil {
		return subscriptionErr(err, id)
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
	return nil
}

// triggerGauges are the subscription gauges of /metrics: counts, pending events and lag, by
// connector and trigger (no subscription ids: they are tenant data).
func (s *Server) triggerGauges(ctx context.Context) []gauge {
	subs, err := s.st.Subscriptions(ctx, "")
	if err != nil {
		return nil
	}
	type agg struct {
		pending, dropped int64
		lag              float64
	}
	byTrigger := map[string]*agg{}
	byStatus := map[string]int{}
	for _, sub := range subs {
		l := labels("connector", sub.Connector, "trigger", sub.Trigger)
		a := byTrigger[l]
		if a == nil {
			a = &agg{}
			byTrigger[l] = a
		}
		a.pending += sub.Pending
		a.dropped += sub.Dropped
		if !sub.OldestPending.IsZero() {
			a.lag = max(a.lag, time.Since(sub.OldestPending).Seconds())
		}
		byStatus[labels("connector", sub.Connector, "trigger", sub.Trigger, "delivery", sub.Delivery.Type, "status", sub.Status)]++
	}
	var out []gauge
	for l, a := range byTrigger {
		out = append(out, gauge{"plugboard_subscription_pending_events", l, float64(a.pending)},
			gauge{"plugboard_subscription_lag_seconds", l, a.lag},
			gauge{"plugboard_subscription_dropped_events", l, float64(a.dropped)})
	}
	for l, n := range byStatus {
		out = append(out, gauge{"plugboard_subscriptions", l, float64(n)})
	}
	out = append(out, gauge{"plugboard_trigger_sources_led", "", float64(s.trig.Sources())})
	return out
}
