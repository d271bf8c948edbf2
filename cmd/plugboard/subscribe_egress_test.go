package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/plugboard/plugboard/server"
)

// `plugboard subscribe --webhook-url` to a loopback URL on a server started without
// --egress-allow fails with the server's private_address problem and a hint saying how to
// reach it (a real server, over HTTP).
func TestSubscribeRefusedPushURL(t *testing.T) {
	srv, err := server.New(context.Background(), &server.Options{DataDir: t.TempDir(), AdminToken: "pba_sub",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close(context.Background()) }()
	e := env{"PLUGBOARD_URL": hs.URL, "PLUGBOARD_TOKEN": "pba_sub"}

	plugboard(t, e, "", "subscribe", "github", "new_issue", "--webhook-url", "http://127.0.0.1:9000/hook").want(t, exitError, nil, []string{
		"error: private_address: delivery.url: 127.0.0.1 is a loopback address", "(HTTP 400)",
		"--egress-allow covers the range", "hint: the server reaches only public addresses unless it is started with --egress-allow CIDR",
		"plugboard serve --egress-allow 127.0.0.0/8",
	})
}
