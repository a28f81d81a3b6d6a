// Package inprocess assembles all seven contexts in one process: every context gets the real
// implementation of the others, and events travel on one bus. It is the monolith's wiring,
// and the tests' way of getting a whole shop; the microservices wire one context each instead.
//
// Every call from one context to another goes through the decorators of package traced, and
// every bucket too, so that the monolith's traces have the shape of the services' traces: an
// INTERNAL span named like the gRPC method where the services make a gRPC call.
package inprocess

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/traced"
)

// Broker carries events between the contexts.
type Broker interface {
	events.Publisher
	events.Subscriber
}

// Config says where the shop's state lives.
type Config struct {
	// Open opens (creating if needed) the named bucket.
	Open   func(ctx context.Context, name string) (kv.Bucket, error)
	Bus    Broker
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ReservationTTL is how long stock stays reserved for a checkout that never finishes;
	// 0 means 5 minutes.
	ReservationTTL time.Duration
	// TracerProvider and MeterProvider trace and measure the calls between contexts and the
	// store operations; nil means OpenTelemetry's global providers at New.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Shop is every context of the shop, wired in-process. The fields are the implementations
// themselves, for what a context does on its own (its event handlers, its background loops);
// Calls are the same contexts as another context or the HTTP edge calls them.
type Shop struct {
	Catalog   catalog.Service
	Carts     cart.Service
	Inventory inventory.Service
	Payments  payments.Service
	Orders    *orders.Orders
	Shipping  shipping.Service
	Notify    notify.Service

	// Calls wraps each context in an INTERNAL span per call, named like the gRPC method
	// that carries the call between services: what callers from outside a context use.
	Calls Calls

	bus    Broker
	logger *slog.Logger
	subs   []events.Subscription
	stop   context.CancelFunc // ends the background loops
	loops  sync.WaitGroup
}

// Calls are the contexts as seen from another context.
type Calls struct {
	Catalog   catalog.Service
	Carts     cart.Service
	Inventory inventory.Service
	Payments  payments.Service
	Orders    orders.Service
	Shipping  shipping.Service
	Notify    notify.Service
}

// New opens the buckets and builds the contexts. The catalog's view follows its bucket until
// ctx ends. Nothing consumes events until Start.
func New(ctx context.Context, cfg Config) (*Shop, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReservationTTL == 0 {
		cfg.ReservationTTL = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tr := traced.New(cfg.TracerProvider, cfg.MeterProvider)
	b := map[string]kv.Bucket{}
	for _, name := range []string{catalog.ProductsBucket, cart.CartsBucket, inventory.StockBucket, inventory.ReservationsBucket, payments.ChargesBucket,
		orders.OrdersBucket, orders.SagasBucket, orders.UserOrdersBucket, shipping.ShipmentsBucket, notify.NotificationsBucket} {
		bucket, err := cfg.Open(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", name, err)
		}
		b[name] = tr.Bucket(name, bucket)
	}
	cat, err := catalog.New(ctx, b[catalog.ProductsBucket], cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	s := &Shop{
		Catalog:   cat,
		Carts:     cart.New(b[cart.CartsBucket]),
		Inventory: inventory.New(b[inventory.StockBucket], b[inventory.ReservationsBucket], cfg.Now, cfg.ReservationTTL),
		Payments:  payments.New(b[payments.ChargesBucket], cfg.Now),
		Shipping:  shipping.New(b[shipping.ShipmentsBucket], cfg.Bus, cfg.Now),
		Notify:    notify.New(b[notify.NotificationsBucket], cfg.Now),
		bus:       cfg.Bus,
		logger:    cfg.Logger,
	}
	s.Calls = Calls{
		Catalog:   tr.Catalog(s.Catalog),
		Carts:     tr.Cart(s.Carts),
		Inventory: tr.Inventory(s.Inventory),
		Payments:  tr.Payments(s.Payments),
		Shipping:  tr.Shipping(s.Shipping),
		Notify:    tr.Notify(s.Notify),
	}
	s.Orders = orders.New(
		orders.Stores{Orders: b[orders.OrdersBucket], Sagas: b[orders.SagasBucket], UserOrders: b[orders.UserOrdersBucket]},
		orders.Deps{Catalog: s.Calls.Catalog, Carts: s.Calls.Carts, Inventory: s.Calls.Inventory, Payments: s.Calls.Payments,
			Events: cfg.Bus, Now: cfg.Now, Logger: cfg.Logger},
	)
	s.Calls.Orders = tr.Orders(s.Orders)
	return s, nil
}

// Start finishes or compensates the checkouts a previous run left unfinished (one process
// owns every saga, so none is live), subscribes the event consumers, and starts the
// background loops that release expired reservations and recover abandoned checkouts.
func (s *Shop) Start(ctx context.Context) error {
	if n, err := s.Orders.Recover(ctx, 0); err != nil {
		return fmt.Errorf("recover checkouts: %w", err)
	} else if n > 0 {
		s.logger.Info("recovered unfinished checkouts", "count", n)
	}
	consumers := []struct {
		name     string
		subjects []string
		h        events.Handler
	}{
		{"shipping", []string{events.OrderPaidSubject}, shipping.HandleOrderPaid(s.Shipping)},
		{"notify", []string{events.OrderPaidSubject, events.OrderShippedSubject}, notify.Handler(s.Notify)},
		{"orders", []string{events.OrderShippedSubject}, orders.HandleOrderShipped(s.Orders)},
	}
	for _, c := range consumers {
		sub, err := s.bus.Subscribe(ctx, c.name, c.subjects, c.h)
		if err != nil {
			s.Stop()
			return fmt.Errorf("subscribe %s: %w", c.name, err)
		}
		s.subs = append(s.subs, sub)
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	s.loops.Go(func() { inventory.RunSweeper(loopCtx, s.Inventory, sweepEvery, s.logger) })
	// A checkout whose own compensation failed (its store was down, say) is retried here; a
	// minute is far beyond any live checkout's deadline.
	s.loops.Go(func() { s.Orders.RunRecovery(loopCtx, sweepEvery, staleSaga) })
	return nil
}

// sweepEvery is how often expired reservations and abandoned checkouts are looked for.
const sweepEvery = 5 * time.Second

// staleSaga is the age after which an unfinished checkout is taken to be abandoned.
const staleSaga = time.Minute

// Stop stops the consumers, letting the messages in flight finish, and the background loops.
func (s *Shop) Stop() {
	for _, sub := range s.subs {
		sub.Stop()
	}
	s.subs = nil
	if s.stop != nil {
		s.stop()
		s.loops.Wait()
		s.stop = nil
	}
}
