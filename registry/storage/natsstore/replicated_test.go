package natsstore

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/plugboard/plugboard/registry/storage"
)

// startNATSCluster runs three in-process nats-servers with JetStream, routed into one cluster,
// and returns their client URLs once JetStream has a meta leader.
func startNATSCluster(t *testing.T) []string {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var urls []string
	var servers []*server.Server
	for i, p := range ports {
		ns, err := server.NewServer(&server.Options{ServerName: fmt.Sprintf("s%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: filepath.Join(t.TempDir(), "js"), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "plugboard-test", Host: "127.0.0.1", Port: p}, Routes: routes})
		if err != nil {
			t.Fatalf("nats-server %d: %v", i+1, err)
		}
		go ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		servers = append(servers, ns)
	}
	for i, ns := range servers {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats-server %d did not start within 10 s", i+1)
		}
		urls = append(urls, ns.ClientURL())
	}
	eventually(t, "a JetStream meta leader", func() bool {
		for _, ns := range servers {
			if ns.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return urls
}

// TestReplicatedFreshReads: on buckets with three replicas, a fresh read on one node sees a
// write another node had acknowledged, every time, though followers answer direct gets and
// may lag behind the leader; and the leader's message API reads exactly what a direct get
// reads once the replicas agree (values, revisions, deleted and missing keys).
func TestReplicatedFreshReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server NATS cluster; run without -short")
	}
	urls := startNATSCluster(t)
	ns := testNS{url: urls[0], keyFile: filepath.Join(t.TempDir(), "master.key"), prefix: "pbrepl"}
	var a *Store
	eventually(t, "opening the namespace with three replicas", func() bool {
		s, err := Open(bg, Options{URLs: urls[0], Prefix: ns.prefix, MasterKeyFile: ns.keyFile, Name: "a", Replicas: 3, Logger: quietLog})
		if err == nil {
			a = s
		}
		return err == nil
	})
	t.Cleanup(func() { a.Close() })
	b := testNS{url: urls[2], keyFile: ns.keyFile, prefix: ns.prefix}.open(t, &Options{Name: "b", Replicas: 3})
	if !a.state.replicated || !b.state.replicated {
		t.Fatal("the state bucket is not replicated")
	}

	fresh := storage.WithFresh(bg)
	const rounds = 200
	for i := range rounds {
		id := fmt.Sprintf("c%d", i)
		c := storage.Connection{ID: id, Connectors: []string{"github"}, AuthType: "none", Status: "ready",
			Params: json.RawMessage(`{}`), Meta: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if err := a.CreateConnection(bg, c); err != nil {
			t.Fatal(err)
		}
		got, err := b.Connection(fresh, id)
		if err != nil {
			t.Fatalf("round %d: a fresh read on b of the connection a had just created: %v", i, err)
		}
		if string(got.Meta) != string(c.Meta) {
			t.Fatalf("round %d: b read meta %s, want %s", i, got.Meta, c.Meta)
		}
		if _, err := a.UpdateConnection(bg, id, func(c *storage.Connection) error {
			c.Meta = json.RawMessage(`{"n":-1}`)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, err := b.Connection(fresh, id); err != nil || string(got.Meta) != `{"n":-1}` {
			t.Fatalf("round %d: b read %s, %v after a's update, want {\"n\":-1}", i, got.Meta, err)
		}
	}
	if err := a.DeleteConnection(bg, "c0"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Connection(fresh, "c0"); err == nil {
		t.Fatal("b read c0 fresh after a deleted it")
	}

	// The leader's API and a direct get agree, once every replica has every write.
	for _, key := range []string{"conn.c1", "conn.c0", "conn.never"} {
		var leader, direct entry
		eventually(t, "direct get of "+key+" matching the leader", func() bool {
			var err error
			if leader, err = b.leaderGet(bg, b.state, key); err != nil {
				t.Fatal(err)
			}
			if direct, err = b.get(bg, b.state, key); err != nil {
				t.Fatal(err)
			}
			return leader.rev == direct.rev
		})
		if leader.exists != direct.exists || string(leader.val) != string(direct.val) || leader.key != direct.key {
			t.Errorf("%s: leader %+v, direct %+v", key, leader, direct)
		}
	}
}
