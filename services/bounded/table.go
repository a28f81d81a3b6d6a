package bounded

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/services/notifyrpc"
	"github.com/mitosis-dev/mitosis/services/ordersrpc"
	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/services/shippingrpc"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/traced"
)

// Table is the shop's contexts, in the order of their ports.
func Table() []Context { return slices.Clone(table()) }

// table is built once: the rows never change, and hosts, topologies and their tests read
// them often.
var table = sync.OnceValue(rows)

// rows are the table's rows.
//
// Weights follow where each process spent its CPU under the load test's mix (loadtest,
// process runtime, 200 and 400 req/s): of the microservices the gateway about 30%, catalog
// and orders 17-18% each, inventory 12-16%, cart 11%, and notify, payments and shipping 3-4%
// each, given a little more here to absorb bursts. Memory gives every Go process enough to
// keep its heap well under GOMEMLIMIT.
func rows() []Context {
	return []Context{
		define(Context{Name: "catalog", Service: catalogrpc.ServiceName, Port: 9101,
			Buckets: []string{catalog.ProductsBucket}, Weight: Weight{14, 1.5}},
			port[catalog.Service]{
				// The catalog's view follows its bucket for as long as ctx lives: the host
				// passes a context that lives as long as the process.
				build: func(ctx context.Context, d Deps) (catalog.Service, error) {
					return catalog.New(ctx, d.Buckets[catalog.ProductsBucket], d.Logger)
				},
				trace:        (*traced.Tracing).Catalog,
				register:     catalogrpc.Register,
				client:       func(cc grpc.ClientConnInterface) catalog.Service { return catalogrpc.NewClient(cc) },
				clientConfig: catalogrpc.ServiceConfig,
			}),
		define(Context{Name: "cart", Service: cartrpc.ServiceName, Port: 9102,
			Buckets: []string{cart.CartsBucket}, Weight: Weight{9, 1.5}},
			port[cart.Service]{
				build: func(_ context.Context, d Deps) (cart.Service, error) {
					return cart.New(d.Buckets[cart.CartsBucket]), nil
				},
				trace:        (*traced.Tracing).Cart,
				register:     cartrpc.Register,
				client:       func(cc grpc.ClientConnInterface) cart.Service { return cartrpc.NewClient(cc) },
				clientConfig: cartrpc.ServiceConfig,
			}),
		define(Context{Name: "inventory", Service: inventoryrpc.ServiceName, Port: 9103,
			Buckets: []string{inventory.StockBucket, inventory.ReservationsBucket}, Weight: Weight{10, 1.5}},
			port[inventory.Service]{
				build: func(_ context.Context, d Deps) (inventory.Service, error) {
					ttl, err := duration(d.Getenv, "SHOP_RESERVATION_TTL", inventory.DefaultReservationTTL)
					if err != nil {
						return nil, err
					}
					return inventory.New(d.Buckets[inventory.StockBucket], d.Buckets[inventory.ReservationsBucket], d.Now, ttl), nil
				},
				trace:        (*traced.Tracing).Inventory,
				register:     inventoryrpc.Register,
				client:       func(cc grpc.ClientConnInterface) inventory.Service { return inventoryrpc.NewClient(cc) },
				clientConfig: inventoryrpc.ServiceConfig,
				loops: []loop[inventory.Service]{{"sweep expired reservations", func(ctx context.Context, s inventory.Service, d Deps) {
					inventory.RunSweeper(ctx, s, inventory.SweepEvery, d.Logger)
				}}},
			}),
		define(Context{Name: "payments", Service: paymentsrpc.ServiceName, Port: 9104,
			Buckets: []string{payments.ChargesBucket}, Weight: Weight{3, 1.5}},
			port[payments.Service]{
				build: func(_ context.Context, d Deps) (payments.Service, error) {
					return payments.New(d.Buckets[payments.ChargesBucket], d.Now), nil
				},
				trace:        (*traced.Tracing).Payments,
				register:     paymentsrpc.Register,
				client:       func(cc grpc.ClientConnInterface) payments.Service { return paymentsrpc.NewClient(cc) },
				clientConfig: paymentsrpc.ServiceConfig,
			}),
		define(Context{Name: "orders", Service: ordersrpc.ServiceName, Port: 9105,
			Buckets: []string{orders.OrdersBucket, orders.SagasBucket, orders.UserOrdersBucket},
			Calls:   []string{"catalog", "cart", "inventory", "payments"}, Weight: Weight{14, 1.5},
			Secrets: []string{RequestKeyEnv}},
			port[orders.Service]{
				build:        buildOrders,
				trace:        (*traced.Tracing).Orders,
				register:     ordersrpc.Register,
				client:       func(cc grpc.ClientConnInterface) orders.Service { return ordersrpc.NewClient(cc) },
				clientConfig: ordersrpc.ServiceConfig,
				consumers:    []consumer[orders.Service]{{"orders", []string{events.OrderShippedSubject}, orders.HandleOrderShipped}},
				loops: []loop[orders.Service]{
					{"recover interrupted checkouts at start", recoverAtStart},
					{"recover abandoned checkouts", func(ctx context.Context, o orders.Service, _ Deps) {
						o.(*orders.Orders).RunRecovery(ctx, orders.RecoverEvery, orders.StaleSaga)
					}},
				},
			}),
		define(Context{Name: "shipping", Service: shippingrpc.ServiceName, Port: 9106,
			Buckets: []string{shipping.ShipmentsBucket}, Weight: Weight{3, 1.5}},
			port[shipping.Service]{
				build: func(_ context.Context, d Deps) (shipping.Service, error) {
					return shipping.New(d.Buckets[shipping.ShipmentsBucket], d.Bus, d.Now), nil
				},
				trace:        (*traced.Tracing).Shipping,
				register:     shippingrpc.Register,
				client:       func(cc grpc.ClientConnInterface) shipping.Service { return shippingrpc.NewClient(cc) },
				clientConfig: shippingrpc.ServiceConfig,
				consumers:    []consumer[shipping.Service]{{"shipping", []string{events.OrderPaidSubject}, shipping.HandleOrderPaid}},
			}),
		define(Context{Name: "notify", Service: notifyrpc.ServiceName, Port: 9107,
			Buckets: []string{notify.NotificationsBucket}, Weight: Weight{3, 1.5}},
			port[notify.Service]{
				build: func(_ context.Context, d Deps) (notify.Service, error) {
					return notify.New(d.Buckets[notify.NotificationsBucket], d.Now), nil
				},
				trace:        (*traced.Tracing).Notify,
				register:     notifyrpc.Register,
				client:       func(cc grpc.ClientConnInterface) notify.Service { return notifyrpc.NewClient(cc) },
				clientConfig: notifyrpc.ServiceConfig,
				consumers:    []consumer[notify.Service]{{"notify", []string{events.OrderPaidSubject, events.OrderShippedSubject}, notify.Handler}},
			}),
	}
}

