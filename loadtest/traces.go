package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// TraceSource says where the traces of a run are and which ones to compare.
type TraceSource struct {
	Collector string  // query API, e.g. http://127.0.0.1:16686; "" skips the breakdown
	Operation string  // root span name, default tracecompare.DefaultOperation
	Last      int     // traces per side, default 20
	Rate      float64 // the offered rate of the steps the windows cover, for the report
	// Sides are the edge services of the two sides, in report order, with their labels, and
	// the window their traces are taken from (zero: the latest traces): the steps at the
	// common rate, so both sides' traces saw the same load.
	Sides [2]TraceSideSource
	// Settle is how long after they end a trace's spans may still be on their way to the
	// collector (0: tracecompare.DefaultSettle).
	Settle time.Duration
}

// TraceSideSource selects one side's traces.
type TraceSideSource struct {
	Label, Service string
	From, To       time.Time
}

// CollectTraces compares the last traces of each side with platform/tracecompare, writes its
// page to dir/traces.html and returns the report's section. It never fails: a missing
// collector or missing traces is the section's Reason.
func CollectTraces(ctx context.Context, src TraceSource, dir string) Traces {
	if src.Operation == "" {
		src.Operation = tracecompare.DefaultOperation
	}
	if src.Last <= 0 {
		src.Last = 20
	}
	if src.Settle <= 0 {
		src.Settle = tracecompare.DefaultSettle
	}
	out := Traces{Collector: src.Collector, Operation: src.Operation}
	if !src.Sides[0].From.IsZero() {
		out.Window = fmt.Sprintf("traces of the last step at %g req/s of each architecture", src.Rate)
	}
	if src.Collector == "" {
		out.Reason = "no trace collector was given (-collector \"\")"
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A trace's spans reach the collector up to the exporters' schedule delay after they
	// end: wait that long after the windows' end, or, with no window, take only traces that
	// old.
	var windowEnd time.Time
	for _, side := range src.Sides {
		if side.To.After(windowEnd) {
			windowEnd = side.To
		}
	}
	if wait := src.Settle - time.Since(windowEnd); !windowEnd.IsZero() && wait > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	client := &tracecollect.Client{BaseURL: src.Collector, HTTP: nil}
	var sets [2][]*tracecompare.Trace
	for i, side := range src.Sides {
		if side.To.IsZero() {
			side.To = time.Now().Add(-src.Settle)
		}
		tds, err := client.Find(ctx, tracecollect.Query{ServiceName: side.Service, OperationName: src.Operation, NumTraces: src.Last,
			StartMin: side.From, StartMax: side.To})
		if errors.Is(err, tracecollect.ErrNotFound) {
			out.Reason = fmt.Sprintf("the collector at %s holds no trace of %q from service %q: the %s was not started with OTEL_EXPORTER_OTLP_ENDPOINT pointing at it (mitosis up sets it), or no request asked to be traced (-trace-share)",
				src.Collector, src.Operation, side.Service, side.Label)
			return out
		}
		if err != nil {
			out.Reason = fmt.Sprintf("no trace collector answered at %s (%v); start one (mitosis up starts it) and export traces to it", src.Collector, err)
			return out
		}
		for _, td := range tds {
			ts, err := tracecompare.FromOTLP(td)
			if err != nil {
				out.Reason = fmt.Sprintf("traces of %s: %v", side.Label, err)
				return out
			}
			sets[i] = append(sets[i], ts...)
		}
		if len(sets[i]) == 0 {
			out.Reason = fmt.Sprintf("no trace of %q from service %q at %s", src.Operation, side.Service, src.Collector)
			return out
		}
	}
	c, err := tracecompare.Compare(src.Sides[0].Label, sets[0], src.Sides[1].Label, sets[1])
	if err != nil {
		out.Reason = "trace comparison: " + err.Error()
		return out
	}
	for _, s := range []tracecompare.Side{c.A, c.B} {
		sum := s.Summary
		ts := TraceSide{Label: s.Label, Traces: sum.N, Incomplete: sum.Incomplete, RootP50MS: sum.RootLatency.Median, RootP90MS: sum.RootLatency.P90,
			CriticalPath: map[string]float64{}, Spans: sum.Spans.Median, RemoteHops: sum.RemoteHops.Median, Services: sum.ServiceNames}
		for _, cat := range tracecompare.Categories() {
			ts.CriticalPath[string(cat)] = sum.CriticalPath[cat].Median
		}
		out.Sides = append(out.Sides, ts)
	}
	for i, d := range c.Differences {
		if i == 10 {
			break
		}
		out.Differences = append(out.Differences, TraceDifference{Category: string(d.Category), Span: d.Span, AMS: d.AMillis, BMS: d.BMillis, DeltaMS: d.DeltaMillis})
	}
	if dir != "" {
		f, err := os.Create(filepath.Join(dir, "traces.html"))
		if err == nil {
			if err = c.HTML(f); err == nil {
				out.File = "traces.html"
			}
			f.Close()
		}
	}
	out.Collected = true
	return out
}
