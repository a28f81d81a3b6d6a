package loadtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// TraceSource says where the traces of a run are and which ones to compare.
type TraceSource struct {
	Collector string  // query API, e.g. http://127.0.0.1:16686; "" skips the breakdown
	Operation string  // root span name, default tracecompare.DefaultOperation
	Last      int     // traces per side, default 20
	Rate      float64 // the offered rate of the steps the windows cover, for the report
	// Sides are the architectures in report order, the first the baseline of every
	// comparison, each with the window its traces are taken from (zero: the latest traces):
	// the steps at the common rate, so every side's traces saw the same load.
	Sides []TraceSideSource
	// Settle is how long after they end a trace's spans may still be on their way to the
	// collector (0: tracecompare.DefaultSettle).
	Settle time.Duration
	// Kept holds the traces a TraceKeeper read as the steps ended (nil: read the windows
	// from the collector now); a side it holds nothing for is read now.
	Kept *TraceKeeper
	// NoneSent says the run sent no request of Operation (a -mix without checkouts):
	// there is nothing to break down, and the report says so rather than blame the
	// collector or the architectures' setup.
	NoneSent bool
}

func (src TraceSource) withDefaults() TraceSource {
	if src.Operation == "" {
		src.Operation = tracecompare.DefaultOperation
	}
	if src.Last <= 0 {
		src.Last = 20
	}
	if src.Settle <= 0 {
		src.Settle = tracecompare.DefaultSettle
	}
	return src
}

// TraceSideSource selects one architecture's traces.
type TraceSideSource struct {
	// Label is the architecture's name, which its traces carry as the resource attribute
	// mitosis.architecture (SHOP_ARCH): traces of another architecture are left out, since
	// two architectures' edges may share a service name (the gateway of services and of a
	// hybrid).
	Label    string
	Service  string // the edge's service name; "" for any (the architecture attribute decides)
	From, To time.Time
}

