package natsstore

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestOpenWaitsForNATS: a node started just before its NATS server (as systemd or compose may
// start them) waits for it instead of exiting, and one told not to wait fails at once with
// the hint.
func TestOpenWaitsForNATS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	key := filepath.Join(t.TempDir(), "master.key")

	if _, err := Open(bg, Options{URLs: url, MasterKeyFile: key, Logger: quietLog, ConnectWait: -1}); err == nil {
		t.Fatal("Open without a server and without waiting succeeded")
	}

	go func() {
		time.Sleep(time.Second)
		ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
		if err != nil {
			t.Errorf("nats-server: %v", err)
			return
		}
		go ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	}()
	s, err := Open(bg, Options{URLs: url, MasterKeyFile: key, Logger: quietLog, ConnectWait: 20 * time.Second})
	if err != nil {
		t.Fatalf("Open did not wait for the server that started a second later: %v", err)
	}
	s.Close()
}
