package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

const testToken = "test-admin-token"

// config is the API over the real contexts the edge calls, each on buckets from open,
// without event consumers: the handler's tests check the HTTP layer over real rules. The
// whole shop, consumers and all, is services/host's to wire (the behaviour suite runs there).
func config(tb testing.TB, open func(name string) kv.Bucket) httpapi.Config {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	logger := slog.New(slog.DiscardHandler)
	cat, err := catalog.New(ctx, open(catalog.ProductsBucket), logger)
	if err != nil {
		tb.Fatal(err)
	}
	carts := cart.New(open(cart.CartsBucket))
	inv := inventory.New(open(inventory.StockBucket), open(inventory.ReservationsBucket), time.Now, inventory.DefaultReservationTTL)
	ord := orders.New(orders.Stores{Orders: open(orders.OrdersBucket), Sagas: open(orders.SagasBucket), UserOrders: open(orders.UserOrdersBucket)},
		orders.Deps{Catalog: cat, Carts: carts, Inventory: inv, Payments: payments.New(open(payments.ChargesBucket), time.Now),
			Events: events.NewMemory(logger), Now: time.Now, Logger: logger, RequestKey: []byte("httpapi-test-request-key")})
	return httpapi.Config{Catalog: cat, Carts: carts, Inventory: inv, Orders: ord,
		Notifications: notify.New(open(notify.NotificationsBucket), time.Now), AdminToken: testToken}
}

// memoryConfig is config over memory buckets.
func memoryConfig(tb testing.TB) httpapi.Config {
	return config(tb, func(string) kv.Bucket { return kv.NewMemory() })
}

// jetStreamConfig is config over a real embedded JetStream.
func jetStreamConfig(tb testing.TB) httpapi.Config {
	srv := natsjstest.New(tb)
	return config(tb, func(name string) kv.Bucket { return srv.Bucket(tb, name) })
}

func newHandler(tb testing.TB) http.Handler {
	tb.Helper()
	return httpapi.New(memoryConfig(tb))
}
