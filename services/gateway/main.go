// Command gateway serves the shop's public HTTP API for the microservices: the very same
// shop/httpapi handler as the monolith, given gRPC clients of the catalog, cart, inventory,
// orders and notify services where the monolith gives in-process implementations. It holds
// no state and needs no NATS; /readyz answers 200 only while every peer's health is SERVING.
//
// Configuration, all from the environment:
//
//	SHOP_ADDR            listen address (default 127.0.0.1:8081)
//	SHOP_ADMIN_TOKEN     bearer token of the admin routes (unset: admin routes answer 401)
//	SHOP_CATALOG_ADDR    catalog service (default 127.0.0.1:9101)
//	SHOP_CART_ADDR       cart service (default 127.0.0.1:9102)
//	SHOP_INVENTORY_ADDR  inventory service (default 127.0.0.1:9103)
//	SHOP_ORDERS_ADDR     orders service (default 127.0.0.1:9105)
//	SHOP_NOTIFY_ADDR     notify service (default 127.0.0.1:9107)
//	SHOP_RPC_TIMEOUT     deadline of a call made without one (default 10s; requests have their own)
//	SHOP_LOG_LEVEL       debug, info (default), warn or error
//	OTEL_*               OpenTelemetry (see platform/telemetry)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/platform/selfcheck"
	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/services/notifyrpc"
	"github.com/mitosis-dev/mitosis/services/ordersrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

func main() {
	cfg, cfgErr := configFrom(os.Getenv)
	if selfcheck.Requested(os.Args) { // a container health check: is the serving copy alive?
		selfcheck.Exit(func(ctx context.Context) error { return selfcheck.HTTP(ctx, cfg.Addr, "/healthz") })
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	flush, logger, err := servicehost.SetupTelemetry(ctx, "gateway", cfg.LogLevel)
	if err != nil {
		servicehost.NewLogger(os.Stdout, cfg.LogLevel, "gateway").Error("bad telemetry configuration", "err", err)
		os.Exit(2)
	}
	if cfgErr != nil {
		logger.Error("bad configuration", "err", cfgErr)
		os.Exit(2)
	}
	err = run(ctx, cfg, logger, nil)
	flush()
	if err != nil {
		logger.Error("gateway stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

// config is the gateway's configuration.
type config struct {
	Addr        string
	AdminToken  string
	Peers       map[string]string // context → address
	CallTimeout time.Duration
	LogLevel    slog.Level
	// DrainTimeout bounds how long shutdown waits for requests in flight.
	DrainTimeout time.Duration
}

func configFrom(getenv func(string) string) (config, error) {
	cfg := config{
		Addr:         getenv("SHOP_ADDR"),
		AdminToken:   getenv("SHOP_ADMIN_TOKEN"),
		Peers:        servicehost.PeerAddrs([]string{"catalog", "cart", "inventory", "orders", "notify"}, getenv),
		CallTimeout:  servicehost.DefaultCallTimeout,
		DrainTimeout: 20 * time.Second,
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8081"
	}
	_ = cfg.LogLevel.UnmarshalText([]byte(getenv("SHOP_LOG_LEVEL"))) // unset or unknown: info
	if v := getenv("SHOP_RPC_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf("SHOP_RPC_TIMEOUT=%q: want a positive duration such as 5s", v)
		}
		cfg.CallTimeout = d
	}
	return cfg, nil
}

// newHandler connects to the peers (lazily: a peer down now is a 503 now, not a failed
// start) and returns the API over their clients.
func newHandler(cfg config, logger *slog.Logger, peers *servicehost.Peers) (http.Handler, error) {
	dial := func(name, service, serviceConfig string) (*grpc.ClientConn, error) {
		return peers.Dial(name, cfg.Peers[name], service, serviceConfig, cfg.CallTimeout)
	}
	catalogConn, err := dial("catalog", catalogrpc.ServiceName, catalogrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	cartConn, err := dial("cart", cartrpc.ServiceName, cartrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	inventoryConn, err := dial("inventory", inventoryrpc.ServiceName, inventoryrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	ordersConn, err := dial("orders", ordersrpc.ServiceName, ordersrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	notifyConn, err := dial("notify", notifyrpc.ServiceName, notifyrpc.ServiceConfig)
	if err != nil {
		return nil, err
	}
	if cfg.AdminToken == "" {
		logger.Warn("SHOP_ADMIN_TOKEN is unset: admin routes answer 401")
	}
	return httpapi.New(httpapi.Config{
		Catalog:       catalogrpc.NewClient(catalogConn),
		Carts:         cartrpc.NewClient(cartConn),
		Inventory:     inventoryrpc.NewClient(inventoryConn),
		Orders:        ordersrpc.NewClient(ordersConn),
		Notifications: notifyrpc.NewClient(notifyConn),
		AdminToken:    cfg.AdminToken,
		Ready:         peers.Check,
		Logger:        logger,
	}), nil
}

// run serves until ctx ends, then drains: requests in flight finish (up to DrainTimeout) and
// the peer connections close. onListen, if set, learns the bound address.
func run(ctx context.Context, cfg config, logger *slog.Logger, onListen func(net.Addr)) error {
	var peers servicehost.Peers
	defer peers.Close()
	handler, err := newHandler(cfg, logger, &peers)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "peers", cfg.Peers)
	if onListen != nil {
		onListen(ln.Addr())
	}
	return httpapi.Serve(ctx, ln, handler, logger, cfg.DrainTimeout)
}
