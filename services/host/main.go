package host

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/platform/selfcheck"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Main is a host's main: the configuration from the environment (ConfigFrom, with def as
// the group when SHOP_GROUP is unset), OpenTelemetry and a JSON logger on stdout
// (platform/telemetry; OTEL_* variables; version is the binary's, stamped from git by the
// build, and becomes its spans' service.version; Prometheus's /metrics at SHOP_METRICS_ADDR),
// then Run until SIGINT or SIGTERM, then a flush of the spans. It first runs itself again
// with sysmon kept from deep sleep (KeepSysmonAwake), and fits GOMAXPROCS to the process's
// CPU quota, down to one (FitProcs). `<binary> -healthcheck`
// checks the serving copy instead (selfcheck), `<binary> -version` prints the version. It
// exits 2 on a bad configuration (a metrics address taken too), 1 on a failure.
func Main(def bounded.Group, version string) {
	if slices.Contains(os.Args[1:], "-version") || slices.Contains(os.Args[1:], "--version") {
		fmt.Println(version)
		return
	}
	cfg, cfgErr := ConfigFrom(os.Getenv, def)
	if selfcheck.Requested(os.Args) { // a container health check: is the serving copy alive?
		selfcheck.Exit(func(ctx context.Context) error {
			if cfg.Group.Edge {
				return selfcheck.HTTP(ctx, cfg.HTTPAddr, "/healthz")
			}
			// Its own identity: health answers any of the stack.
			return selfcheck.GRPC(ctx, cfg.GRPCAddr, grpc.WithTransportCredentials(cfg.Security.ClientCredentials("")))
		})
	}
	KeepSysmonAwake()             // runs the binary again with a GODEBUG of its own, once
	procs, procsErr := FitProcs() // before telemetry: its runtime metrics read GOMAXPROCS
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdown, logger, err := telemetry.Setup(ctx, TelemetryOptions(cfg, version))
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("bad telemetry configuration", "err", err)
		os.Exit(2)
	}
	switch {
	case procsErr != nil:
		logger.Warn("GOMAXPROCS left at Go's default", "err", procsErr)
	case procs != "":
		logger.Info(procs)
	}
	if cfg.Lambda && os.Getenv(MetricsAddrEnv) != "" {
		logger.Info(MetricsAddrEnv + " is ignored under Lambda: a function does not listen")
	}
	if cfgErr != nil {
		logger.Error("bad configuration", "err", cfgErr)
		os.Exit(2)
	}
	slog.SetDefault(logger) // what shop/ logs through the default logger carries trace IDs too
	err = Run(ctx, cfg, logger, Hooks{})
	// Run returns once requests, calls and consumers are done: every span has ended, and
	// this flush exports them all.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetry.ShutdownTimeout)
	if ferr := shutdown(flushCtx); ferr != nil {
		logger.Warn("flush telemetry", "err", ferr)
	}
	cancel()
	if err != nil {
		logger.Error(cfg.Name+" stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

// TelemetryOptions is how Main sets OpenTelemetry up for the host cfg describes: its name,
// architecture, version and log level on every span and log line, and its Prometheus
// endpoint at cfg.MetricsAddr.
func TelemetryOptions(cfg Config, version string) telemetry.Options {
	return telemetry.Options{ServiceName: cfg.Name, Architecture: cfg.Arch, Version: version, LogLevel: cfg.LogLevel,
		MetricsAddr: cfg.MetricsAddr}
}
