// Command read_and_send is an app that reads and sends records through a connection another
// app (the operator) owns: it holds only an invoker key, never the records service's secret.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
)

func main() {
	c := plugboard.New(os.Getenv("PLUGBOARD_URL"), os.Getenv("PLUGBOARD_TOKEN"))
	conn := os.Getenv("PLUGBOARD_CONNECTION") // "crm": the operator's connection
	ctx := context.Background()

	// Read: the http connector's request action, with the connection's credentials added.
	read, err := c.Invoke(ctx, "http", "request", plugboard.InvokeRequest{
		Connection: conn, Input: json.RawMessage(`{"method": "GET", "path": "/records"}`)})
	if err != nil {
		log.Fatal(err) // a *plugboard.Problem: code, status, detail, correlation id
	}
	var out struct{ Body struct{ Records []any } }
	json.Unmarshal(read.Output, &out)
	fmt.Printf("read %d records\n", len(out.Body.Records))

	// Send: a new record. The correlation id finds the call in the server's logs.
	record := `{"name": "Ada Lovelace"}`
	sent, err := c.Invoke(ctx, "http", "request", plugboard.InvokeRequest{
		Connection: conn, Input: json.RawMessage(`{"method": "POST", "path": "/records", "body": ` + record + `}`)})
	if err != nil {
		log.Fatal(err)
	}
	var created struct {
		Status int
		Body   struct{ ID string }
	}
	json.Unmarshal(sent.Output, &created)
	fmt.Printf("sent %s: %d %s (correlation %s)\n", record, created.Status, created.Body.ID, sent.CorrelationID)
}
