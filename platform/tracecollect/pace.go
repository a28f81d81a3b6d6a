package tracecollect

import "time"

// ExportDelay is how long a service of a local stack holds an ended span before exporting
// it to the collector (OTEL_BSP_SCHEDULE_DELAY, which topology.ExportEnv sets): a second,
// not the SDK's five, so that a request's trace is whole in the collector a second or so
// after the request, and `mitosis traces compare` right after a checkout finds it. A batch
// still goes as soon as it holds 512 spans, so under load this changes nothing.
//
// It lives with the collector rather than with the topology that passes it on because
// readers of the collector wait for it (tracecompare's settle), and the collector's image
// must not depend on the table of contexts: a change to a context would rebuild it and
// restart it, losing the traces it holds.
const ExportDelay = time.Second

// MetricExportInterval is how often a service of a local stack pushes its metrics to the
// collector (OTEL_METRIC_EXPORT_INTERVAL, set by topology.ExportEnv): every 10 seconds
// rather than the SDK's 60, so that the collector's last minutes of metrics (metricstore.go)
// resolve a load test's steps. Each push is one request of a few hundred series per process.
const MetricExportInterval = 10 * time.Second
