// Package natsjstest gives tests a real JetStream: an embedded nats-server in a temporary
// directory, stopped when the test ends.
package natsjstest

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/natsembed"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// Server is a JetStream server for one test (or a test binary's TestMain).
type Server struct {
	srv *natsembed.Server
	js  jetstream.JetStream
	n   atomic.Int64
}

// Start starts a server in dir; the caller stops it with Close.
func Start(dir string) (*Server, error) {
	srv, err := natsembed.Start(dir, "")
	if err != nil {
		return nil, err
	}
	nc, err := srv.Connect("test")
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	return &Server{srv: srv, js: js}, nil
}

// New starts a server for t and stops it when t ends.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatalf("start JetStream: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Connect connects to the NATS server at url with opts, closed when t ends, and returns
// its JetStream: a test's view of a server it did not start (another process, a container,
// a cluster).
func Connect(t testing.TB, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// JetStream returns the server's JetStream client.
func (s *Server) JetStream() jetstream.JetStream { return s.js }

// Bucket opens a new, empty bucket with a unique name on the server, with the default
// store configuration (one copy; the unique name gets natsjs.DefaultMaxBytes).
func (s *Server) Bucket(t testing.TB, name string) *natsjs.Bucket {
	t.Helper()
	b, err := natsjs.OpenBucket(context.Background(), s.js, natsjs.StoreConfig{}, fmt.Sprintf("%s_%d", name, s.n.Add(1)))
	if err != nil {
		t.Fatalf("open bucket: %v", err)
	}
	return b
}

// TTL returns the TTL that JetStream holds for the last value of key in the bucket named
// bucket, as its Nats-TTL header says it ("" when the value has none), so that a test can
// check a retention of a day without waiting for it.
func (s *Server) TTL(t testing.TB, bucket, key string) string {
	t.Helper()
	stream, err := s.js.Stream(context.Background(), "KV_"+bucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	msg, err := stream.GetLastMsgForSubject(context.Background(), "$KV."+bucket+"."+key)
	if err != nil {
		t.Fatalf("%s in bucket %s: %v", key, bucket, err)
	}
	return msg.Header.Get("Nats-TTL")
}

// Bus opens the event bus on the server, with the default store configuration and
// consumers made (the stream keeps an event only for the consumers that exist when it is
// published: a test that publishes before it subscribes names its consumers here).
func (s *Server) Bus(t testing.TB, consumers ...natsjs.Consumer) *natsjs.Bus {
	t.Helper()
	b, err := natsjs.OpenBus(context.Background(), s.js, natsjs.StoreConfig{}, consumers, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	return b
}

// Close stops the server.
func (s *Server) Close() { s.srv.Shutdown() }

// Serve starts a nats-server with opts, for a test that needs the server's own options
// (users, TLS, a port of its own) rather than New's, and stops it when t ends.
func Serve(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready within 10s")
	}
	return ns
}
