// Package rpctest puts a gRPC server on a real TCP socket for a test: the server and client
// options are the services' own (host.NewServer, host.Dial), so that a conformance suite run
// through it exercises the very transport the processes use.
package rpctest

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/host"
)

// Serve starts a server on 127.0.0.1:0 with the services register adds, and returns a client
// connection to it using serviceConfig. Both stop when t ends.
func Serve(t testing.TB, serviceConfig string, register func(s grpc.ServiceRegistrar)) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := host.NewServer(slog.New(slog.DiscardHandler))
	register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns when Stop is called below
	}()
	conn, err := host.Dial(ln.Addr().String(), serviceConfig, 30*time.Second)
	if err != nil {
		srv.Stop()
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		<-done
	})
	return conn
}
