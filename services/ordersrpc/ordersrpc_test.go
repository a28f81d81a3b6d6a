package ordersrpc_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/services/ordersrpc"
	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// TestConformance runs the orders suite with every context behind gRPC, as in the
// microservices: the suite calls an orders client -> TCP -> orders server -> the real orders
// on JetStream, whose saga calls catalog, cart, inventory and payments through their own
// clients and servers, each on its own socket and JetStream buckets. The suite observes the
// other contexts through gRPC clients too.
func TestConformance(t *testing.T) {
	srv := natsjstest.New(t)
	orderstest.Run(t, func(t *testing.T) orderstest.Env {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cat, err := catalog.New(ctx, srv.Bucket(t, "products"), nil)
		if err != nil {
			t.Fatalf("catalog.New: %v", err)
		}
		catalogClient := catalogrpc.NewClient(rpctest.Serve(t, catalogrpc.ServiceConfig,
			func(s grpc.ServiceRegistrar) { catalogrpc.Register(s, cat) }))
		cartClient := cartrpc.NewClient(rpctest.Serve(t, cartrpc.ServiceConfig,
			func(s grpc.ServiceRegistrar) { cartrpc.Register(s, cart.New(srv.Bucket(t, "carts"))) }))
		inv := inventory.New(srv.Bucket(t, "stock"), srv.Bucket(t, "reservations"), time.Now, 5*time.Minute)
		inventoryClient := inventoryrpc.NewClient(rpctest.Serve(t, inventoryrpc.ServiceConfig,
			func(s grpc.ServiceRegistrar) { inventoryrpc.Register(s, inv) }))
		paymentsClient := paymentsrpc.NewClient(rpctest.Serve(t, paymentsrpc.ServiceConfig,
			func(s grpc.ServiceRegistrar) {
				paymentsrpc.Register(s, payments.New(srv.Bucket(t, "charges"), time.Now))
			}))
		bus := srv.Bus(t)
		impl := orders.New(
			orders.Stores{Orders: srv.Bucket(t, "orders"), Sagas: srv.Bucket(t, "sagas"), UserOrders: srv.Bucket(t, "user_orders")},
			orders.Deps{
				Catalog: catalogClient, Carts: cartClient, Inventory: inventoryClient, Payments: paymentsClient,
				Events: bus, Now: time.Now, Logger: slog.New(slog.DiscardHandler), RequestKey: []byte("ordersrpc-test-request-key"),
			})
		ordersClient := ordersrpc.NewClient(rpctest.Serve(t, ordersrpc.ServiceConfig,
			func(s grpc.ServiceRegistrar) { ordersrpc.Register(s, impl) }))
		return orderstest.Env{
			Orders: ordersClient, Catalog: catalogClient, Carts: cartClient,
			Inventory: inventoryClient, Payments: paymentsClient, Events: bus,
		}
	})
}
