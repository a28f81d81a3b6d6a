package inprocess_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inprocess"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// outage is how long the store or NATS is away: issue 13's figure.
const outage = 90 * time.Second

// TestOutageLosesNoEvent runs the whole shop in this process on real NATS servers, makes
// checkouts whose events are not handled yet, takes NATS or the store away for 90 s while
// those events wait, brings it back, and then finds every paid order shipped, exactly one
// order-paid and one order-shipped notification for each, and no dead letter. It runs the
// real retry policy (events.MaxDeliveries, events.RetryDelay), not a test's.
//
// Two outages, side by side: a long test, about 2 minutes in all, most of it the outages
// (112 s with go test -race -run TestOutage ./shop/inprocess on 2 cores). -short skips it.
//
//   - nats: the one NATS server of store and events stops (its process gone, clients
//     reconnecting) and starts again on the same port and store directory.
//   - store: the store lives on its own NATS server, whose JetStream shuts down (as the
//     server does on a storage fault) and which is restarted 90 s later; meanwhile NATS
//     keeps answering, so every store call fails at once ("no responders") while the
//     events keep being delivered: the outage that burns a handler's deliveries fastest.
//     With 20 deliveries at most 5 s apart, the policy before dead letters, it gave
//     events up after 76 s.
//
// The consumers are paused (a JetStream admin action) while the checkouts are made, so that
// their events wait for sure when the outage starts; in the store outage they are resumed
// as it starts, in the NATS one once NATS is back.
func TestOutageLosesNoEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("a 90 s outage of NATS and of the store; -short skips it")
	}
	t.Run("nats", func(t *testing.T) {
		t.Parallel()
		srv := startNATS(t)
		nc := connect(t, srv)
		s := newShop(t, nc, nc)
		checkouts := checkoutWithConsumersPaused(t, s, nc)

		srv.stop()
		time.Sleep(outage) // the outage itself, not a wait for something
		srv.start()
		resumeConsumers(t, nc)
		expectEveryOrderShippedOnce(t, s, nc, checkouts)
	})
	t.Run("store", func(t *testing.T) {
		t.Parallel()
		bus, store := startNATS(t), startNATS(t)
		busConn, storeConn := connect(t, bus), connect(t, store)
		s := newShop(t, busConn, storeConn)
		checkouts := checkoutWithConsumersPaused(t, s, busConn)

		store.stopJetStream()
		resumeConsumers(t, busConn)
		time.Sleep(outage) // the outage itself, not a wait for something
		// The consumers have been failing all along; none gave an event up.
		js := jetStream(t, busConn)
		if c, err := natsjs.CountDeadLetters(t.Context(), js); err != nil || c.Total != 0 {
			t.Fatalf("dead letters at the end of the outage: %+v (%v)", c, err)
		}
		redelivered := 0
		for _, name := range consumerNames(t, js) {
			c, err := js.Consumer(t.Context(), natsjs.StreamName, name)
			if err != nil {
				t.Fatal(err)
			}
			redelivered += c.CachedInfo().NumRedelivered
		}
		if redelivered == 0 {
			t.Fatal("no event was redelivered during the store outage: the consumers did not feel it")
		}
		// Back as an operator brings it back: a restart. (Server.EnableJetStream would do
		// without one, but races with the requests arriving meanwhile.)
		store.stop()
		store.start()
		expectEveryOrderShippedOnce(t, s, busConn, checkouts)
	})
}

// natsServer is a nats-server with JetStream that a test stops and starts again as the same
// server: same port, same store directory.
type natsServer struct {
	t    *testing.T
	opts server.Options
	mu   sync.Mutex
	ns   *server.Server
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	s := &natsServer{t: t, opts: server.Options{
		ServerName: "outage-test",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		NoLog:      true,
	}}
	s.start()
	// From now on the same port: clients reconnect to it after a restart.
	_, port, err := net.SplitHostPort(s.ns.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.Port, err = strconv.Atoi(port); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

func (s *natsServer) url() string {
	return fmt.Sprintf("nats://%s", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)))
}