// CollectTraces analyses the last traces of each side with platform/tracecompare, compares
// each side after the first with the first, writes each comparison's page beside the report
// (dir/traces-<first>-vs-<other>.html) and returns the report's section. It never fails: a
// missing collector, or a side without traces, is said in words.
func CollectTraces(ctx context.Context, src TraceSource, dir string) Traces {
	src = src.withDefaults()
	out := Traces{Collector: src.Collector, Operation: src.Operation}
	if len(src.Sides) > 0 && !src.Sides[0].From.IsZero() {
		out.Window = fmt.Sprintf("traces of the last step at %g req/s of each architecture", src.Rate)
	}
	switch {
	case src.Collector == "":
		out.Reason = "no trace collector was given (-collector \"\")"
		return out
	case len(src.Sides) == 0:
		out.Reason = "no architecture to trace"
		return out
	case src.NoneSent:
		out.Reason = fmt.Sprintf("the run sent no %s (-mix): nothing to break down", src.Operation)
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A trace's spans reach the collector up to the exporters' schedule delay after they
	// end: wait that long after the windows' end, or, with no window, take only traces that
	// old.
	var windowEnd time.Time
	for _, side := range src.Sides {
		if _, _, kept := src.Kept.traces(side.Label, src.Rate); kept {
			continue
		}
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
	client := &tracecollect.Client{BaseURL: src.Collector}
	sets := make([][]*tracecompare.Trace, len(src.Sides))
	for i, side := range src.Sides {
		ts, err, kept := src.Kept.traces(side.Label, src.Rate)
		if !kept {
			ts, err = sideTraces(ctx, client, src, side)
		}
		var unreachable *collectorError
		if errors.As(err, &unreachable) {
			out.Reason = err.Error()
			return out
		}
		sets[i] = ts
		if err != nil {
			out.Sides = append(out.Sides, TraceSide{Label: side.Label, Missing: err.Error(), CriticalPath: map[string]float64{}})
			continue
		}
		// A comparison of the side with itself is its own analysis.
		c, err := tracecompare.Compare(side.Label, ts, side.Label, ts)
		if err != nil {
			out.Sides = append(out.Sides, TraceSide{Label: side.Label, Missing: "analysis: " + err.Error(), CriticalPath: map[string]float64{}})
			sets[i] = nil
			continue
		}
		out.Sides = append(out.Sides, traceSide(c.A))
	}
	var missing []string
	for i, s := range out.Sides {
		if s.Missing != "" {
			missing = append(missing, s.Missing)
			continue
		}
		out.Collected = true
		if i == 0 || len(sets[0]) == 0 {
			continue
		}
		base := src.Sides[0].Label
		c, err := tracecompare.Compare(base, sets[0], s.Label, sets[i])
		if err != nil {
			continue // both sides have traces: Compare only fails without
		}
		tc := TraceComparison{Baseline: base, Other: s.Label, Differences: []TraceDifference{}}
		for j, d := range c.Differences {
			if j == 10 {
				break
			}
			tc.Differences = append(tc.Differences, TraceDifference{Category: string(d.Category), Span: d.Span,
				BaselineMS: d.AMillis, OtherMS: d.BMillis, DeltaMS: d.DeltaMillis})
		}
		if dir != "" {
			name := "traces-" + base + "-vs-" + s.Label + ".html"
			if f, err := os.Create(filepath.Join(dir, name)); err == nil {
				if c.HTML(f) == nil {
					tc.File = name
				}
				f.Close()
			}
		}
		out.Comparisons = append(out.Comparisons, tc)
	}
	if !out.Collected {
		out.Reason = strings.Join(missing, "; ")
	}
	return out
}

// collectorError is a collector that did not answer: no side can have traces.
type collectorError struct{ error }

// sideTraces reads one side's traces: the last src.Last of its window whose root carries its
// architecture (or none).
func sideTraces(ctx context.Context, client *tracecollect.Client, src TraceSource, side TraceSideSource) ([]*tracecompare.Trace, error) {
	if side.To.IsZero() {
		side.To = time.Now().Add(-src.Settle)
	}
	// The service name does not tell architectures apart: ask for more and keep this
	// side's.
	tds, err := client.Find(ctx, tracecollect.Query{ServiceName: side.Service, OperationName: src.Operation,
		NumTraces: src.Last * (len(src.Sides) + 1), StartMin: side.From, StartMax: side.To})
	service := side.Service
	if service == "" {
		service = "any"
	}
	if errors.Is(err, tracecollect.ErrNotFound) {
		return nil, fmt.Errorf("%s: the collector at %s holds no trace of %q from service %s: the %s was not started with OTEL_EXPORTER_OTLP_ENDPOINT pointing at it (mitosis up sets it), or no request asked to be traced (-trace-share)",
			side.Label, src.Collector, src.Operation, service, side.Label)
	}
	if err != nil {
		return nil, &collectorError{fmt.Errorf("no trace collector answered at %s (%v); start one (mitosis up starts it) and export traces to it", src.Collector, err)}
	}
	var kept []*tracecompare.Trace
	others := map[string]bool{}
	for _, td := range tds {
		ts, err := tracecompare.FromOTLP(td)
		if err != nil {
			return nil, fmt.Errorf("%s: traces: %v", side.Label, err)
		}
		for _, t := range ts {
			arch := ""
			if t.Root != nil {
				arch = t.Root.Attrs[string(telemetry.ArchitectureKey)]
			}
			if arch != "" && arch != side.Label {
				others[arch] = true
				continue
			}
			if len(kept) < src.Last {
				kept = append(kept, t)
			}
		}
	}
	if len(kept) == 0 {
		if seen := slices.Sorted(maps.Keys(others)); len(seen) > 0 {
			return nil, fmt.Errorf("%s: the traces of %q from service %s are of architecture %s, none of %s: name the edge as its stack does (SHOP_ARCH)",
				side.Label, src.Operation, service, strings.Join(seen, ", "), side.Label)
		}
		return nil, fmt.Errorf("%s: no trace of %q from service %s at %s", side.Label, src.Operation, service, src.Collector)
	}
	return kept, nil
}

// traceSide is the report's summary of one side's analysis.
func traceSide(s tracecompare.Side) TraceSide {
	sum := s.Summary
	ts := TraceSide{Label: s.Label, Traces: sum.N, Incomplete: sum.Incomplete, RootP50MS: sum.RootLatency.Median, RootP90MS: sum.RootLatency.P90,
		CriticalPath: map[string]float64{}, Spans: sum.Spans.Median, RemoteHops: sum.RemoteHops.Median, Services: sum.ServiceNames}
	for _, cat := range tracecompare.Categories() {
		ts.CriticalPath[string(cat)] = sum.CriticalPath[cat].Median
	}
	return ts
}
