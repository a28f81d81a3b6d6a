//go:build !mitosis_group || mitosis_orders

// Part of the implementation: a checkout step function runs orders' saga, which only the
// binaries that run orders link (checkoutsteps_elsewhere.go is the others').

package host

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/traced"
)

// checkoutStepsGroup says why g cannot be a checkout step function, nil when it can: one
// context the checkout calls, no edge.
func checkoutStepsGroup(g bounded.Group) error {
	if g.Edge || len(g.Contexts) != 1 || !slices.Contains(checkoutstep.Contexts(), g.Contexts[0]) {
		return fmt.Errorf("SHOP_GROUP must name one context the checkout calls (%s), not %s", strings.Join(checkoutstep.Contexts(), ", "), g)
	}
	return nil
}

// serveCheckoutSteps runs the process as a checkout step function (Config.CheckoutSteps)
// until ctx ends: the group's one context over its buckets on the store, serving the state
// machine's calls (services/checkoutstep). It connects as a host does (TLS, its NATS user's
// inbox), and does not heal in place: when its store connection closes for good it returns
// an error, so that the process exits and Lambda starts the function anew at its next
// invocation. Lambda replaces no copy that merely fails its invocations: one that stayed
// up without a store would fail every checkout sent to it.
func serveCheckoutSteps(ctx context.Context, cfg Config, logger *slog.Logger, hooks Hooks) error {
	p := &process{cfg: cfg, log: logger}
	g := &Generation{p: p, log: logger, lost: make(chan struct{}), ncClosed: make(chan struct{})}
	if err := g.connect(); err != nil {
		return err
	}
	defer func() {
		g.mu.Lock()
		g.stopping = true
		g.mu.Unlock()
		// Writes and acknowledgements in flight finish before the process exits, as a
		// host's stop waits for them.
		if g.nc.Drain() == nil {
			select {
			case <-g.ncClosed:
			case <-time.After(cfg.DrainTimeout):
			}
		}
	}()
	// serving ends with ctx, or when the store connection closes for good: the context's
	// loops (inventory's sweep) live that long, so that Serve, which waits for them, returns.
	serving, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-g.lost:
			stop()
		case <-serving.Done():
		}
	}()
	js, err := jetstream.New(g.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	var bus events.Publisher // a context that publishes no events has none (bounded.Group.UsesEvents)
	if cfg.Group.UsesEvents() {
		if bus, err = natsjs.OpenBus(ctx, js, cfg.Store, cfg.Group.EventConsumers(), logger); err != nil {
			return err
		}
	}
	h, err := checkoutstep.New(ctx, serving, checkoutstep.Config{Context: cfg.Group.Contexts[0], JS: js, Store: cfg.Store, Bus: bus,
		Getenv: cfg.Getenv, Logger: logger, Tracing: traced.New(cfg.TracerProvider, nil)})
	if err != nil {
		return err
	}
	if hooks.Serving != nil {
		hooks.Serving(g)
	}
	err = checkoutstep.Serve(serving, h, logger)
	select {
	case <-g.lost:
		return fmt.Errorf("the store connection closed for good (%v): exit, for Lambda to start the function anew", g.lostErr())
	default:
		return err
	}
}
