package host_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
)

func TestParseGroup(t *testing.T) {
	for _, tc := range []struct {
		in, out, err string
		remote       []string
	}{
		{in: "inventory+catalog", out: "catalog+inventory"},
		{in: "orders", out: "orders", remote: []string{"catalog", "cart", "inventory", "payments"}},
		{in: "edge", out: "edge", remote: bounded.Edge{}.Calls()},
		{in: "cart+edge+orders", out: "edge+cart+orders", remote: []string{"catalog", "inventory", "payments", "notify"}},
		{in: "", err: "empty group"},
		{in: "catalog+", err: `unknown context ""`},
		{in: "catalog+warehouse", err: `unknown context "warehouse"`},
		{in: "cart+cart", err: "cart twice"},
		{in: "edge+edge", err: "edge twice"},
	} {
		g, err := bounded.ParseGroup(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseGroup(%q) = %v, %v; want an error saying %q", tc.in, g, err, tc.err)
			}
			continue
		}
		if err != nil || g.String() != tc.out || !slices.Equal(g.Remote(), tc.remote) {
			t.Errorf("ParseGroup(%q) = %q (remote %v), %v; want %q (remote %v)", tc.in, g, g.Remote(), err, tc.out, tc.remote)
		}
	}
	for g, want := range map[string]string{"edge+catalog+cart+inventory+payments+orders+shipping+notify": "monolith", "edge": "gateway",
		"catalog+inventory": "catalog-inventory", "edge+cart": "edge-cart"} {
		group, err := bounded.ParseGroup(g)
		if err != nil || group.Name() != want {
			t.Errorf("Name(%s) = %q (%v), want %q", g, group.Name(), err, want)
		}
	}
}