func (s *natsServer) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	opts := s.opts
	ns, err := server.NewServer(&opts)
	if err != nil {
		s.t.Fatalf("nats server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		s.t.Fatalf("nats server on port %d not ready after 30s", s.opts.Port)
	}
	s.ns = ns
}

// stop shuts the server down and waits until it has closed its files.
func (s *natsServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
}

// stopJetStream shuts JetStream down, keeping its files and the server answering.
func (s *natsServer) stopJetStream() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ns.ShutdownJetStream(); err != nil {
		s.t.Fatalf("shut JetStream down: %v", err)
	}
}

// connect connects as the shop's processes do: reconnecting for as long as it takes.
func connect(t *testing.T, s *natsServer) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.url(), nats.Name(t.Name()), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// The watches of the buckets notice the restart; the shop recovers from it.
			t.Logf("nats client: %v", err)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func jetStream(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// newShop wires and starts every context as the monolith does: events on busConn, buckets
// on storeConn.
func newShop(t *testing.T, busConn, storeConn *nats.Conn) *inprocess.Shop {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	bus, err := natsjs.OpenBus(t.Context(), jetStream(t, busConn), logger)
	if err != nil {
		t.Fatal(err)
	}
	store := jetStream(t, storeConn)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := inprocess.New(ctx, inprocess.Config{
		Open: func(ctx context.Context, name string) (kv.Bucket, error) {
			return natsjs.OpenBucket(ctx, store, name)
		},
		Bus:    bus,
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// testLog sends the shop's errors to the test's log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// checkoutsPerTest is how many orders are paid before the outage, one per user.
const checkoutsPerTest = 8

// checkoutWithConsumersPaused pauses every consumer of the event stream and makes
// checkoutsPerTest paid checkouts, whose events wait. It returns the orders by user.
func checkoutWithConsumersPaused(t *testing.T, s *inprocess.Shop, busConn *nats.Conn) map[string]orders.Order {
	t.Helper()
	ctx := t.Context()
	js := jetStream(t, busConn)
	names := consumerNames(t, js)
	if len(names) == 0 {
		t.Fatal("the shop started no consumer")
	}
	for _, name := range names {
		if _, err := js.PauseConsumer(ctx, natsjs.StreamName, name, time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("pause %s: %v", name, err)
		}
	}
	p, err := s.Calls.Catalog.Upsert(ctx, catalog.Product{ID: "sku-outage", Name: "Storm lamp", Description: "for outages",
		Price: money.Cents(2500), WeightGrams: 500})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Calls.Inventory.Add(ctx, p.ID, checkoutsPerTest); err != nil {
		t.Fatal(err)
	}
	paid := map[string]orders.Order{}
	for i := range checkoutsPerTest {
		user := fmt.Sprintf("outage-user-%d", i)
		if _, err := s.Calls.Carts.Add(ctx, user, cart.Item{ProductID: p.ID, Quantity: 1}); err != nil {
			t.Fatal(err)
		}
		o, err := s.Calls.Orders.Checkout(ctx, "outage-"+user, orders.CheckoutRequest{
			UserID: user, Email: user + "@example.com",
			Address: orders.Address{Street: "1 Loop Rd", City: "Springfield", PostalCode: "12345", Country: "US"},
			Card:    payments.Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2030, CVV: "123"},
		})
		if err != nil || o.Status != orders.StatusPaid {
			t.Fatalf("checkout of %s: %+v, %v", user, o, err)
		}
		paid[user] = o
	}
	// Their events wait: nothing is shipped or notified yet.
	for user, o := range paid {
		if got, err := s.Calls.Orders.Get(ctx, o.ID); err != nil || got.Status != orders.StatusPaid {
			t.Fatalf("order %s before the outage: %+v, %v; want paid, not shipped", o.ID, got, err)
		}
		if n, err := s.Calls.Notify.List(ctx, user); err != nil || len(n) != 0 {
			t.Fatalf("notifications of %s before the outage: %+v, %v; want none", user, n, err)
		}
	}
	return paid
}

func consumerNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	stream, err := js.Stream(t.Context(), natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	lister := stream.ConsumerNames(t.Context())
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// resumeConsumers resumes every consumer of the event stream, once it answers.
func resumeConsumers(t *testing.T, busConn *nats.Conn) {
	t.Helper()
	js := jetStream(t, busConn)
	var names []string
	waitFor(t, time.Minute, "the event stream answers", func() (bool, string) {
		stream, err := js.Stream(t.Context(), natsjs.StreamName)
		if err != nil {
			return false, err.Error()
		}
		names = names[:0]
		lister := stream.ConsumerNames(t.Context())
		for name := range lister.Name() {
			names = append(names, name)
		}
		if err := lister.Err(); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	// A pause that ends a moment later, not a resume: nats-server 2.15.2 wakes a consumer
	// when its pause runs out, but not when a resume clears it, and then delivers only on
	// the next pull request, up to 30 s later.
	for _, name := range names {
		if _, err := js.PauseConsumer(t.Context(), natsjs.StreamName, name, time.Now().Add(100*time.Millisecond)); err != nil {
			t.Fatalf("resume %s: %v", name, err)
		}
	}
}

// expectEveryOrderShippedOnce waits until every order is shipped and notified, then checks
// that each has exactly one notification of each kind, that no consumer has anything left
// to do, and that nothing was dead-lettered.
func expectEveryOrderShippedOnce(t *testing.T, s *inprocess.Shop, busConn *nats.Conn, paid map[string]orders.Order) {
	t.Helper()
	ctx := t.Context()
	// Every message is tried again within events.MaxRetryDelay of the restore; a minute
	// more covers the chain order-paid -> shipping -> order-shipped -> orders and notify.
	waitFor(t, events.MaxRetryDelay+time.Minute, "every order shipped and notified", func() (bool, string) {
		for user, o := range paid {
			got, err := s.Calls.Orders.Get(ctx, o.ID)
			if err != nil {
				return false, err.Error()
			}
			if got.Status != orders.StatusShipped || got.TrackingID == "" {
				return false, fmt.Sprintf("order %s: %s", o.ID, got.Status)
			}
			n, err := s.Calls.Notify.List(ctx, user)
			if err != nil {
				return false, err.Error()
			}
			if len(n) < 2 {
				return false, fmt.Sprintf("%s: %d notifications", user, len(n))
			}
		}
		return true, ""
	})
	js := jetStream(t, busConn)
	names := consumerNames(t, js)
	waitFor(t, time.Minute, "every consumer done", func() (bool, string) {
		for _, name := range names {
			c, err := js.Consumer(ctx, natsjs.StreamName, name)
			if err != nil {
				return false, err.Error()
			}
			info := c.CachedInfo()
			if info.NumPending != 0 || info.NumAckPending != 0 {
				return false, fmt.Sprintf("%s: %d pending, %d unacknowledged", name, info.NumPending, info.NumAckPending)
			}
		}
		return true, ""
	})
	for user, o := range paid {
		n, err := s.Calls.Notify.List(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, x := range n {
			if x.OrderID == o.ID {
				kinds[x.Kind]++
			}
		}
		if len(n) != 2 || kinds[notify.KindOrderPaid] != 1 || kinds[notify.KindOrderShipped] != 1 {
			t.Errorf("notifications of %s = %+v, want one order-paid and one order-shipped for %s", user, n, o.ID)
		}
	}
	if c, err := natsjs.CountDeadLetters(ctx, js); err != nil || c.Total != 0 {
		t.Errorf("dead letters after the outage: %+v (%v), want none", c, err)
	}
}

// waitFor polls cond every 100 ms until it holds, failing the test after limit with what it
// last said.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last %s", what, limit, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
