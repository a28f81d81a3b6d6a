package advise

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// The traces of a run read from a collector (its query API, for the run's windows) give the
// graph its files give: every trace of each architecture's window, none of the other's.
func TestTracesFromACollector(t *testing.T) {
	col, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = col.Close(context.Background()) })
	for _, arch := range []string{Monolith, Services} {
		f, err := os.Open(filepath.Join(fixtureRun, TraceFile(arch)))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		td, err := tracecollect.UnmarshalTraces(b)
		if err != nil {
			t.Fatal(err)
		}
		if rejected := col.Store().Add(td.GetResourceSpans()); rejected != 0 {
			t.Fatalf("%s: %d spans rejected", arch, rejected)
		}
	}
	fromFiles, err := ReadRun(fixtureRun, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	fromCollector, err := ReadRun(fixtureRun, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := FetchTraces(t.Context(), "http://"+col.QueryAddr(), fromCollector); err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{Monolith, Services} {
		a, err := BuildGraph(arch, fromFiles.Traces[arch])
		if err != nil {
			t.Fatal(err)
		}
		b, err := BuildGraph(arch, fromCollector.Traces[arch])
		if err != nil {
			t.Fatal(err)
		}
		if a.Traces != b.Traces || len(a.Mix()) != len(b.Mix()) {
			t.Fatalf("%s: %d traces and %d edges from files, %d and %d from the collector", arch, a.Traces, len(a.Mix()), b.Traces, len(b.Mix()))
		}
		for i, e := range a.Mix() {
			if f := b.Mix()[i]; f.Key() != e.Key() || f.Calls != e.Calls || f.HopMS != e.HopMS {
				t.Errorf("%s: %+v from files, %+v from the collector", arch, e, f)
			}
		}
	}
	if err := FetchTraces(t.Context(), "http://127.0.0.1:1", fromCollector); err == nil {
		t.Error("no collector: no error")
	}
}
