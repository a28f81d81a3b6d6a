package servicehost

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/mitosis-dev/mitosis/platform/selfcheck"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
)

// Wire builds a context on a started process: opens its buckets, connects its peers,
// subscribes its consumers, starts its loops and registers its gRPC service on p.GRPC(). It
// returns the names of the gRPC services it registered (for health).
type Wire func(ctx context.Context, p *Process) (services []string, err error)

// Main is a service's main: configuration from the environment (see ConfigFrom),
// OpenTelemetry and a JSON logger on stdout (platform/telemetry; OTEL_* variables), then Run
// until SIGINT or SIGTERM, then a flush of the spans. It exits non-zero on a bad
// configuration (2) or a failure (1).
func Main(name string, peers []string, wire Wire) {
	cfg, cfgErr := ConfigFrom(name, peers, os.Getenv)
	if selfcheck.Requested(os.Args) { // a container health check: is the serving copy alive?
		selfcheck.Exit(func(ctx context.Context) error { return selfcheck.GRPC(ctx, cfg.GRPCAddr) })
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	flush, logger, err := SetupTelemetry(ctx, name, cfg.LogLevel)
	if err != nil {
		NewLogger(os.Stdout, cfg.LogLevel, name).Error("bad telemetry configuration", "err", err)
		os.Exit(2)
	}
	if cfgErr != nil {
		logger.Error("bad configuration", "err", cfgErr)
		os.Exit(2)
	}
	err = Run(ctx, cfg, logger, wire)
	flush()
	if err != nil {
		logger.Error(name+" stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

// SetupTelemetry sets up OpenTelemetry for the service name (service.name, architecture
// "services") and returns the process's logger, also made slog's default so that what shop/
// logs is JSON with trace IDs too. flush exports what is buffered; call it once the
// process has drained.
func SetupTelemetry(ctx context.Context, name string, level slog.Level) (flush func(), logger *slog.Logger, err error) {
	shutdown, logger, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: name, Architecture: telemetry.Services, LogLevel: level})
	if err != nil {
		return nil, nil, err
	}
	slog.SetDefault(logger)
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetry.ShutdownTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			logger.Warn("flush telemetry", "err", err)
		}
	}, logger, nil
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
