package telemetry

import (
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
)

// quietErrors is the error handler Setup installs: it logs OpenTelemetry's errors (an export
// that failed, a full queue) as warnings, at most one per every interval, with the number of
// those it held back since the last. An exporter whose collector is away fails on every batch
// (every second in the local stack); one line a minute says so without burying the
// service's own log.
func quietErrors(logger *slog.Logger, now func() time.Time, every time.Duration) otel.ErrorHandler {
	var (
		mu      sync.Mutex
		last    time.Time
		dropped int
	)
	return otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		t := now()
		if !last.IsZero() && t.Sub(last) < every {
			dropped++
			mu.Unlock()
			return
		}
		held := dropped
		last, dropped = t, 0
		mu.Unlock()
		logger.Warn("opentelemetry", "err", err, "errors_held_back", held)
	})
}
