// Package rpctest puts a gRPC server on a real TCP socket for a test: the server and client
// options are the services' own (host.NewServer, host.Dial) over mutual TLS, so that a
// conformance suite run through it exercises the very transport the processes use. The
// access table is left out: a suite calls every method of its context, some of which no
// other context may call (services/host's tests check the table over real sockets).
package rpctest

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
)

// Serve starts a server on 127.0.0.1:0 with the services register adds, and returns a client
// connection to it using serviceConfig. Both stop when t ends.
func Serve(t testing.TB, serviceConfig string, register func(s grpc.ServiceRegistrar)) *grpc.ClientConn {
	t.Helper()
	conn, _ := ServeKillable(t, serviceConfig, register)
	return conn
}

// ServeKillable is Serve, and also returns a kill that ends the server at once, dropping its
// connections with any call in flight, as a process killed mid-call does. Calling it more
// than once is harmless.
func ServeKillable(t testing.TB, serviceConfig string, register func(s grpc.ServiceRegistrar)) (conn *grpc.ClientConn, kill func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	server := hosttest.Security(t, "catalog")
	// No authorization (Insecure), then the same mutual TLS as a secure server's.
	srv := host.NewServer(slog.New(slog.DiscardHandler), host.Security{Insecure: true},
		grpc.Creds(credentials.NewTLS(server.Identity.ServerConfig(nil))))
	register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns when Stop is called below
	}()
	conn, err = host.Dial(ln.Addr().String(), serviceConfig, 30*time.Second, hosttest.Security(t, "edge-orders").ClientCredentials(""))
	if err != nil {
		srv.Stop()
		t.Fatalf("dial: %v", err)
	}
	kill = func() { srv.Stop(); <-done }
	t.Cleanup(func() {
		_ = conn.Close()
		kill()
	})
	return conn, kill
}
