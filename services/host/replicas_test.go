package host_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/kv"
)

// countingCatalog is a real catalog that counts the calls it serves.
type countingCatalog struct {
	catalog.Service
	n atomic.Int64
}

func (c *countingCatalog) Get(ctx context.Context, id string) (catalog.Product, error) {
	c.n.Add(1)
	return c.Service.Get(ctx, id)
}

// replica is one catalog server on a real socket, stopped as a host stops its generation:
// health NOT_SERVING, then a graceful stop that lets the calls in flight finish.
type replica struct {
	addr   string
	calls  *countingCatalog
	srv    *grpc.Server
	health *grpchealth.Server
	done   chan struct{}
}

func startReplica(t *testing.T, addr string, impl catalog.Service) *replica {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	r := &replica{addr: ln.Addr().String(), calls: &countingCatalog{Service: impl}, srv: host.NewServer(slog.New(slog.DiscardHandler), hosttest.Security(t, "catalog")),
		health: grpchealth.NewServer(), done: make(chan struct{})}
	healthpb.RegisterHealthServer(r.srv, r.health)
	catalogrpc.Register(r.srv, r.calls)
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln) // returns once stopped
	}()
	t.Cleanup(r.kill)
	return r
}

func (r *replica) drain() {
	r.health.Shutdown()
	r.srv.GracefulStop()
	<-r.done
}

func (r *replica) kill() {
	r.srv.Stop()
	<-r.done
}

// TestDialBalancesOverReplicas: a peer given as a list of replicas (platform/topology's
// {{addr:...}} of a group with replicas) gets its calls spread over all of them; one that
// drains is left without a failed call, one that comes back at its address is called again
// (within bounded.RedialWithin), and one killed leaves the others answering.
func TestDialBalancesOverReplicas(t *testing.T) {
	impl, err := catalog.New(t.Context(), kv.NewMemory(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a, b := startReplica(t, "127.0.0.1:0", impl), startReplica(t, "127.0.0.1:0", impl)
	conn, err := host.Dial(a.addr+","+b.addr, catalogrpc.ServiceConfig, 5*time.Second, hosttest.Security(t, "orders").ClientCredentials("catalog"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := catalogrpc.NewClient(conn)
	get := func() error {
		_, err := client.Get(t.Context(), "sku-0001")
		return err
	}

	// Both serve: round robin over the two once both are connected.
	for i := 0; i < 400 && (a.calls.n.Load() < 10 || b.calls.n.Load() < 10); i++ {
		if err := get(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if a.calls.n.Load() < 10 || b.calls.n.Load() < 10 {
		t.Fatalf("calls served: %d and %d, want both replicas called", a.calls.n.Load(), b.calls.n.Load())
	}

	// Drain a while calls keep coming: none fails.
	var failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := get(); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	for i := 0; i < 1000 && b.calls.n.Load() < 200; i++ {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	a.drain()
	before := b.calls.n.Load()
	for i := 0; i < 1000 && b.calls.n.Load() < before+200; i++ {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d calls failed while a replica drained, want none: %v", n, firstErr.Load())
	}

	// Back at its address: called again, by the client's own redial.
	again := startReplica(t, a.addr, impl)
	deadline := time.Now().Add(bounded.RedialWithin() + 5*time.Second)
	for again.calls.n.Load() == 0 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica back at %s got no call within %s", a.addr, bounded.RedialWithin()+5*time.Second)
		}
		time.Sleep(10 * time.Millisecond) // a caller's pace; bounded by the deadline
	}

	// Killed without draining: the other answers every call after it.
	b.kill()
	for i := range 50 {
		if err := get(); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("call %d after one replica was killed: %v", i, err)
		}
	}
}
