package selfcheck_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/platform/selfcheck"
)

func TestLoopback(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:8080":   "127.0.0.1:8080",
		":9101":          "127.0.0.1:9101",
		"[::]:4222":      "127.0.0.1:4222",
		"127.0.0.1:8081": "127.0.0.1:8081",
	} {
		if got, err := selfcheck.Loopback(in); err != nil || got != want {
			t.Errorf("Loopback(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := selfcheck.Loopback("8080"); err == nil {
		t.Error("Loopback of a bare port: want an error")
	}
}

func TestRequested(t *testing.T) {
	if !selfcheck.Requested([]string{"monolith", "-healthcheck"}) || selfcheck.Requested([]string{"monolith"}) {
		t.Fatal("Requested misreads the arguments")
	}
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if err := selfcheck.HTTP(context.Background(), addr, "/healthz"); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	if err := selfcheck.HTTP(context.Background(), addr, "/readyz"); err == nil {
		t.Fatal("503: want an error")
	}
	srv.Close()
	if err := selfcheck.HTTP(context.Background(), addr, "/healthz"); err == nil {
		t.Fatal("nothing listening: want an error")
	}
}

func TestGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s, h)
	go s.Serve(ln)
	addr := ln.Addr().String()
	// Alive but not serving (a peer is down) is still alive.
	if err := selfcheck.GRPC(context.Background(), addr); err != nil {
		t.Fatalf("live server: %v", err)
	}
	s.Stop()
	if err := selfcheck.GRPC(context.Background(), addr); err == nil {
		t.Fatal("stopped server: want an error")
	}
}
