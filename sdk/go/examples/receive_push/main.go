// Command receive_push subscribes to new records with webhook delivery to a receiver it
// serves itself, verifies each push with the SDK's Standard Webhooks verifier and prints it.
// It stops after EVENTS events (default 3); LISTEN is the receiver's address.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
)

func main() {
	c := plugboard.New(os.Getenv("PLUGBOARD_URL"), os.Getenv("PLUGBOARD_TOKEN"))
	want, err := strconv.Atoi(os.Getenv("EVENTS"))
	if err != nil {
		want = 3
	}
	ln, err := net.Listen("tcp", os.Getenv("LISTEN")) // "" picks a free port
	if err != nil {
		log.Fatal(err)
	}
	sub, err := c.CreateSubscription(context.Background(), plugboard.SubscriptionRequest{
		Connector: "trig", Trigger: "items", Connection: os.Getenv("PLUGBOARD_CONNECTION"),
		Delivery: plugboard.Delivery{Type: plugboard.DeliveryWebhook, URL: "http://" + ln.Addr().String() + "/hook"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.DeleteSubscription(context.Background(), sub.ID)
	fmt.Println("subscribed", sub.ID)

	events := make(chan plugboard.Event)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		ev, err := plugboard.VerifyWebhook(r.Header, body, sub.SigningSecret) // shown once, at create
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized) // not from Plugboard: ignore it
			return
		}
		w.WriteHeader(http.StatusNoContent) // 2xx: delivered; anything else is retried
		events <- ev
	}))
	for range want {
		ev := <-events
		fmt.Printf("event %s %s %s\n", ev.ID, ev.EventType, ev.Data)
	}
}
