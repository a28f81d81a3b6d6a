package splittax

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/services/notifyrpc"
	"github.com/mitosis-dev/mitosis/services/ordersrpc"
	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
	"github.com/mitosis-dev/mitosis/shop/inprocess"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// The split tax, in one run:
//
//	go test -run '^$' -bench . -benchtime 2000x ./services/splittax/
//
// Each benchmark reports cpu-µs/op (the process's user+system CPU per request: handler,
// servers, clients and the embedded NATS alike) and p50-µs (the median latency of requests
// sent one at a time, i.e. unloaded). Event consumers do not run on either side: their work
// happens after the response in both architectures.

const token = "bench-token"

// monolith returns the API over the contexts in process, as the monolith wires them.
func monolith(b *testing.B) http.Handler {
	srv := natsjstest.New(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	shop, err := inprocess.New(ctx, inprocess.Config{
		Open: func(_ context.Context, name string) (kv.Bucket, error) { return srv.Bucket(b, name), nil },
		Bus:  srv.Bus(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	return httpapi.New(httpapi.Config{Catalog: shop.Catalog, Carts: shop.Carts, Inventory: shop.Inventory,
		Orders: shop.Orders, Notifications: shop.Notify, AdminToken: token})
}

// microservices returns the API over gRPC clients, every context behind its own server on
// its own loopback socket, orders calling its peers through their clients: the gateway's
// and the services' wiring, in one process.
func microservices(b *testing.B) http.Handler {
	srv := natsjstest.New(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	shop, err := inprocess.New(ctx, inprocess.Config{
		Open: func(_ context.Context, name string) (kv.Bucket, error) { return srv.Bucket(b, name), nil },
		Bus:  srv.Bus(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	serve := func(cfg string, register func(s grpc.ServiceRegistrar)) *grpc.ClientConn {
		return rpctest.Serve(b, cfg, register)
	}
	cat := catalogrpc.NewClient(serve(catalogrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { catalogrpc.Register(s, shop.Catalog) }))
	carts := cartrpc.NewClient(serve(cartrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { cartrpc.Register(s, shop.Carts) }))
	inv := inventoryrpc.NewClient(serve(inventoryrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { inventoryrpc.Register(s, shop.Inventory) }))
	pay := paymentsrpc.NewClient(serve(paymentsrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { paymentsrpc.Register(s, shop.Payments) }))
	notes := notifyrpc.NewClient(serve(notifyrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { notifyrpc.Register(s, shop.Notify) }))
	// The orders service's own orders, whose saga calls the others over gRPC; the stores
	// are fresh buckets of the same server, as a separate process's would be.
	ord := orders.New(
		orders.Stores{Orders: srv.Bucket(b, "orders"), Sagas: srv.Bucket(b, "sagas"), UserOrders: srv.Bucket(b, "user_orders")},
		orders.Deps{Catalog: cat, Carts: carts, Inventory: inv, Payments: pay, Events: srv.Bus(b), Logger: slog.New(slog.DiscardHandler)})
	ordClient := ordersrpc.NewClient(serve(ordersrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { ordersrpc.Register(s, ord) }))
	return httpapi.New(httpapi.Config{Catalog: cat, Carts: carts, Inventory: inv,
		Orders: ordClient, Notifications: notes, AdminToken: token})
}

func architectures() []struct {
	name string
	new  func(b *testing.B) http.Handler
} {
	return []struct {
		name string
		new  func(b *testing.B) http.Handler
	}{{"monolith", monolith}, {"microservices", microservices}}
}

// call serves one request and fails b unless it answered want.
func call(b *testing.B, h http.Handler, method, path string, header http.Header, body string, want int) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("%s %s: %d %s, want %d", method, path, rec.Code, rec.Body, want)
	}
}

// measure runs request b.N times, one at a time, and reports CPU per request and the
// median latency.
func measure(b *testing.B, request func(i int)) {
	b.ReportAllocs()
	lat := make([]time.Duration, b.N)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		request(i)
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
}

// cpuTime is the process's user and system CPU so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProductList is the shop's hottest read: the first page of the catalog.
func BenchmarkProductList(b *testing.B) {
	for _, arch := range architectures() {
		b.Run(arch.name, func(b *testing.B) {
			h := arch.new(b)
			for range 50 { // warm up: connections made, views loaded
				call(b, h, "GET", "/v1/products?page_size=20", nil, "", http.StatusOK)
			}
			measure(b, func(int) { call(b, h, "GET", "/v1/products?page_size=20", nil, "", http.StatusOK) })
		})
	}
}

// BenchmarkCheckout is a whole checkout of a two-line cart: price, reserve, charge, record,
// clear the cart, publish. The carts are filled before the clock starts.
func BenchmarkCheckout(b *testing.B) {
	for _, arch := range architectures() {
		b.Run(arch.name, func(b *testing.B) {
			h := arch.new(b)
			admin := http.Header{"Authorization": {"Bearer " + token}}
			for _, sku := range []string{"sku-0001", "sku-0002"} {
				call(b, h, "POST", "/v1/admin/inventory/"+sku, admin, `{"add": 1000000}`, http.StatusOK)
			}
			fill := func(user string) {
				call(b, h, "POST", "/v1/carts/"+user+"/items", nil, `{"product_id": "sku-0001", "quantity": 1}`, http.StatusOK)
				call(b, h, "POST", "/v1/carts/"+user+"/items", nil, `{"product_id": "sku-0002", "quantity": 2}`, http.StatusOK)
			}
			checkout := func(user string) {
				body := fmt.Sprintf(`{"user_id": %q, "email": "b@example.com",
					"address": {"street": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
					"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099, "cvv": "123"}}`, user)
				call(b, h, "POST", "/v1/checkout", http.Header{"Idempotency-Key": {"key-" + user}}, body, http.StatusCreated)
			}
			for i := range 20 { // warm up
				user := fmt.Sprintf("warm-%d", i)
				fill(user)
				checkout(user)
			}
			run := time.Now().UnixNano() // b.N grows between runs: users must be new each run
			for i := range b.N {
				fill(fmt.Sprintf("u%d-%d", run, i))
			}
			measure(b, func(i int) { checkout(fmt.Sprintf("u%d-%d", run, i)) })
		})
	}
}
