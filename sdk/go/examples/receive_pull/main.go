// Command receive_pull subscribes to new records with queue delivery and consumes the events
// with the SDK's iterator, which acknowledges each one once the loop body is done with it.
// It stops after EVENTS events (default 3) or TIMEOUT_S seconds (default 60).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
)

func main() {
	c := plugboard.New(os.Getenv("PLUGBOARD_URL"), os.Getenv("PLUGBOARD_TOKEN"))
	want, timeout := envInt("EVENTS", 3), envInt("TIMEOUT_S", 60)
	ctx, stop := context.WithTimeout(context.Background(), time.Duration(timeout)*time.Second)
	defer stop()

	sub, err := c.CreateSubscription(ctx, plugboard.SubscriptionRequest{
		Connector: "trig", Trigger: "items", Connection: os.Getenv("PLUGBOARD_CONNECTION"),
		Delivery: plugboard.Delivery{Type: plugboard.DeliveryQueue}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.DeleteSubscription(context.Background(), sub.ID)
	fmt.Println("subscribed", sub.ID)

	n := 0
	for ev, err := range c.Events(ctx, sub.ID, plugboard.EventsOptions{}) {
		if err != nil {
			log.Fatal(err) // a failed pull; events not acknowledged come back after 30 s
		}
		fmt.Printf("event %s %s %s\n", ev.ID, ev.EventType, ev.Data)
		if n++; n == want {
			stop() // ends the loop; this event is acknowledged with the others
		}
	}
	fmt.Printf("received %d events\n", n)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
