// Command orders serves the orders context (shop/orders) over gRPC: the checkout saga, with
// catalog, cart, inventory and payments reached through their gRPC clients, its records on
// JetStream; it publishes order-paid and consumes order-shipped (durable consumer "orders",
// shared by its replicas). It is one of the microservices; the monolith runs the very same
// saga code in process.
//
// Recovery. A checkout interrupted by a crash is finished or compensated by Recover from its
// saga record. Every replica runs Recover every 5 seconds for checkouts untouched for a
// minute, far beyond any live checkout, so replicas never compensate each other's live
// checkouts; that also runs once at start. A replica started with SHOP_ORDERS_SOLE_REPLICA=true
// (the process runtime, the tests) also takes over at once every checkout last touched before
// it started, which is safe only when no other replica is live: each of those belonged to a
// process that is gone. With several replicas, leave it unset and a restarted replica's
// interrupted checkouts are recovered within a minute (their reservations expire in
// SHOP_RESERVATION_TTL of the inventory anyway).
//
// Configuration, all from the environment:
//
//	SHOP_NATS_URL            NATS server holding the state and the events (required)
//	SHOP_GRPC_ADDR           listen address (default 127.0.0.1:9105)
//	SHOP_CATALOG_ADDR        catalog service (default 127.0.0.1:9101)
//	SHOP_CART_ADDR           cart service (default 127.0.0.1:9102)
//	SHOP_INVENTORY_ADDR      inventory service (default 127.0.0.1:9103)
//	SHOP_PAYMENTS_ADDR       payments service (default 127.0.0.1:9104)
//	SHOP_ORDERS_SOLE_REPLICA true when this is the only orders process (see above)
//	SHOP_RPC_TIMEOUT         deadline of a call to a peer made without one (default 10s)
//	SHOP_LOG_LEVEL           debug, info (default), warn or error
//	OTEL_*                   OpenTelemetry (see platform/telemetry)
package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/services/ordersrpc"
	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

func main() {
	servicehost.Main("orders", []string{"catalog", "cart", "inventory", "payments"}, wire)
}

// Recovery timing (see the package comment).
const (
	recoverEvery = 5 * time.Second
	staleSaga    = time.Minute
)

func wire(ctx context.Context, p *servicehost.Process) ([]string, error) {
	started := time.Now()
	soleReplica := os.Getenv("SHOP_ORDERS_SOLE_REPLICA") == "true"
	var stores orders.Stores
	var err error
	if stores.Orders, err = p.Bucket(ctx, orders.OrdersBucket); err != nil {
		return nil, err
	}
	if stores.Sagas, err = p.Bucket(ctx, orders.SagasBucket); err != nil {
		return nil, err
	}
	if stores.UserOrders, err = p.Bucket(ctx, orders.UserOrdersBucket); err != nil {
		return nil, err
	}
	bus, err := p.Bus(ctx)
	if err != nil {
		return nil, err
	}
	catalogConn, err := p.Peer("catalog", catalogrpc.ServiceName, catalogrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	cartConn, err := p.Peer("cart", cartrpc.ServiceName, cartrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	inventoryConn, err := p.Peer("inventory", inventoryrpc.ServiceName, inventoryrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	paymentsConn, err := p.Peer("payments", paymentsrpc.ServiceName, paymentsrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	svc := orders.New(stores, orders.Deps{
		Catalog:   catalogrpc.NewClient(catalogConn),
		Carts:     cartrpc.NewClient(cartConn),
		Inventory: inventoryrpc.NewClient(inventoryConn),
		Payments:  paymentsrpc.NewClient(paymentsConn),
		Events:    bus,
		Logger:    p.Logger(),
	})
	if err := p.Subscribe(ctx, "orders", []string{events.OrderShippedSubject}, orders.HandleOrderShipped(svc)); err != nil {
		return nil, err
	}

	// Recovery at start runs in the background: its peers may not answer yet, and serving
	// meanwhile is safe (see the package comment).
	p.Go(func(ctx context.Context) {
		for {
			olderThan := staleSaga
			if soleReplica {
				olderThan = time.Since(started)
			}
			n, err := svc.Recover(ctx, olderThan)
			if n > 0 {
				p.Logger().Info("recovered interrupted checkouts", "count", n)
			}
			if err == nil || errors.Is(err, context.Canceled) {
				return
			}
			p.Logger().Warn("recover checkouts at start; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	})
	p.Go(func(ctx context.Context) { svc.RunRecovery(ctx, recoverEvery, staleSaga) })
	ordersrpc.Register(p.GRPC(), svc)
	return []string{ordersrpc.ServiceName}, nil
}
