package plugboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// fakeCRM is an in-memory Plugboard with the scenario of the examples: the http connector,
// the trig connector with its items trigger, and the operator's connection crm to both.
func fakeCRM() *plugboardtest.Server {
	api := plugboardtest.NewServer()
	api.AddConnector(abi.Manifest{ABI: 1, Name: "http", Version: "1.0.0", Auth: abi.Auth{Types: []string{"api_key"}},
		Actions: []abi.Action{{Name: "request", InputSchema: json.RawMessage(`{"type": "object", "required": ["method", "path"]}`)}}})
	api.AddConnector(abi.Manifest{ABI: 1, Name: "trig", Version: "1.0.0", Auth: abi.Auth{Types: []string{"api_key"}},
		Triggers: []abi.Trigger{{Name: "items", Kind: "poll"}}})
	api.AddConnection("crm", "http", "trig")
	api.Invoke = func(connector, action string, req plugboardtest.InvokeBody) (any, *plugboardtest.Problem) {
		// What the records service would answer through the http connector.
		return map[string]any{"status": 201, "body": map[string]any{"id": "rec_1", "name": "Ada"}}, nil
	}
	return api
}

func ExampleNew() {
	api := plugboardtest.NewServer() // a fake for the example: use your server's URL and key
	defer api.Close()

	c := plugboard.New(api.URL, plugboardtest.Token,
		plugboard.WithMaxRetries(3),             // 429 and 503 answers, after Retry-After
		plugboard.WithTimeout(30*time.Second),   // each exchange
		plugboard.WithUserAgent("my-app/1.0.0"), // after plugboard-go/VERSION
	)
	if err := c.Ready(context.Background()); err != nil {
		fmt.Println("not ready:", err)
		return
	}
	connectors, err := c.ListConnectors(context.Background())
	fmt.Println(len(connectors), "connectors,", err)
	// Output: 0 connectors, <nil>
}

func ExampleClient_Invoke() {
	api := fakeCRM()
	defer api.Close()
	c := plugboard.New(api.URL, plugboardtest.Token)
	ctx := plugboard.WithCorrelationID(context.Background(), "c_example")

	out, err := c.Invoke(ctx, "http", "request", plugboard.InvokeRequest{
		Connection: "crm",
		Input:      json.RawMessage(`{"method": "POST", "path": "/records", "body": {"name": "Ada"}}`),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(out.Output), out.Connector, out.Version, out.CorrelationID)

	// Errors are *plugboard.Problem, with the server's code.
	_, err = c.Invoke(ctx, "http", "request", plugboard.InvokeRequest{Connection: "nope", Input: json.RawMessage(`{"method": "GET", "path": "/records"}`)})
	if p, ok := errors.AsType[*plugboard.Problem](err); ok && p.Code == plugboard.CodeConnectionNotFound {
		fmt.Println(p.Status, p.Code, p.CorrelationID)
	}
	fmt.Println(err)
	// Output:
	// {"body":{"id":"rec_1","name":"Ada"},"status":201} http 1.0.0 c_example
	// 404 connection_not_found c_example
	// connection_not_found: no connection "nope" (HTTP 404)
}

func ExampleClient_Events() {
	api := fakeCRM()
	defer api.Close()
	c := plugboard.New(api.URL, plugboardtest.Token)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	sub, err := c.CreateSubscription(ctx, plugboard.SubscriptionRequest{
		Connector: "trig", Trigger: "items", Connection: "crm",
		Delivery: plugboard.Delivery{Type: plugboard.DeliveryQueue},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"Ada", "Grace", "Edsger"} { // the fake's stand-in for new records
		api.Emit(sub.ID, "record.created", name, time.Time{}, map[string]string{"name": name})
	}

	n := 0
	for ev, err := range c.Events(ctx, sub.ID, plugboard.EventsOptions{}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(ev.Type, ev.EventType, string(ev.Data))
		if n++; n == 3 {
			stop() // ends the loop; this event, handled, is acknowledged with the others
		}
	}
	left, _ := c.PullEvents(context.Background(), sub.ID, 10, 0)
	fmt.Println(len(left), "left")
	// Output:
	// trig.items record.created {"name":"Ada"}
	// trig.items record.created {"name":"Grace"}
	// trig.items record.created {"name":"Edsger"}
	// 0 left
}

func ExampleVerifyWebhook() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the subscription's signing_secret

	// The receiver: verify the raw body before trusting any of it.
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		ev, err := plugboard.VerifyWebhook(r.Header, body, secret)
		if err != nil {
			fmt.Println(err)
			http.Error(w, "invalid signature", http.StatusUnauthorized) // Plugboard retries later
			return
		}
		fmt.Println("verified", ev.ID, ev.Type, string(ev.Data))
		w.WriteHeader(http.StatusNoContent)
	})

	// A push signed as Plugboard signs it, then the same push with its body changed.
	body := []byte(`{"id":"evt_1","type":"trig.items","source_event_id":"rec_1","timestamp":"2026-12-03T10:00:00Z","subscription":"sub_1","data":{"name":"Ada"}}`)
	headers := plugboardtest.SignWebhook(secret, "evt_1", time.Now(), body)
	for _, b := range [][]byte{body, bytes.Replace(body, []byte("Ada"), []byte("Eve"), 1)} {
		req := httptest.NewRequest(http.MethodPost, "/hooks/plugboard", bytes.NewReader(b))
		req.Header = headers
		rec := httptest.NewRecorder()
		receiver.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// verified evt_1 trig.items {"name":"Ada"}
	// 204
	// webhook verification failed: no signature matches (the body was changed, or the secret is not this subscription's)
	// 401
}
