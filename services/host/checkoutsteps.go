package host

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/traced"
)

// serveCheckoutSteps runs the process as a checkout step function (Config.CheckoutSteps)
// until ctx ends: the group's one context over its buckets on the store, serving the state
// machine's calls (services/checkoutstep). It connects as a host does (TLS, its NATS user's
// inbox), and does not heal: a function whose store connection closes for good fails its
// invocations, and Lambda replaces it.
func serveCheckoutSteps(ctx context.Context, cfg Config, logger *slog.Logger) error {
	p := &process{cfg: cfg, log: logger}
	g := &Generation{p: p, log: logger, lost: make(chan struct{}), ncClosed: make(chan struct{})}
	if err := g.connect(); err != nil {
		return err
	}
	defer func() {
		g.mu.Lock()
		g.stopping = true
		g.mu.Unlock()
		_ = g.nc.Drain()
	}()
	js, err := jetstream.New(g.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	bus, err := natsjs.OpenBus(ctx, js, cfg.Store, logger)
	if err != nil {
		return err
	}
	h, err := checkoutstep.New(ctx, ctx, checkoutstep.Config{Context: cfg.Group.Contexts[0], JS: js, Store: cfg.Store, Bus: bus,
		Getenv: cfg.Getenv, Logger: logger, Tracing: traced.New(cfg.TracerProvider, nil)})
	if err != nil {
		return err
	}
	return checkoutstep.Serve(ctx, h, logger)
}
