package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
)

// config is what the tests set of the monolith's configuration; the rest is the host's
// defaults for a group of every context and the edge, as the binary runs it.
type config struct {
	Addr, DataDir, NatsURL, AdminToken string
	RequestKey                         string // needed with NatsURL: an embedded store makes its own
	DrainTimeout                       time.Duration
}

func (c config) host() (host.Config, error) {
	env := map[string]string{"SHOP_ADDR": c.Addr, "SHOP_DATA_DIR": c.DataDir, "SHOP_NATS_URL": c.NatsURL, "SHOP_ADMIN_TOKEN": c.AdminToken,
		bounded.RequestKeyEnv: c.RequestKey}
	cfg, err := host.ConfigFrom(func(k string) string { return env[k] }, bounded.Everything())
	if c.DrainTimeout > 0 {
		cfg.DrainTimeout = c.DrainTimeout
	}
	return cfg, err
}

// run runs the monolith as its main does, until ctx ends; onListen learns the edge's address.
func run(ctx context.Context, c config, logger *slog.Logger, onListen func(net.Addr)) error {
	cfg, err := c.host()
	if err != nil {
		return err
	}
	return host.Run(ctx, cfg, logger, host.Hooks{Listening: func(kind string, a net.Addr) {
		if kind == "http" && onListen != nil {
			onListen(a)
		}
	}})
}

// startHandler runs the monolith and returns its HTTP handler, to be called without a socket:
// the benchmarks measure the shop, not the kernel's loopback. It stops when tb ends.
func startHandler(tb testing.TB, c config, logger *slog.Logger) http.Handler {
	tb.Helper()
	c.Addr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	serving := make(chan http.Handler, 1)
	done := make(chan error, 1)
	cfg, err := c.host()
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		done <- host.Run(ctx, cfg, logger, host.Hooks{Serving: func(g *host.Generation) { serving <- g.Handler() }})
	}()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("monolith stopped with: %v", err)
		}
	})
	select {
	case h := <-serving:
		return h
	case err := <-done:
		tb.Fatalf("monolith did not start: %v", err)
	case <-time.After(60 * time.Second):
		tb.Fatal("monolith not serving after 60s")
	}
	return nil
}
