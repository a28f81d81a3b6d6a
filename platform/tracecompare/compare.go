package tracecompare

import (
	"errors"
	"math"
	"sort"
	"time"
)

// Side is one architecture's traces in a comparison.
type Side struct {
	Label    string      `json:"label"`
	Traces   []*Analysis `json:"-"`
	Summary  Summary     `json:"summary"`
	Example  *Analysis   `json:"-"` // the trace of median root latency: the one drawn
	TraceIDs []string    `json:"trace_ids"`
}

// Summary is a side's figures: for one trace its values, for several the distribution
// (durations in milliseconds).
type Summary struct {
	N            int                `json:"traces"`
	RootLatency  Stat               `json:"root_latency_ms"`
	EndToEnd     Stat               `json:"end_to_end_ms"`
	EventLag     Stat               `json:"event_lag_ms"`
	CriticalPath map[Category]Stat  `json:"critical_path_ms"` // the request's path, by category
	EndToEndPath map[Category]Stat  `json:"end_to_end_path_ms"`
	Spans        Stat               `json:"spans"`
	SpansByKind  map[string]float64 `json:"spans_by_kind"` // of the example
	Services     Stat               `json:"services_touched"`
	ServiceNames []string           `json:"services"` // of the example
	RemoteHops   Stat               `json:"remote_hops"`
	ContextCalls Stat               `json:"context_calls"`
	Depth        Stat               `json:"depth"`
	FanOut       Stat               `json:"max_fan_out"`
	Errors       Stat               `json:"error_spans"`
	Incomplete   int                `json:"incomplete_traces"` // traces with gaps (Analysis.Gaps)
}

// Stat summarizes one figure over a side's traces.
type Stat struct {
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Comparison is two sides and where they differ.
type Comparison struct {
	A, B Side `json:"-"`
	// Sides repeats A and B for JSON.
	Sides [2]*Side `json:"sides"`
	// Differences are the parts of the request's critical path that differ most between the
	// sides (B minus A, mean per trace, in milliseconds), largest first.
	Differences []Difference `json:"differences"`
}

// Difference is how much more (or less) of the critical path one part takes in B than in A.
type Difference struct {
	Contribution
	AMillis     float64 `json:"a_ms"`
	BMillis     float64 `json:"b_ms"`
	DeltaMillis float64 `json:"delta_ms"`
}

// maxDifferences bounds the list of differences.
const maxDifferences = 8

// Compare analyzes two sets of traces (one trace each, or several) labelled labelA and
// labelB.
func Compare(labelA string, a []*Trace, labelB string, b []*Trace) (*Comparison, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, errors.New("compare: each side needs at least one trace")
	}
	c := &Comparison{A: side(labelA, a), B: side(labelB, b)}
	c.Sides = [2]*Side{&c.A, &c.B}
	ca, cb := meanContributions(c.A.Traces), meanContributions(c.B.Traces)
	keys := map[Contribution]bool{}
	for k := range ca {
		keys[k] = true
	}
	for k := range cb {
		keys[k] = true
	}
	for k := range keys {
		d := Difference{Contribution: k, AMillis: ms(ca[k]), BMillis: ms(cb[k])}
		d.DeltaMillis = d.BMillis - d.AMillis
		c.Differences = append(c.Differences, d)
	}
	sort.Slice(c.Differences, func(i, j int) bool {
		di, dj := math.Abs(c.Differences[i].DeltaMillis), math.Abs(c.Differences[j].DeltaMillis)
		if di != dj {
			return di > dj
		}
		return c.Differences[i].Span < c.Differences[j].Span
	})
	if len(c.Differences) > maxDifferences {
		c.Differences = c.Differences[:maxDifferences]
	}
	return c, nil
}

func side(label string, traces []*Trace) Side {
	s := Side{Label: label}
	for _, t := range traces {
		s.Traces = append(s.Traces, Analyze(t))
		s.TraceIDs = append(s.TraceIDs, t.ID)
	}
	byLatency := append([]*Analysis(nil), s.Traces...)
	sort.SliceStable(byLatency, func(i, j int) bool { return byLatency[i].RootLatency < byLatency[j].RootLatency })
	s.Example = byLatency[(len(byLatency)-1)/2]

	stat := func(f func(a *Analysis) float64) Stat {
		v := make([]float64, len(s.Traces))
		for i, a := range s.Traces {
			v[i] = f(a)
		}
		return newStat(v)
	}
	sum := Summary{
		N:            len(s.Traces),
		RootLatency:  stat(func(a *Analysis) float64 { return ms(a.RootLatency) }),
		EndToEnd:     stat(func(a *Analysis) float64 { return ms(a.EndToEnd) }),
		EventLag:     stat(func(a *Analysis) float64 { return ms(a.EventLag) }),
		CriticalPath: map[Category]Stat{},
		EndToEndPath: map[Category]Stat{},
		Spans:        stat(func(a *Analysis) float64 { return float64(a.Spans) }),
		SpansByKind:  map[string]float64{},
		Services:     stat(func(a *Analysis) float64 { return float64(len(a.Services)) }),
		ServiceNames: s.Example.Services,
		RemoteHops:   stat(func(a *Analysis) float64 { return float64(a.RemoteHops) }),
		ContextCalls: stat(func(a *Analysis) float64 { return float64(a.ContextCalls) }),
		Depth:        stat(func(a *Analysis) float64 { return float64(a.Depth) }),
		FanOut:       stat(func(a *Analysis) float64 { return float64(a.FanOut) }),
		Errors:       stat(func(a *Analysis) float64 { return float64(a.Errors) }),
	}
	for _, cat := range Categories() {
		sum.CriticalPath[cat] = stat(func(a *Analysis) float64 { return ms(a.Request.Breakdown[cat]) })
		sum.EndToEndPath[cat] = stat(func(a *Analysis) float64 { return ms(a.Full.Breakdown[cat]) })
	}
	for _, a := range s.Traces {
		if len(a.Gaps) > 0 {
			sum.Incomplete++
		}
	}
	for k, n := range s.Example.SpansByKind {
		sum.SpansByKind[k] = float64(n)
	}
	s.Summary = sum
	return s
}

// meanContributions is the mean time per trace of each part of the request's path.
func meanContributions(as []*Analysis) map[Contribution]time.Duration {
	out := map[Contribution]time.Duration{}
	for _, a := range as {
		for k, d := range a.Request.Contributions() {
			out[k] += d
		}
	}
	for k := range out {
		out[k] /= time.Duration(len(as))
	}
	return out
}

func newStat(v []float64) Stat {
	sort.Float64s(v)
	return Stat{Median: quantile(v, 0.5), P90: quantile(v, 0.9), Min: v[0], Max: v[len(v)-1]}
}

// quantile of sorted v, by linear interpolation between the closest ranks.
func quantile(v []float64, q float64) float64 {
	if len(v) == 1 {
		return v[0]
	}
	pos := q * float64(len(v)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(v)-1)
	return v[lo] + (v[hi]-v[lo])*(pos-float64(lo))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
