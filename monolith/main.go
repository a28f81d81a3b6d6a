// Command monolith serves the shop's public HTTP API with every bounded context in one
// process: in-process calls between contexts, one event bus, and NATS JetStream embedded (or
// reached through SHOP_NATS_URL) for state. It is one of mitosis's two architectures; the
// other, services/, runs the very same shop/ code split into processes.
//
// Configuration, all from the environment:
//
//	SHOP_ADDR         listen address (default 127.0.0.1:8080)
//	SHOP_DATA_DIR     embedded JetStream's files (default .mitosis/data)
//	SHOP_NATS_URL     use this NATS server instead of the embedded one
//	SHOP_ADMIN_TOKEN  bearer token of the admin routes (unset: admin routes answer 401)
//	SHOP_LOG_LEVEL    debug, info (default), warn or error
//	OTEL_*            OpenTelemetry: where traces go, sampling... (see platform/telemetry);
//	                  with none set, spans are made (the trace headers, the logs' trace IDs)
//	                  but not exported
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/platform/selfcheck"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
	"github.com/mitosis-dev/mitosis/shop/inprocess"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsembed"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

func main() {
	cfg := configFrom(os.Getenv)
	if selfcheck.Requested(os.Args) { // a container health check: is the serving copy alive?
		selfcheck.Exit(func(ctx context.Context) error { return selfcheck.HTTP(ctx, cfg.Addr, "/healthz") })
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdown, logger, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "monolith", Architecture: telemetry.Monolith, LogLevel: cfg.LogLevel})
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("bad telemetry configuration", "err", err)
		os.Exit(2)
	}
	slog.SetDefault(logger) // what shop/ logs through the default logger carries trace IDs too
	err = run(ctx, cfg, logger, nil)
	// run returns once requests and consumers are done: every span has ended, and this flush
	// exports them all.
	flushCtx, cancel := context.WithTimeout(context.Background(), telemetry.ShutdownTimeout)
	if ferr := shutdown(flushCtx); ferr != nil {
		logger.Warn("flush telemetry", "err", ferr)
	}
	cancel()
	if err != nil {
		logger.Error("monolith stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

// config is the monolith's configuration.
type config struct {
	Addr       string
	DataDir    string
	NatsURL    string
	AdminToken string
	LogLevel   slog.Level
	// DrainTimeout bounds how long shutdown waits for requests in flight.
	DrainTimeout time.Duration
}

func configFrom(getenv func(string) string) config {
	cfg := config{
		Addr:         getenv("SHOP_ADDR"),
		DataDir:      getenv("SHOP_DATA_DIR"),
		NatsURL:      getenv("SHOP_NATS_URL"),
		AdminToken:   getenv("SHOP_ADMIN_TOKEN"),
		DrainTimeout: 20 * time.Second,
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = ".mitosis/data"
	}
	_ = cfg.LogLevel.UnmarshalText([]byte(getenv("SHOP_LOG_LEVEL"))) // unset or unknown: info
	return cfg
}

// monolith is a started shop: its NATS connection, its contexts and its HTTP handler.
type monolith struct {
	handler http.Handler
	shop    *inprocess.Shop
	nc      *nats.Conn
	ns      *natsembed.Server // nil when NATS is external
	closed  chan struct{}     // closed when nc is closed, after its drain
	cancel  context.CancelFunc
}

// start connects to NATS (starting the embedded server unless a URL is configured), builds
// every context over JetStream and starts the event consumers.
func start(ctx context.Context, cfg config, logger *slog.Logger) (_ *monolith, err error) {
	m := &monolith{closed: make(chan struct{})}
	onClosed := nats.ClosedHandler(func(*nats.Conn) { close(m.closed) })
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	if cfg.NatsURL == "" {
		if m.ns, err = natsembed.Start(cfg.DataDir, ""); err != nil {
			return nil, err
		}
		if m.nc, err = m.ns.Connect("monolith", onClosed); err != nil {
			return nil, err
		}
		logger.Info("embedded NATS started", "data_dir", cfg.DataDir)
	} else {
		m.nc, err = nats.Connect(cfg.NatsURL, nats.Name("monolith"), nats.MaxReconnects(-1), onClosed)
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", cfg.NatsURL, err)
		}
	}
	js, err := jetstream.New(m.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	bus, err := natsjs.OpenBus(ctx, js, logger)
	if err != nil {
		return nil, err
	}
	// The catalog's view lives as long as the monolith, not as long as start's caller's ctx.
	shopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.shop, err = inprocess.New(shopCtx, inprocess.Config{
		Open: func(ctx context.Context, name string) (kv.Bucket, error) {
			return natsjs.OpenBucket(ctx, js, name)
		},
		Bus:    bus,
		Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	if err := m.shop.Start(ctx); err != nil {
		m.shop = nil
		return nil, err
	}
	if cfg.AdminToken == "" {
		logger.Warn("SHOP_ADMIN_TOKEN is unset: admin routes answer 401")
	}
	// The edge calls the contexts as the gateway calls the services: through m.shop.Calls,
	// one span per call, named like the gRPC method.
	m.handler = httpapi.New(httpapi.Config{
		Catalog:       m.shop.Calls.Catalog,
		Carts:         m.shop.Calls.Carts,
		Inventory:     m.shop.Calls.Inventory,
		Orders:        m.shop.Calls.Orders,
		Notifications: m.shop.Calls.Notify,
		AdminToken:    cfg.AdminToken,
		Ready:         func(ctx context.Context) error { return natsjs.Ping(ctx, m.nc, js) },
		Logger:        logger,
	})
	return m, nil
}

// close stops the consumers (letting messages in flight finish), then the store: the NATS
// connection is drained so that acknowledgements and writes in flight are not lost.
func (m *monolith) close() {
	if m.shop != nil {
		m.shop.Stop()
	}
	if m.cancel != nil {
		m.cancel()
	}
	if m.nc != nil {
		if err := m.nc.Drain(); err == nil {
			select {
			case <-m.closed:
			case <-time.After(10 * time.Second):
			}
		}
		m.nc.Close()
	}
	if m.ns != nil {
		m.ns.Shutdown()
	}
}

// run serves until ctx ends, then drains: requests in flight finish (up to DrainTimeout),
// consumers stop, the store closes. onListen, if set, learns the bound address.
func run(ctx context.Context, cfg config, logger *slog.Logger, onListen func(net.Addr)) error {
	m, err := start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer m.close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	logger.Info("monolith listening", "addr", ln.Addr().String())
	if onListen != nil {
		onListen(ln.Addr())
	}
	return httpapi.Serve(ctx, ln, m.handler, logger, cfg.DrainTimeout)
}