func TestConfigFrom(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	cfg, err := host.ConfigFrom(getenv, bounded.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != host.MonolithAddr || cfg.GRPCAddr != "" || cfg.NatsURL != "" || cfg.DataDir != ".mitosis/data" ||
		!cfg.SoleReplica || cfg.Arch != "monolith" || cfg.Name != "monolith" || len(cfg.Peers) != 0 || cfg.LogLevel != slog.LevelInfo {
		t.Fatalf("the monolith's defaults = %+v", cfg)
	}
	if _, err := host.ConfigFrom(getenv, bounded.Group{}); err == nil || !strings.Contains(err.Error(), "SHOP_GROUP is required") {
		t.Errorf("no group: %v, want SHOP_GROUP is required", err)
	}
	env["SHOP_GROUP"] = "orders"
	if _, err := host.ConfigFrom(getenv, bounded.Group{}); err == nil || !strings.Contains(err.Error(), "SHOP_NATS_URL is required") {
		t.Errorf("a group of some contexts without a store: %v, want SHOP_NATS_URL is required", err)
	}
	env["SHOP_NATS_URL"] = "nats://127.0.0.1:4222"
	// Secure by default: a group that serves or calls gRPC needs its identity.
	if _, err := host.ConfigFrom(getenv, bounded.Group{}); err == nil || !strings.Contains(err.Error(), host.TLSDirEnv+" is required") {
		t.Errorf("a group with gRPC and no identity: %v, want %s is required", err, host.TLSDirEnv)
	}
	env[host.TLSDirEnv] = t.TempDir()
	if _, err := host.ConfigFrom(getenv, bounded.Group{}); err == nil || !strings.Contains(err.Error(), host.TLSDirEnv) {
		t.Errorf("an empty identity folder: %v, want an error naming %s", err, host.TLSDirEnv)
	}
	env[host.TLSDirEnv] = hosttest.IdentityDir(t, "orders")
	cfg, err = host.ConfigFrom(getenv, bounded.Group{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Security.Insecure || cfg.Security.Identity == nil || cfg.Security.Identity.ID().Service != "orders" {
		t.Fatalf("orders' security = %+v", cfg.Security)
	}
	if cfg.GRPCAddr != "127.0.0.1:9105" || cfg.HTTPAddr != "" || cfg.Peers["catalog"] != "127.0.0.1:9101" || cfg.Peers["payments"] != "127.0.0.1:9104" ||
		len(cfg.Peers) != 4 || cfg.SoleReplica || cfg.Arch != "services" || cfg.CallTimeout != host.DefaultCallTimeout {
		t.Fatalf("orders' defaults = %+v", cfg)
	}
	env["SHOP_GROUP"] = "edge+cart"
	env["SHOP_CATALOG_ADDR"] = "catalog:9101"
	env["SHOP_RPC_TIMEOUT"] = "250ms"
	env["SHOP_SOLE_REPLICA"] = "true"
	env["SHOP_ARCH"] = "hybrid"
	env["SHOP_LOG_LEVEL"] = "debug"
	cfg, err = host.ConfigFrom(getenv, bounded.Group{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != host.GatewayAddr || cfg.GRPCAddr != "127.0.0.1:9102" || cfg.Peers["catalog"] != "catalog:9101" || cfg.Peers["cart"] != "" ||
		cfg.CallTimeout != 250*time.Millisecond || !cfg.SoleReplica || cfg.Arch != "hybrid" || cfg.Name != "edge-cart" || cfg.LogLevel != slog.LevelDebug {
		t.Fatalf("from env = %+v", cfg)
	}
	env[host.InsecureEnv] = "true"
	if cfg, err := host.ConfigFrom(getenv, bounded.Group{}); err != nil || !cfg.Security.Insecure || cfg.Security.Identity != nil {
		t.Fatalf("%s=true: %+v, %v", host.InsecureEnv, cfg.Security, err)
	}
	delete(env, host.InsecureEnv)
	for k, v := range map[string]string{"SHOP_RPC_TIMEOUT": "soon", "SHOP_SOLE_REPLICA": "yes", "SHOP_GROUP": "cart+basket", host.InsecureEnv: "yes"} {
		old := env[k]
		env[k] = v
		if _, err := host.ConfigFrom(getenv, bounded.Group{}); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v, want an error naming it", k, v, err)
		}
		env[k] = old
	}
}

// health returns the status a health client reads for service at addr.
func health(t *testing.T, addr, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(hosttest.Security(t, identity.Tooling).ClientCredentials("")))
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
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// TestHealthFollowsStoresAndPeers: a group is SERVING only while its store and its peers
// answer, and a graceful stop ends with the server closed.
func TestHealthFollowsStoresAndPeers(t *testing.T) {
	ns := hosttest.StartNATS(t)
	// orders' peers at an address where nothing listens yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerAddr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"SHOP_NATS_URL": ns.URL()}
	orderSvc, _ := bounded.Lookup("orders")
	for _, c := range orderSvc.Calls {
		env[host.AddrEnv(c)] = peerAddr
	}
	orders := hosttest.Start(t, "orders", env)
	waitHealth(t, orders.GRPCAddr, "", healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, orders.GRPCAddr, orderSvc.Service, healthpb.HealthCheckResponse_NOT_SERVING)

	// The peers come up at that address: SERVING.
	peers := hosttest.Start(t, "catalog+cart+inventory+payments", map[string]string{"SHOP_NATS_URL": ns.URL(), "SHOP_GRPC_ADDR": peerAddr})
	waitHealth(t, peerAddr, "", healthpb.HealthCheckResponse_SERVING)
	waitHealth(t, orders.GRPCAddr, orderSvc.Service, healthpb.HealthCheckResponse_SERVING)

	// They go away: NOT_SERVING again.
	if err := peers.Stop(); err != nil {
		t.Fatalf("peers' graceful stop: %v", err)
	}
	waitHealth(t, orders.GRPCAddr, "", healthpb.HealthCheckResponse_NOT_SERVING)

	// Graceful stop returns cleanly, and the port is closed.
	if err := orders.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if got := health(t, orders.GRPCAddr, ""); got != healthpb.HealthCheckResponse_UNKNOWN {
		t.Fatalf("after stop, health = %s, want no answer", got)
	}
}

// TestDefaultDeadline: a call made without a deadline gets the configured one, and it
// reaches the server.
func TestDefaultDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := host.NewServer(slog.New(slog.DiscardHandler), hosttest.Security(t, "catalog"))
	deadlines := make(chan time.Duration, 1)
	healthpb.RegisterHealthServer(srv, deadlineProbe{deadlines: deadlines})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := host.Dial(ln.Addr().String(), `{}`, 3*time.Second, hosttest.Security(t, "orders").ClientCredentials("catalog"))
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
// the host's own server and client options, on a loopback socket, with mutual TLS and
// authorization (secure) and without (insecure).
func BenchmarkEmptyCall(b *testing.B) {
	for _, mode := range []string{"secure", "insecure"} {
		b.Run(mode, func(b *testing.B) {
			server, client := hosttest.Security(b, "catalog"), hosttest.Security(b, "orders")
			if mode == "insecure" {
				server, client = host.Security{Insecure: true}, host.Security{Insecure: true}
			}
			benchmarkEmptyCall(b, server, client)
		})
	}
}

func benchmarkEmptyCall(b *testing.B, server, client host.Security) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := host.NewServer(slog.New(slog.DiscardHandler), server)
	healthpb.RegisterHealthServer(srv, deadlineProbe{deadlines: make(chan time.Duration, 1)})
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(srv.Stop)
	conn, err := host.Dial(ln.Addr().String(), `{}`, 0, client.ClientCredentials(""))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil { // connected (and handshaken) before the clock starts
		b.Fatal(err)
	}
	cpu0 := processCPU(b)
	timeCalls(b, func() error {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	})
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// timeCalls makes call b.N times on the clock, and reports the allocations and the median
// and 99th percentile of the calls' latencies.
func timeCalls(b *testing.B, call func() error) {
	b.ReportAllocs()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// processCPU is the test process's user and system CPU so far: client and server of a
// benchmark's calls together.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPeersDown: with no peer reachable an edge is alive but not ready, and a request that
// needs a peer is a 503 problem, quickly (no peer means unavailable, not a hang).
func TestPeersDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String() // nothing listens there once closed
	ln.Close()
	env := map[string]string{}
	for _, c := range (bounded.Edge{}).Calls() {
		env[host.AddrEnv(c)] = dead
	}
	gateway := hosttest.Start(t, "edge", env)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503, "/v1/products": 503, "/v1/carts/u1": 503} {
		start := time.Now()
		res, err := http.Get(gateway.BaseURL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s = %d %s, want %d", path, res.StatusCode, body, want)
		}
		if want == 503 && !strings.Contains(string(body), "unavailable") {
			t.Errorf("GET %s: %s, want an unavailable problem", path, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("GET %s took %s", path, d)
		}
	}
}
