package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/mitosis-dev/mitosis/platform/advise"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// ExportTraces keeps every trace of each side's window (every endpoint, not only the
// checkouts CollectTraces compares; at most tracecollect.MaxSearchDepth each) in dir, as
// advise.TraceFile(arch), with the manifest advise.ManifestFile beside them: what `mitosis
// advise` reads to build the call graph without a collector. A side without a window takes
// the last minute. A side the collector has nothing of is said in the manifest; only a file
// that cannot be written is an error. A side whose window src.Kept holds (read as its step
// ended, before the collector's bounded store dropped it) is taken from there.
func ExportTraces(ctx context.Context, src TraceSource, dir string) (*advise.Manifest, error) {
	out := &advise.Manifest{Collector: src.Collector, Rate: src.Rate, Sides: []advise.ManifestSide{}}
	if src.Collector == "" {
		out.Note = "no trace collector was given"
		return out, writeManifest(dir, out)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	client := &tracecollect.Client{BaseURL: src.Collector}
	for _, side := range src.Sides {
		s := advise.ManifestSide{Arch: side.Label, From: side.From, To: side.To}
		if w, ok := src.Kept.window(side.Label, src.Rate); ok {
			if err := keepWindow(&s, w, dir); err != nil {
				return out, err
			}
			out.Sides = append(out.Sides, s)
			continue
		}
		if s.To.IsZero() {
			s.To = time.Now()
			s.From = s.To.Add(-time.Minute)
		}
		td, err := advise.FindWindow(ctx, client, side.Label, s.From, s.To)
		switch {
		case errors.Is(err, tracecollect.ErrNotFound):
			s.Missing = "the collector holds no trace of this architecture in the window"
		case err != nil:
			s.Missing = err.Error()
		default:
			s.Traces = len(tracecollect.SplitTraces(td))
			s.File = advise.TraceFile(side.Label)
			if err := advise.WriteTraces(filepath.Join(dir, s.File), td); err != nil {
				return out, err
			}
		}
		out.Sides = append(out.Sides, s)
	}
	return out, writeManifest(dir, out)
}

// keepWindow puts a window the TraceKeeper read as its step ended into dir as s's file.
func keepWindow(s *advise.ManifestSide, w keptWindow, dir string) error {
	switch {
	case errors.Is(w.err, tracecollect.ErrNotFound):
		s.Missing = "the collector held no trace of this architecture in the window"
		return nil
	case w.err != nil:
		s.Missing = w.err.Error()
		return nil
	}
	b, err := os.ReadFile(w.path)
	if err != nil {
		return err
	}
	s.Traces, s.File = w.traces, advise.TraceFile(s.Arch)
	return os.WriteFile(filepath.Join(dir, s.File), b, 0o644)
}

func writeManifest(dir string, m *advise.Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, advise.ManifestFile), append(b, '\n'), 0o644)
}
