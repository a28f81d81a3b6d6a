// Package selfcheck lets a binary check its own liveness when run as `<binary> -healthcheck`:
// the images hold nothing but the binary (no shell, no curl), so a container health check
// (ECS, compose) runs the binary itself, which asks the copy of it that is serving. It checks
// that the process answers, not that its dependencies do: an orchestrator restarts an
// unhealthy container, and restarting a service because a peer is down only spreads the
// outage. Readiness (/readyz, gRPC SERVING) is for load balancers.
package selfcheck

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Flag is the argument that turns a binary into its own health check.
const Flag = "-healthcheck"

// Timeout bounds one check; container health checks give 5 s.
const Timeout = 3 * time.Second

// Requested reports whether the process was started as a health check.
func Requested(args []string) bool { return len(args) > 1 && args[1] == Flag }

// Exit runs check and exits 0 when it passes, 1 (saying why on stderr) when it does not.
func Exit(check func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := check(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		cancel()
		os.Exit(1)
	}
	os.Exit(0)
}

// Loopback turns a listen address ("0.0.0.0:8080", ":8080", "[::]:9101") into the address
// to dial from inside the same container: 127.0.0.1 on the same port.
func Loopback(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// HTTP checks that GET http://<listen><path> answers 200.
func HTTP(ctx context.Context, listen, path string) error {
	addr, err := Loopback(listen)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// GRPC checks that the gRPC health service at listen answers at all: NOT_SERVING (a peer
// is down) still means this process is alive. opts come after plaintext credentials: a
// process serving mutual TLS passes its own (services/host).
func GRPC(ctx context.Context, listen string, opts ...grpc.DialOption) error {
	addr, err := Loopback(listen)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		return fmt.Errorf("grpc health: %w", err)
	}
	return nil
}