// duration reads a positive duration setting, def when unset.
func duration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 5m", name, v)
	}
	return d, nil
}

// RequestKeyEnv is the secret that keys the hash orders keeps of each checkout request
// (orders.Deps.RequestKey): every process that runs orders needs the same one.
const RequestKeyEnv = "SHOP_REQUEST_KEY"

func buildOrders(_ context.Context, d Deps) (orders.Service, error) {
	key := d.Getenv(RequestKeyEnv)
	if key == "" {
		return nil, fmt.Errorf("%s is required: the secret that keys the hash of checkout requests", RequestKeyEnv)
	}
	deps := orders.Deps{Events: d.Bus, Now: d.Now, Logger: d.Logger, RequestKey: []byte(key)}
	var err error
	if deps.Catalog, err = Call[catalog.Service](d, "catalog"); err != nil {
		return nil, err
	}
	if deps.Carts, err = Call[cart.Service](d, "cart"); err != nil {
		return nil, err
	}
	if deps.Inventory, err = Call[inventory.Service](d, "inventory"); err != nil {
		return nil, err
	}
	if deps.Payments, err = Call[payments.Service](d, "payments"); err != nil {
		return nil, err
	}
	stores := orders.Stores{Orders: d.Buckets[orders.OrdersBucket], Sagas: d.Buckets[orders.SagasBucket], UserOrders: d.Buckets[orders.UserOrdersBucket]}
	return orders.New(stores, deps), nil
}

// recoverAtStart finishes or compensates the checkouts a previous process left unfinished.
// Its peers may not answer yet, so it retries, in the background: serving meanwhile is safe.
// The sole replica of orders takes over at once every checkout last touched before it
// started, each of which belonged to a process that is gone; replicas leave that to the
// periodic recovery, a minute later (orders.StaleSaga), so as not to compensate each other's
// live checkouts.
func recoverAtStart(ctx context.Context, o orders.Service, d Deps) {
	for {
		olderThan := orders.StaleSaga
		if d.SoleReplica {
			olderThan = time.Since(d.Started)
		}
		n, err := o.(*orders.Orders).Recover(ctx, olderThan)
		if n > 0 {
			d.Logger.Info("recovered interrupted checkouts", "count", n)
		}
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		d.Logger.Warn("recover checkouts at start; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
