package plugboardtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The subscription endpoints of API.md "Subscriptions (triggers)", in memory. Nothing polls or
// receives webhooks: tests put events in a subscription's queue with [Server.Emit].

// Subscription is a subscription the fake stores, as it answers it.
type Subscription struct {
	ID           string         `json:"id"`
	Connector    string         `json:"connector"`
	Trigger      string         `json:"trigger"`
	Connection   string         `json:"connection,omitempty"`
	Params       map[string]any `json:"params"`
	IntervalS    int            `json:"interval_s"`
	Delivery     SubDelivery    `json:"delivery"`
	Status       string         `json:"status"`
	StatusReason string         `json:"status_reason,omitempty"`
	Owner        string         `json:"owner"`
	CreatedAt    time.Time      `json:"created_at"`
	LastPolledAt *time.Time     `json:"last_polled_at"`
	NextPollAt   *time.Time     `json:"next_poll_at,omitempty"`
	LastEventAt  *time.Time     `json:"last_event_at"`
	LastError    *SubError      `json:"last_error"`
	LagS         float64        `json:"lag_s"`
	Counts       SubCounts      `json:"counts"`
	Push         map[string]any `json:"push,omitempty"`
	Source       map[string]any `json:"source"`

	events []*queued
}

// SubDelivery is a subscription's delivery object.
type SubDelivery struct {
	Type string `json:"type"`
	URL  string `json:"url,omitempty"`
}

// SubError is a subscription's last error.
type SubError struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// SubCounts are a subscription's counters.
type SubCounts struct {
	Events    int `json:"events"`
	Delivered int `json:"delivered"`
	Pending   int `json:"pending"`
	Dropped   int `json:"dropped"`
}

// DeliveredEvent is an event as the queue endpoints answer it (ABI.md "Delivered events").
type DeliveredEvent struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	EventType     string          `json:"event_type,omitempty"`
	SourceEventID string          `json:"source_event_id"`
	Timestamp     time.Time       `json:"timestamp"`
	Subscription  string          `json:"subscription"`
	Data          json.RawMessage `json:"data"`
}

type queued struct {
	ev          DeliveredEvent
	acked       bool
	leasedUntil time.Time
}

// leaseTime is how long pulled events stay leased (API.md: they come back after 30 s).
const leaseTime = 30 * time.Second

func (s *Server) routeSubscriptions(v1 *http.ServeMux) {
	v1.HandleFunc("POST /v1/subscriptions", s.createSubscription)
	v1.HandleFunc("GET /v1/subscriptions", s.listSubscriptions)
	v1.HandleFunc("GET /v1/subscriptions/{id}", s.getSubscription)
	v1.HandleFunc("DELETE /v1/subscriptions/{id}", s.deleteSubscription)
	v1.HandleFunc("GET /v1/subscriptions/{id}/events", s.pullEvents)
	v1.HandleFunc("POST /v1/subscriptions/{id}/events/ack", s.ackEvents)
	v1.HandleFunc("POST /v1/subscriptions/{id}/replay", s.replay)
}

// Emit queues an event on subscription sub, as the server does when its source produces one,
// and returns the delivered event's id. eventType may be empty; a zero ts means now.
func (s *Server) Emit(sub, eventType, sourceEventID string, ts time.Time, data any) string {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.subs[sub]
	if x == nil {
		panic("plugboardtest: Emit: no subscription " + sub)
	}
	if ts.IsZero() {
		ts = s.Now()
	}
	s.seq++
	ev := DeliveredEvent{
		ID: fmt.Sprintf("evt_%d", s.seq), Type: x.Connector + "." + x.Trigger, EventType: eventType,
		SourceEventID: sourceEventID, Timestamp: ts.UTC(), Subscription: sub, Data: b,
	}
	x.events = append(x.events, &queued{ev: ev})
	x.Counts.Events++
	x.Counts.Pending++
	t := ts.UTC()
	x.LastEventAt = &t
	close(s.subSignal)
	s.subSignal = make(chan struct{})
	return ev.ID
}

