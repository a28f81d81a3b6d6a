package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// tracesCmd is `traces`, whose one command is `compare` (platform/tracecompare).
func tracesCmd() *cobra.Command {
	traces := &cobra.Command{Use: "traces", Short: "Read and compare the traces the collector holds"}
	traces.AddCommand(compareCmd())
	return traces
}

func compareCmd() *cobra.Command {
	o := tracecompare.Options{}
	cmd := &cobra.Command{
		Use:   "compare [TRACE_ID_A TRACE_ID_B]",
		Short: "Put a trace of each architecture side by side and say where the extra time goes",
		Long: `compare analyzes a trace of each architecture (or the last N of each) and reports, for
each, the root latency, the request's critical path split into domain, store, transport and
queueing time, the end-to-end time including the events' consumers, the event lag, and the
trace's shape (spans, services touched, remote hops, context calls, depth, fan-out), then the
parts of the critical path that differ most.

Traces come from the collector's query API, or a Jaeger v2 query service's (Jaeger's
/api/v3, --collector): by ID, or the latest traces whose root is --operation on each edge
service within --lookback (default: the latest checkout of each), or from OTLP/JSON files
(what GET /api/v3/traces/{id} returns).

  mitosis traces compare                                  # the latest checkout of each
  mitosis traces compare --last 20 --format html -o cmp.html
  mitosis traces compare 6b09...3413 6b09...d606 --format json`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return errors.New("give two trace IDs, or none")
			}
			o.TraceIDs = args
			return tracecompare.Run(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Collector, "collector", envOr("MITOSIS_COLLECTOR", tracecompare.DefaultCollector), "query API of the trace collector (env MITOSIS_COLLECTOR)")
	f.StringVar(&o.AFile, "a-file", "", "read side A from this OTLP/JSON file")
	f.StringVar(&o.BFile, "b-file", "", "read side B from this OTLP/JSON file")
	f.StringVar(&o.AService, "a-service", "monolith", "edge service of side A")
	f.StringVar(&o.BService, "b-service", "gateway", "edge service of side B")
	f.StringVar(&o.Operation, "operation", tracecompare.DefaultOperation, "root span name of the traces to compare")
	f.IntVar(&o.Last, "last", 1, "compare the last N traces of each side")
	f.StringVar(&o.ALabel, "a-label", "monolith", "name of side A in the report")
	f.StringVar(&o.BLabel, "b-label", "services", "name of side B in the report")
	f.StringVar(&o.Format, "format", "table", "table, json or html")
	f.StringVarP(&o.Output, "output", "o", "", "write to this file instead of stdout")
	f.DurationVar(&o.Lookback, "lookback", tracecollect.DefaultLookback, "how far back to look for the last traces of each side (the time window a Jaeger query service requires)")
	f.DurationVar(&o.Settle, "settle", tracecompare.DefaultSettle, "read the collector this long after starting, so that the spans of requests just made are in: a span waits up to OTEL_BSP_SCHEDULE_DELAY in its exporter, 1 s in the make up stack (0: do not wait)")
	return cmd
}
