package tracecompare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// Options select the traces of a comparison and how it is written.
type Options struct {
	Collector string // base URL of the query API
	AFile     string // OTLP/JSON file for side A (as /api/v3 returns a trace)
	BFile     string
	AService  string // the edge service of side A, for the last-N selection
	BService  string
	Operation string // the root span name, for the last-N selection
	Last      int    // compare the last N traces of each side
	ALabel    string
	BLabel    string
	Format    string // table, json or html
	Output    string // file; "" or "-" means stdout
	TraceIDs  []string
	Client    *tracecollect.Client // nil means one for Collector
	// Settle is how long after a request its trace may still lack spans in the collector:
	// those still in an exporter's batch. Traces from the collector are read once Settle
	// has passed since the command started (loadSettled); 0 does not wait.
	Settle time.Duration
	// Lookback is how far back, from when the command started, the last-N selection looks
	// for traces: a Jaeger query service requires a search's time window. 0 means
	// tracecollect.DefaultLookback.
	Lookback time.Duration
}

// Defaults of the command.
const (
	DefaultCollector = "http://127.0.0.1:16686"
	DefaultOperation = "POST /v1/checkout"
	// DefaultSettle is the longest a span of the local stack waits in its exporter's batch
	// (tracecollect.ExportDelay), and a second for the export itself. Exporters at the SDK's
	// default (OTEL_BSP_SCHEDULE_DELAY 5 s) need --settle 6s.
	DefaultSettle = tracecollect.ExportDelay + time.Second
)

// Run loads the traces o selects, compares them and writes the report to stdout (or
// o.Output).
func Run(ctx context.Context, o Options, stdout io.Writer) error {
	switch o.Format {
	case "table", "json", "html":
	default:
		return fmt.Errorf("--format %q: want table, json or html", o.Format)
	}
	if o.Last < 1 {
		return fmt.Errorf("--last %d: want at least 1", o.Last)
	}
	client := o.Client
	if client == nil {
		client = &tracecollect.Client{BaseURL: o.Collector}
	}
	asOf := time.Now()
	a, err := o.loadSettled(ctx, client, o.AFile, idAt(o.TraceIDs, 0), o.AService, asOf)
	if err != nil {
		return fmt.Errorf("side %s: %w", o.ALabel, err)
	}
	b, err := o.loadSettled(ctx, client, o.BFile, idAt(o.TraceIDs, 1), o.BService, asOf)
	if err != nil {
		return fmt.Errorf("side %s: %w", o.BLabel, err)
	}
	c, err := Compare(o.ALabel, a, o.BLabel, b)
	if err != nil {
		return err
	}
	w := stdout
	if o.Output != "" && o.Output != "-" {
		f, err := os.Create(o.Output)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	switch o.Format {
	case "json":
		err = c.JSON(w)
	case "html":
		err = c.HTML(w)
	default:
		err = c.Table(w)
	}
	if err != nil {
		return err
	}
	if f, ok := w.(*os.File); ok && f != stdout {
		return f.Close()
	}
	return nil
}

func idAt(ids []string, i int) string {
	if i < len(ids) {
		return ids[i]
	}
	return ""
}

// loadSettled loads a side's traces. From the collector, it lets the spans still in the
// exporters' batches arrive: the latest traces are read once Settle has passed since
// asOf (when the command started), and only those that started before asOf, so that the
// requests just made are in, whole, and none made meanwhile; a trace asked for by ID that is
// not there yet, or younger than Settle, is read again after that wait.
func (o Options) loadSettled(ctx context.Context, client *tracecollect.Client, file, id, service string, asOf time.Time) ([]*Trace, error) {
	if file != "" || o.Settle <= 0 {
		return o.load(ctx, client, file, id, service, time.Time{})
	}
	settled := func() error {
		wait := o.Settle - time.Since(asOf)
		if wait <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
			return nil
		}
	}
	if id == "" {
		if err := settled(); err != nil {
			return nil, err
		}
		return o.load(ctx, client, file, id, service, asOf)
	}
	ts, err := o.load(ctx, client, file, id, service, time.Time{})
	if err != nil && !errors.Is(err, tracecollect.ErrNotFound) {
		return nil, err
	}
	var newest time.Time
	for _, t := range ts {
		for _, s := range t.Spans {
			newest = maxTime(newest, s.End)
		}
	}
	if err == nil && time.Since(newest) >= o.Settle {
		return ts, nil
	}
	if err := settled(); err != nil {
		return nil, err
	}
	return o.load(ctx, client, file, id, service, time.Time{})
}

// load reads a side's traces: from file, by id, or the last traces of o.Operation on
// service that started in the o.Lookback before startedBy (zero: now).
func (o Options) load(ctx context.Context, client *tracecollect.Client, file, id, service string, startedBy time.Time) ([]*Trace, error) {
	operation, last := o.Operation, o.Last
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		td, err := tracecollect.UnmarshalTraces(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		ts, err := FromOTLP(td)
		if err != nil {
			return nil, err
		}
		return ts[:min(last, len(ts))], nil
	case id != "":
		td, err := client.Trace(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("trace %s: %w", id, err)
		}
		return FromOTLP(td)
	default:
		if startedBy.IsZero() {
			startedBy = time.Now()
		}
		lookback := o.Lookback
		if lookback <= 0 {
			lookback = tracecollect.DefaultLookback
		}
		tds, err := client.Find(ctx, tracecollect.Query{ServiceName: service, OperationName: operation, NumTraces: last,
			StartMin: startedBy.Add(-lookback), StartMax: startedBy})
		if errors.Is(err, tracecollect.ErrNotFound) {
			return nil, fmt.Errorf("no trace of %q on service %q in the collector at %s in the last %s (--lookback)", operation, service, client.BaseURL, lookback)
		}
		if err != nil {
			return nil, err
		}
		var out []*Trace
		for _, td := range tds {
			ts, err := FromOTLP(td)
			if err != nil {
				return nil, err
			}
			out = append(out, ts...)
		}
		return out, nil
	}
}
