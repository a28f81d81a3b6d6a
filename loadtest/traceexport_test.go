package loadtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mitosis-dev/mitosis/platform/advise"
)

// A run keeps every trace of each architecture's window, of every endpoint, in its folder,
// each architecture's own (by mitosis.architecture) in its own file; the manifest says
// which, and why a side has none. advise reads them back.
func TestExportTracesKeepsEachArchitecturesWindow(t *testing.T) {
	col := startCollector(t)
	base := time.Now().Add(-10 * time.Second)
	col.Store().Add(edgeTrace(1, "monolith", "monolith", base, false))
	col.Store().Add(edgeTrace(2, "monolith", "monolith", base.Add(time.Second), false))
	col.Store().Add(edgeTrace(3, "monolith", "monolith", base.Add(5*time.Second), false)) // after its window
	col.Store().Add(edgeTrace(4, "services", "gateway", base.Add(3*time.Second), false))
	col.Store().Add(edgeTrace(5, "hybrid", "gateway", base.Add(3*time.Second), true)) // in the services' window, not theirs

	dir := t.TempDir()
	src := TraceSource{Collector: "http://" + col.QueryAddr(), Rate: 25, Sides: []TraceSideSource{
		{Label: "monolith", From: base.Add(-time.Millisecond), To: base.Add(2 * time.Second)},
		{Label: "services", From: base.Add(2 * time.Second), To: base.Add(4 * time.Second)},
		{Label: "split", From: base, To: base.Add(4 * time.Second)},
	}}
	m, err := ExportTraces(context.Background(), src, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, advise.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk advise.Manifest
	if err := json.Unmarshal(b, &onDisk); err != nil || onDisk.Rate != 25 || len(onDisk.Sides) != 3 {
		t.Fatalf("manifest %s: %v", b, err)
	}
	for i, want := range []struct {
		arch   string
		traces int
	}{{"monolith", 2}, {"services", 1}, {"split", 0}} {
		s := m.Sides[i]
		if s.Arch != want.arch || s.Traces != want.traces {
			t.Errorf("side %d: %+v, want %s with %d traces", i, s, want.arch, want.traces)
		}
		if want.traces == 0 {
			if s.File != "" || s.Missing == "" {
				t.Errorf("%s: file %q, missing %q: want no file and why", s.Arch, s.File, s.Missing)
			}
			continue
		}
		ts, err := advise.ReadTraces(filepath.Join(dir, s.File))
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != want.traces {
			t.Errorf("%s: read %d traces back, want %d", s.Arch, len(ts), want.traces)
		}
		for _, tr := range ts {
			if got := tr.Root.Attrs["mitosis.architecture"]; got != want.arch {
				t.Errorf("%s's file holds a trace of %s", want.arch, got)
			}
		}
	}

	// No collector: the manifest says so, and nothing else is written.
	dir = t.TempDir()
	if m, err := ExportTraces(context.Background(), TraceSource{Sides: src.Sides}, dir); err != nil || m.Note == "" || len(m.Sides) != 0 {
		t.Errorf("without a collector: %+v, %v", m, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("without a collector, wrote %d files, want the manifest alone", len(entries))
	}
}

// advise reads the latency of each request kind of this load test against the traces of its
// route: every kind has a route there, and a request to that route is of that kind.
func TestEveryKindHasItsRouteInAdvise(t *testing.T) {
	for _, k := range Kinds() {
		route, ok := advise.KindRoutes[string(k)]
		if !ok {
			t.Errorf("kind %s: no route in advise.KindRoutes", k)
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		path = strings.NewReplacer("{id}", "sku-0001", "{user_id}", "ada").Replace(path)
		if k == KindSearch {
			path += "?q=lamp"
		}
		if got := KindOf(&vegeta.Result{Method: method, URL: "http://127.0.0.1:8080" + path}); got != k {
			t.Errorf("%s %s is of kind %s, advise says %s", method, path, got, k)
		}
	}
	if len(advise.KindRoutes) != len(Kinds()) {
		t.Errorf("advise knows %d kinds, the load test %d", len(advise.KindRoutes), len(Kinds()))
	}
}
