package plugboard_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

func TestSubscriptionDocumentsKeepUnknownFields(t *testing.T) {
	s := plugboardtest.New(t)
	var sent map[string]any
	s.Intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost {
			json.NewDecoder(r.Body).Decode(&sent)
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/subscriptions":
			w.WriteHeader(201)
			w.Write([]byte(`{"id":"sub_1","connector":"github","trigger":"new_issue","connection":"gh","params":{"owner":"o"},"interval_s":60,` +
				`"delivery":{"type":"webhook","url":"https://a.example"},"status":"active","owner":"key_1","created_at":"2026-11-28T07:00:00Z",` +
				`"last_polled_at":null,"last_event_at":null,"last_error":{"code":"unauthorized","message":"Bad credentials","at":"2026-11-28T07:01:00Z"},` +
				`"lag_s":1.5,"counts":{"events":3,"delivered":2,"pending":1,"dropped":0},"push":{"attempts":2,"last_status":503,"last_attempt_at":null,"next_attempt_at":null,"last_error":null},` +
				`"source":{"id":"src_1","kind":"poll","subscribers":2,"interval_s":60},"signing_secret":"whsec_abc","future_field":true}`))
		case "/v1/subscriptions/sub_1/events":
			if q := r.URL.RawQuery; q != "max=5&wait_s=2" {
				t.Errorf("query %q", q)
			}
			w.Write([]byte(`{"events":[{"id":"evt_1","type":"github.new_issue","event_type":"opened","source_event_id":"42","timestamp":"2026-11-28T07:00:00Z","subscription":"sub_1","data":{"n":42},"extra":1}]}`))
		}
		return true
	}
	c := plugboard.New(s.URL, plugboardtest.Token, plugboard.WithHTTPClient(s.Client()))
	sub, err := c.CreateSubscription(t.Context(), plugboard.SubscriptionRequest{Connector: "github", Trigger: "new_issue", Delivery: plugboard.Delivery{Type: plugboard.DeliveryWebhook, URL: "https://a.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if sub.SigningSecret != "whsec_abc" || sub.LastError == nil || sub.LastError.Code != "unauthorized" || sub.Counts.Pending != 1 ||
		sub.Push == nil || sub.Push.LastStatus != 503 || sub.Source == nil || sub.Source.Subscribers != 2 || !sub.LastPolledAt.IsZero() || sub.LagS != 1.5 {
		t.Errorf("subscription %+v", sub)
	}
	var raw map[string]any
	json.Unmarshal(sub.Raw, &raw)
	if raw["future_field"] != true {
		t.Errorf("Raw lost a field: %s", sub.Raw)
	}
	if p, ok := sent["params"].(map[string]any); !ok || len(p) != 0 {
		t.Errorf("nil params are sent as %v, want {}", sent["params"])
	}

	events, err := c.PullEvents(t.Context(), "sub_1", 5, 1500*time.Millisecond)
	if err != nil || len(events) != 1 || events[0].SourceEventID != "42" || events[0].EventType != "opened" || string(events[0].Data) != `{"n":42}` {
		t.Errorf("events %+v, %v", events, err)
	}
}
