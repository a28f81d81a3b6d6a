package natsjstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of embedded nats-servers, routed to each other on
// 127.0.0.1, each with its own server name and file store in a temporary directory: what
// replicated buckets and streams are tested on. The servers are stopped when the test ends.
type Cluster struct {
	servers []*server.Server
	down    []bool
}

// ClusterName is the name of the test cluster every server joins.
const ClusterName = "mitosis-test"

// clusterTimeout bounds the wait for the cluster to form, and for leaders to move.
const clusterTimeout = 30 * time.Second

// NewCluster starts n servers and returns once they form a JetStream cluster with a meta
// leader that every server follows.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	// Routes need every server's cluster port before any starts: the ports are picked by
	// binding port 0 and freeing it, so another process could take one in between; on a
	// test machine that is rare enough.
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a cluster port: %v", err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	c := &Cluster{down: make([]bool, n)}
	t.Cleanup(c.shutdownAll) // after the directories' cleanups, so it runs before them
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   dirs[i],
			Cluster:    server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes, // its own address among them is ignored
			NoSigs:     true,
			NoLog:      true,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("server %s: %v", opts.ServerName, err)
		}
		s.Start()
		c.servers = append(c.servers, s)
		if !s.ReadyForConnections(clusterTimeout) {
			t.Fatalf("server %s not ready after %v", opts.ServerName, clusterTimeout)
		}
	}
	poll(t, "JetStream cluster formed", func() (bool, string) {
		leader := c.MetaLeader()
		if leader < 0 {
			return false, "no meta leader"
		}
		if peers := c.servers[leader].JetStreamClusterPeers(); len(peers) != n {
			return false, fmt.Sprintf("meta peers %v", peers)
		}
		for _, s := range c.servers {
			if !s.JetStreamIsCurrent() {
				return false, s.Name() + " not current"
			}
		}
		return true, ""
	})
	return c
}

// URLs returns the servers' client URLs, server i's first and the others after it in order:
// a client that connects with them (and nats.DontRandomize) is on server i, and reconnects
// to the others when it goes.
func (c *Cluster) URLs(i int) string {
	urls := []string{c.servers[i].ClientURL()}
	for j, s := range c.servers {
		if j != i {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// JetStream connects a client named name to server i (reconnecting to the others when it
// goes), closed when the test ends, and returns its JetStream.
func (c *Cluster) JetStream(t testing.TB, i int, name string) jetstream.JetStream {
	t.Helper()
	return Connect(t, c.URLs(i), nats.Name(name))
}

// Name returns server i's name.
func (c *Cluster) Name(i int) string { return c.servers[i].Name() }

// MetaLeader returns the index of the running server that leads the JetStream meta group, or
// -1 while there is none.
func (c *Cluster) MetaLeader() int {
	for i, s := range c.servers {
		if !c.down[i] && s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// Lead makes server i the leader of every replicated stream and durable consumer of the
// account that nc (a client of the cluster) is in, and returns once it is: then stopping it
// takes away every leader at once. Ephemeral consumers have a single copy and stay where
// they are.
func (c *Cluster) Lead(t testing.TB, nc *nats.Conn, i int) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := c.Name(i)
	poll(t, "every leader on "+name, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var elsewhere []string
		for stream := range js.StreamNames(ctx).Name() {
			s, err := js.Stream(ctx, stream)
			if err != nil {
				return false, err.Error()
			}
			if !leads(s.CachedInfo().Cluster, name) {
				elsewhere = append(elsewhere, stream)
				stepDown(nc, fmt.Sprintf(server.JSApiStreamLeaderStepDownT, stream), name)
			}
			for cons := range s.ListConsumers(ctx).Info() {
				if cons.Config.Durable != "" && !leads(cons.Cluster, name) {
					elsewhere = append(elsewhere, stream+"/"+cons.Name)
					stepDown(nc, fmt.Sprintf(server.JSApiConsumerLeaderStepDownT, stream, cons.Name), name)
				}
			}
		}
		return len(elsewhere) == 0, fmt.Sprintf("led elsewhere: %v", elsewhere)
	})
}

// leads tells whether the group in ci is replicated and led by server name.
func leads(ci *jetstream.ClusterInfo, name string) bool {
	return ci != nil && len(ci.Replicas) > 0 && ci.Leader == name
}

// stepDown asks a group's leader to hand over to server preferred. Its answer is not awaited
// beyond the request: Lead looks at the leaders again.
func stepDown(nc *nats.Conn, subject, preferred string) {
	req, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: preferred}})
	_, _ = nc.Request(subject, req, 2*time.Second)
}

// Shutdown stops server i and waits until its files are closed: to the others, a node lost.
func (c *Cluster) Shutdown(i int) {
	c.down[i] = true
	c.servers[i].Shutdown()
	c.servers[i].WaitForShutdown()
}

func (c *Cluster) shutdownAll() {
	for i := range c.servers {
		if !c.down[i] {
			c.Shutdown(i)
		}
	}
}

// WaitReplicated waits until stream name has n copies (its configuration and its peers
// say so), every follower current, failing t after clusterTimeout.
func WaitReplicated(t testing.TB, js jetstream.JetStream, name string, n int) {
	t.Helper()
	poll(t, fmt.Sprintf("stream %s on %d current copies", name, n), func() (bool, string) {
		s, err := js.Stream(context.Background(), name)
		if err != nil {
			return false, err.Error()
		}
		info := s.CachedInfo()
		if info.Cluster == nil {
			return false, "no cluster info"
		}
		current := 0
		for _, p := range info.Cluster.Replicas {
			if p.Current {
				current++
			}
		}
		state := fmt.Sprintf("replicas %d, leader %q, followers %d (%d current)", info.Config.Replicas, info.Cluster.Leader, len(info.Cluster.Replicas), current)
		return info.Config.Replicas == n && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == n-1 && current == n-1, state
	})
}

// poll calls cond every 50 ms until it holds, failing t after clusterTimeout with what it
// last said.
func poll(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v; last: %s", what, clusterTimeout, state)
		}
		time.Sleep(50 * time.Millisecond) // the poll interval, not a wait for the effect
	}
}
