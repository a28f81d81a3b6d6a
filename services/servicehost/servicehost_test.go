package servicehost_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/natsembed"
)

func TestConfigFrom(t *testing.T) {
	env := map[string]string{"SHOP_NATS_URL": "nats://127.0.0.1:4222"}
	getenv := func(k string) string { return env[k] }
	cfg, err := servicehost.ConfigFrom("orders", []string{"catalog", "payments"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GRPCAddr != "127.0.0.1:9105" || cfg.Peers["catalog"] != "127.0.0.1:9101" || cfg.Peers["payments"] != "127.0.0.1:9104" ||
		cfg.CallTimeout != servicehost.DefaultCallTimeout || cfg.LogLevel != slog.LevelInfo {
		t.Fatalf("defaults = %+v", cfg)
	}
	env["SHOP_GRPC_ADDR"] = "127.0.0.1:0"
	env["SHOP_CATALOG_ADDR"] = "catalog:9101"
	env["SHOP_RPC_TIMEOUT"] = "250ms"
	env["SHOP_LOG_LEVEL"] = "debug"
	cfg, err = servicehost.ConfigFrom("orders", []string{"catalog"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GRPCAddr != "127.0.0.1:0" || cfg.Peers["catalog"] != "catalog:9101" || cfg.CallTimeout != 250*time.Millisecond || cfg.LogLevel != slog.LevelDebug {
		t.Fatalf("from env = %+v", cfg)
	}
	env["SHOP_RPC_TIMEOUT"] = "soon"
	if _, err := servicehost.ConfigFrom("orders", nil, getenv); err == nil {
		t.Error("a bad SHOP_RPC_TIMEOUT was accepted")
	}
	delete(env, "SHOP_RPC_TIMEOUT")
	delete(env, "SHOP_NATS_URL")
	if _, err := servicehost.ConfigFrom("orders", nil, getenv); err == nil {
		t.Error("a missing SHOP_NATS_URL was accepted: a service must never embed NATS")
	}
}

// startNATS starts a NATS server listening on a free loopback port, as the services'
// external one.
func startNATS(t *testing.T) string {
	t.Helper()
	ns, err := natsembed.Start(t.TempDir(), "127.0.0.1:-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

// serve runs a cart process (whose peer, if any, is a cart at peerAddr) until the returned
// stop is called, and returns its address.
func serve(t *testing.T, natsURL, peerAddr string) (addr string, stop func() error) {
	t.Helper()
	cfg := servicehost.Config{Name: "cart", GRPCAddr: "127.0.0.1:0", NatsURL: natsURL, CallTimeout: time.Second,
		DrainTimeout: 5 * time.Second, HealthEvery: 50 * time.Millisecond}
	if peerAddr != "" {
		cfg.Peers = map[string]string{"cart": peerAddr}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := servicehost.Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	carts, err := p.Bucket(ctx, "kit_test_carts")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cartrpc.Register(p.GRPC(), cart.New(carts))
	if peerAddr != "" {
		if _, err := p.Peer("cart", cartrpc.ServiceName, cartrpc.ServiceConfig); err != nil {
			cancel()
			t.Fatal(err)
		}
	}
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, []string{cartrpc.ServiceName}, func(a net.Addr) { addrs <- a }) }()
	select {
	case a := <-addrs:
		addr = a.String()
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return addr, stop
}

// health returns the status a health client reads for service at addr.
func health(t *testing.T, addr, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return res.GetStatus()
}

func waitHealth(t *testing.T, addr, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := health(t, addr, service)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %q at %s = %s, want %s", service, addr, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHealthFollowsStoresAndPeers: a process is SERVING only while its stores and its peers
// answer, and a graceful stop ends with the server closed.
func TestHealthFollowsStoresAndPeers(t *testing.T) {
	natsURL := startNATS(t)

	// A peer that does not exist yet: the process serves calls but is NOT_SERVING.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerAddr := ln.Addr().String()
	ln.Close()
	addr, stop := serve(t, natsURL, peerAddr)
	waitHealth(t, addr, "", healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, addr, cartrpc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)

	// The peer comes up on that address: SERVING.
	_, stopPeer := serveAt(t, natsURL, peerAddr)
	waitHealth(t, peerAddr, "", healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, addr, "", healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, addr, cartrpc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	// The peer goes away: NOT_SERVING again.
	if err := stopPeer(); err != nil {
		t.Fatalf("peer's graceful stop: %v", err)
	}
	waitHealth(t, addr, "", healthpb.HealthCheckResponse_NOT_SERVING)

	// Graceful stop returns cleanly, and the port is closed.
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if got := health(t, addr, ""); got != healthpb.HealthCheckResponse_UNKNOWN {
		t.Fatalf("after stop, health = %s, want no answer", got)
	}
}

// serveAt is serve on a given address (the peer of the test).
func serveAt(t *testing.T, natsURL, addr string) (string, func() error) {
	t.Helper()
	cfg := servicehost.Config{Name: "cart", GRPCAddr: addr, NatsURL: natsURL, CallTimeout: time.Second,
		DrainTimeout: 5 * time.Second, HealthEvery: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	wired := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- servicehost.Run(ctx, cfg, slog.New(slog.DiscardHandler), func(ctx context.Context, p *servicehost.Process) ([]string, error) {
			defer close(wired)
			carts, err := p.Bucket(ctx, "kit_test_peer_carts")
			if err != nil {
				return nil, err
			}
			cartrpc.Register(p.GRPC(), cart.New(carts))
			return []string{cartrpc.ServiceName}, nil
		})
	}()
	select {
	case <-wired:
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return addr, stop
}

// TestDefaultDeadline: a call made without a deadline gets the configured one, and it
// reaches the server.
func TestDefaultDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := servicehost.NewServer(slog.New(slog.DiscardHandler))
	deadlines := make(chan time.Duration, 1)
	healthpb.RegisterHealthServer(srv, deadlineProbe{deadlines: deadlines})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := servicehost.Dial(ln.Addr().String(), `{}`, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := <-deadlines; d <= 2*time.Second || d > 3*time.Second {
		t.Fatalf("server saw a deadline %s away, want about 3s", d)
	}
}

type deadlineProbe struct {
	healthpb.UnimplementedHealthServer
	deadlines chan<- time.Duration
}

func (p deadlineProbe) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now()
	}
	select {
	case p.deadlines <- time.Until(d):
	default: // the benchmark does not read them
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// BenchmarkEmptyCall is the floor of one hop: an empty unary call (a health check) through
// the services' own server and client options, on a loopback socket.
func BenchmarkEmptyCall(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := servicehost.NewServer(slog.New(slog.DiscardHandler))
	healthpb.RegisterHealthServer(srv, deadlineProbe{deadlines: make(chan time.Duration, 1)})
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(srv.Stop)
	conn, err := servicehost.Dial(ln.Addr().String(), `{}`, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
