package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
)

// serveMetrics serves /metrics at addr ("" for nowhere) until ctx ends: the Go runtime's and
// the process's, and mitosis.certificate.expiry, the time (Unix seconds) each identity's
// certificate in the PKI folder pki expires, read on each scrape: the figure an alert on a
// renewal that stopped working watches.
func serveMetrics(ctx context.Context, addr, pki string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	// Scraped, never pushed, whatever a runtime passes every process: it has no spans, and
	// its metrics are nothing of the shop's that the collector's readers should count.
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"} {
		_ = os.Setenv(k, "none")
	}
	shutdown, _, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "renewer", Version: version, MetricsAddr: addr, LogLevel: slog.LevelWarn})
	if err != nil {
		return nil, err
	}
	stop = func() { _ = shutdown(context.Background()) }
	if err := instrument(otel.GetMeterProvider(), pki); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// instrument reports, through mp, when each certificate of the PKI folder pki expires.
func instrument(mp metric.MeterProvider, pki string) error {
	obs := telemetry.NewObservables(mp.Meter("github.com/mitosis-dev/mitosis/platform/cmd/renewer"))
	expiry := obs.Gauge("mitosis.certificate.expiry", "s", "When the identity's certificate expires, in seconds since the Unix epoch")
	return obs.Register(func(_ context.Context, o metric.Observer) error {
		found, err := identity.Found(pki)
		if err != nil {
			return err
		}
		for _, id := range found {
			src, err := identity.Load(filepath.Join(pki, id))
			if err != nil {
				continue // being renewed, or not ours to read: the next scrape has it
			}
			if c, err := src.Leaf(); err == nil {
				o.ObserveInt64(expiry, c.NotAfter.Unix(), metric.WithAttributes(attribute.String("identity", id)))
			}
		}
		return nil
	})
}
