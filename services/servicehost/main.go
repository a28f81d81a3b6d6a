package servicehost

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Wire builds a context on a started process: opens its buckets, connects its peers,
// subscribes its consumers, starts its loops and registers its gRPC service on p.GRPC(). It
// returns the names of the gRPC services it registered (for health).
type Wire func(ctx context.Context, p *Process) (services []string, err error)

// Main is a service's main: configuration from the environment (see ConfigFrom), a JSON
// logger on stdout, then Run until SIGINT or SIGTERM. It exits non-zero on a bad
// configuration (2) or a failure (1).
func Main(name string, peers []string, wire Wire) {
	cfg, err := ConfigFrom(name, peers, os.Getenv)
	logger := NewLogger(os.Stdout, cfg.LogLevel, name)
	slog.SetDefault(logger) // what shop/ logs through the default logger is JSON too
	if err != nil {
		logger.Error("bad configuration", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg, logger, wire); err != nil {
		logger.Error(name+" stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

// Run starts the process, wires the context and serves until ctx ends, then stops gracefully.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, wire Wire) error {
	p, err := Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer p.Close()
	services, err := wire(ctx, p)
	if err != nil {
		return fmt.Errorf("wire %s: %w", cfg.Name, err)
	}
	return p.Serve(ctx, services, nil)
}