// Subscriptions returns copies of the stored subscriptions, oldest first.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Subscription
	for _, id := range s.subOrder {
		if x := s.subs[id]; x != nil {
			cp := *x
			cp.events = nil
			out = append(out, cp)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Connector  string         `json:"connector"`
		Trigger    string         `json:"trigger"`
		Connection string         `json:"connection"`
		Params     map[string]any `json:"params"`
		IntervalS  int            `json:"interval_s"`
		Delivery   SubDelivery    `json:"delivery"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	bad := func(detail string) { s.problem(w, r, Problem{Status: 400, Code: "invalid_request", Detail: detail}) }
	if req.Connector == "" || req.Trigger == "" {
		bad("connector and trigger are required")
		return
	}
	c := s.lookup(w, r, req.Connector)
	if c == nil {
		return
	}
	kind := ""
	for _, tr := range c.versions[c.active].manifest.Triggers {
		if tr.Name == req.Trigger {
			kind = tr.Kind
		}
	}
	if kind == "" {
		s.problem(w, r, Problem{Status: 404, Code: "trigger_not_found", Detail: fmt.Sprintf("%s has no trigger %q", req.Connector, req.Trigger)})
		return
	}
	if req.Connection != "" && s.connections[req.Connection] == nil {
		s.problem(w, r, Problem{Status: 404, Code: "connection_not_found", Detail: fmt.Sprintf("no connection %q", req.Connection)})
		return
	}
	switch req.Delivery.Type {
	case "queue":
		if req.Delivery.URL != "" {
			bad("delivery.url is only for webhook delivery")
			return
		}
	case "webhook":
		if req.Delivery.URL == "" {
			bad("delivery.url is required for webhook delivery")
			return
		}
	default:
		bad(fmt.Sprintf("delivery.type %q is not webhook or queue", req.Delivery.Type))
		return
	}
	if req.IntervalS < 0 || (req.IntervalS > 0 && req.IntervalS < 15) {
		s.problem(w, r, Problem{Status: 400, Code: "invalid_input", Detail: "interval_s is below the trigger's minimum of 15"})
		return
	}
	if req.IntervalS == 0 && kind == "poll" {
		req.IntervalS = 60
	}
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	now := s.Now().UTC()
	s.seq++
	x := &Subscription{
		ID: fmt.Sprintf("sub_%d", s.seq), Connector: req.Connector, Trigger: req.Trigger, Connection: req.Connection,
		Params: req.Params, IntervalS: req.IntervalS, Delivery: req.Delivery, Status: "active", Owner: "key_admin",
		CreatedAt: now, Source: map[string]any{"id": "src_" + req.Connector + "_" + req.Trigger, "kind": kind, "subscribers": 1},
	}
	if kind == "poll" {
		next := now.Add(time.Duration(req.IntervalS) * time.Second)
		x.LastPolledAt, x.NextPollAt = &now, &next
		x.Source["interval_s"] = req.IntervalS
	}
	if req.Delivery.Type == "webhook" {
		x.Push = map[string]any{"attempts": 0, "last_status": nil, "last_attempt_at": nil, "next_attempt_at": nil, "last_error": nil}
	}
	if s.subs == nil {
		s.subs = map[string]*Subscription{}
	}
	s.subs[x.ID] = x
	s.subOrder = append(s.subOrder, x.ID)
	doc := map[string]any{}
	b, _ := json.Marshal(x)
	_ = json.Unmarshal(b, &doc)
	if req.Delivery.Type == "webhook" {
		doc["signing_secret"] = "whsec_" + randomHex(24)
	}
	reply(w, 201, doc)
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	var docs []*Subscription
	for _, id := range s.subOrder {
		if x := s.subs[id]; x != nil {
			docs = append(docs, x)
		}
	}
	items, next := page(r, docs, s.PageSize)
	reply(w, 200, map[string]any{"subscriptions": orEmpty(items), "next": next})
}

// subscription finds a subscription, or answers 404.
func (s *Server) subscription(w http.ResponseWriter, r *http.Request) *Subscription {
	x := s.subs[r.PathValue("id")]
	if x == nil {
		s.problem(w, r, Problem{Status: 404, Code: "subscription_not_found", Detail: fmt.Sprintf("no subscription %q", r.PathValue("id"))})
	}
	return x
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := s.subscription(w, r); x != nil {
		reply(w, 200, x)
	}
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := s.subscription(w, r); x != nil {
		delete(s.subs, x.ID)
		s.subOrder = slices.DeleteFunc(s.subOrder, func(id string) bool { return id == x.ID })
		w.WriteHeader(http.StatusNoContent)
	}
}

// queueOnly answers 409 for a webhook-delivery subscription.
func (s *Server) queueOnly(w http.ResponseWriter, r *http.Request, x *Subscription) bool {
	if x.Delivery.Type != "queue" {
		s.problem(w, r, Problem{Status: 409, Code: "conflict", Detail: fmt.Sprintf("subscription %s delivers by webhook; only queue subscriptions are pulled", x.ID)})
		return false
	}
	return true
}

func (s *Server) pullEvents(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	q := r.URL.Query()
	max, wait := 100, 0
	if v := q.Get("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.problem(w, r, Problem{Status: 400, Code: "invalid_request", Detail: "max must be an integer from 1 to 1000"})
			return
		}
		max = n
	}
	if v := q.Get("wait_s"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 60 {
			s.problem(w, r, Problem{Status: 400, Code: "invalid_request", Detail: "wait_s must be an integer from 0 to 60"})
			return
		}
		wait = n
	}
	deadline := time.NewTimer(time.Duration(wait) * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		x := s.subscription(w, r)
		if x == nil || !s.queueOnly(w, r, x) {
			s.mu.Unlock()
			return
		}
		now := s.Now()
		out := []DeliveredEvent{}
		for _, e := range x.events {
			if len(out) == max {
				break
			}
			if !e.acked && !now.Before(e.leasedUntil) {
				e.leasedUntil = now.Add(leaseTime)
				out = append(out, e.ev)
			}
		}
		signal := s.subSignal
		s.mu.Unlock()
		if len(out) > 0 || wait == 0 {
			reply(w, 200, map[string]any{"events": out})
			return
		}
		select {
		case <-signal:
		case <-deadline.C:
			wait = 0
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) ackEvents(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDs []string `json:"ids"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.subscription(w, r)
	if x == nil || !s.queueOnly(w, r, x) {
		return
	}
	n := 0
	for _, e := range x.events {
		if !e.acked && slices.Contains(req.IDs, e.ev.ID) {
			e.acked = true
			n++
			x.Counts.Delivered++
			x.Counts.Pending--
		}
	}
	reply(w, 200, map[string]any{"acked": n})
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Since string `json:"since"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	since, err := time.Parse(time.RFC3339Nano, req.Since)
	if err != nil {
		s.problem(w, r, Problem{Status: 400, Code: "invalid_request", Detail: "since must be an RFC 3339 time"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.subscription(w, r)
	if x == nil {
		return
	}
	n := 0
	for _, e := range x.events {
		if !e.ev.Timestamp.Before(since) {
			if e.acked {
				x.Counts.Pending++
				x.Counts.Delivered--
			}
			e.acked, e.leasedUntil = false, time.Time{}
			n++
		}
	}
	close(s.subSignal)
	s.subSignal = make(chan struct{})
	reply(w, 200, map[string]any{"replayed": n})
}
