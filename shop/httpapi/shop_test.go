package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
	"github.com/mitosis-dev/mitosis/shop/inprocess"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

const testToken = "test-admin-token"

// memoryShop returns every real context over memory buckets and the memory bus, with the
// event consumers running, stopped when tb ends.
func memoryShop(tb testing.TB) *inprocess.Shop {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	return startShop(tb, inprocess.Config{
		Open:   func(context.Context, string) (kv.Bucket, error) { return kv.NewMemory(), nil },
		Bus:    events.NewMemory(logger),
		Logger: logger,
	})
}

// jetStreamShop is memoryShop over a real embedded JetStream.
func jetStreamShop(tb testing.TB) *inprocess.Shop {
	tb.Helper()
	srv := natsjstest.New(tb)
	return startShop(tb, inprocess.Config{
		Open:   func(_ context.Context, name string) (kv.Bucket, error) { return srv.Bucket(tb, name), nil },
		Bus:    srv.Bus(tb),
		Logger: slog.New(slog.DiscardHandler),
	})
}

func startShop(tb testing.TB, cfg inprocess.Config) *inprocess.Shop {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	shop, err := inprocess.New(ctx, cfg)
	if err != nil {
		tb.Fatalf("build the shop: %v", err)
	}
	if err := shop.Start(ctx); err != nil {
		tb.Fatalf("start the shop: %v", err)
	}
	tb.Cleanup(shop.Stop)
	return shop
}

// config is the API's configuration over shop; edit the result for a test's needs.
func config(shop *inprocess.Shop) httpapi.Config {
	return httpapi.Config{
		Catalog:       shop.Catalog,
		Carts:         shop.Carts,
		Inventory:     shop.Inventory,
		Orders:        shop.Orders,
		Notifications: shop.Notify,
		AdminToken:    testToken,
	}
}

func newHandler(tb testing.TB) http.Handler {
	tb.Helper()
	return httpapi.New(config(memoryShop(tb)))
}
