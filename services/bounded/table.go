package bounded

import (
	"slices"
	"sync"

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
			catalogServer(), port[catalog.Service]{
				trace:        (*traced.Tracing).Catalog,
				client:       func(cc grpc.ClientConnInterface) catalog.Service { return catalogrpc.NewClient(cc) },
				clientConfig: catalogrpc.ServiceConfig,
			}),
		define(Context{Name: "cart", Service: cartrpc.ServiceName, Port: 9102,
			Buckets: []string{cart.CartsBucket}, Weight: Weight{9, 1.5}},
			cartServer(), port[cart.Service]{
				trace:        (*traced.Tracing).Cart,
				client:       func(cc grpc.ClientConnInterface) cart.Service { return cartrpc.NewClient(cc) },
				clientConfig: cartrpc.ServiceConfig,
			}),
		define(Context{Name: "inventory", Service: inventoryrpc.ServiceName, Port: 9103,
			Buckets: []string{inventory.StockBucket, inventory.ReservationsBucket}, Weight: Weight{10, 1.5}},
			inventoryServer(), port[inventory.Service]{
				trace:        (*traced.Tracing).Inventory,
				client:       func(cc grpc.ClientConnInterface) inventory.Service { return inventoryrpc.NewClient(cc) },
				clientConfig: inventoryrpc.ServiceConfig,
			}),
		define(Context{Name: "payments", Service: paymentsrpc.ServiceName, Port: 9104,
			Buckets: []string{payments.ChargesBucket, payments.CardsBucket}, Weight: Weight{3, 1.5}},
			paymentsServer(), port[payments.Service]{
				trace:        (*traced.Tracing).Payments,
				client:       func(cc grpc.ClientConnInterface) payments.Service { return paymentsrpc.NewClient(cc) },
				clientConfig: paymentsrpc.ServiceConfig,
			}),
		define(Context{Name: "orders", Service: ordersrpc.ServiceName, Port: 9105,
			Buckets: []string{orders.OrdersBucket, orders.SagasBucket, orders.UserOrdersBucket},
			Calls:   []string{"catalog", "cart", "inventory", "payments"}, Weight: Weight{14, 1.5},
			Publishes: []string{events.OrderPaidSubject},
			Consumers: []Consumer{{Name: "orders", Subjects: []string{events.OrderShippedSubject}}},
			Secrets:   []string{RequestKeyEnv}},
			ordersServer(), port[orders.Service]{
				trace:        (*traced.Tracing).Orders,
				client:       func(cc grpc.ClientConnInterface) orders.Service { return ordersrpc.NewClient(cc) },
				clientConfig: ordersrpc.ServiceConfig,
			}),
		define(Context{Name: "shipping", Service: shippingrpc.ServiceName, Port: 9106,
			Buckets: []string{shipping.ShipmentsBucket}, Publishes: []string{events.OrderShippedSubject},
			Consumers: []Consumer{{Name: "shipping", Subjects: []string{events.OrderPaidSubject}}}, Weight: Weight{3, 1.5}},
			shippingServer(), port[shipping.Service]{
				trace:        (*traced.Tracing).Shipping,
				client:       func(cc grpc.ClientConnInterface) shipping.Service { return shippingrpc.NewClient(cc) },
				clientConfig: shippingrpc.ServiceConfig,
			}),
		define(Context{Name: "notify", Service: notifyrpc.ServiceName, Port: 9107,
			Buckets:   []string{notify.NotificationsBucket},
			Consumers: []Consumer{{Name: "notify", Subjects: []string{events.OrderPaidSubject, events.OrderShippedSubject}}},
			Weight:    Weight{3, 1.5}},
			notifyServer(), port[notify.Service]{
				trace:        (*traced.Tracing).Notify,
				client:       func(cc grpc.ClientConnInterface) notify.Service { return notifyrpc.NewClient(cc) },
				clientConfig: notifyrpc.ServiceConfig,
			}),
	}
}

// RequestKeyEnv is the secret that keys the hash orders keeps of each checkout request
// (orders.Deps.RequestKey): every process that runs orders needs the same one.
const RequestKeyEnv = "SHOP_REQUEST_KEY"

// AddrEnv is where an edge serves the HTTP API (default 127.0.0.1:8080 for the monolith,
// :8081 for a gateway; the topology sets it for every edge it runs).
const AddrEnv = "SHOP_ADDR"

// MetricsAddrEnv is where a host answers Prometheus's scrapes (services/host reads it, the
// topology sets it for every process it runs).
const MetricsAddrEnv = "SHOP_METRICS_ADDR"

// HealthAddrEnv is where a host answers an orchestrator's probes over plain HTTP (/healthz,
// /readyz), for probes that cannot present a client certificate to its gRPC port, as
// Kubernetes's cannot (services/host reads it, the Kubernetes manifests set it).
const HealthAddrEnv = "SHOP_HEALTH_ADDR"

// StaleAfterEnv sets how long a checkout may stay untouched before another process of orders
// takes it over (orders.Deps.StaleAfter; default a minute): how soon the checkouts a crashed
// replica left are finished or compensated by the others.
const StaleAfterEnv = "SHOP_ORDERS_STALE_AFTER"

// MaxInFlightEnv bounds the requests an edge works on at once (httpapi.Config.MaxInFlight).
const MaxInFlightEnv = "SHOP_MAX_IN_FLIGHT"
