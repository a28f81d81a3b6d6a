package loadtest

import (
	"maps"
	"slices"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Histogram bounds: microseconds from 1 µs to 2 minutes, 3 significant digits (a recorded
// latency is within 0.1% of the truth).
const (
	histLowest  = 1
	histHighest = int64(2 * time.Minute / time.Microsecond)
	histDigits  = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histLowest, histHighest, histDigits) }

// Recorder collects the results of one step (or several, merged): latency histograms in
// total and by kind, outcomes, and when the requests were sent.
//
// Latency is measured from the time the request was scheduled by the constant-rate pacer,
// not from when a worker got round to sending it: a generator that falls behind adds its
// delay to the latency instead of hiding it (coordinated omission). Lag is that delay.
type Recorder struct {
	all     *hdrhistogram.Histogram
	byKind  map[Kind]*hdrhistogram.Histogram
	kindN   map[Kind]int64
	kindErr map[Kind]int64
	errors  map[string]int64
	count   int64
	ok      int64
	maxLag  time.Duration
	first   time.Time // the earliest scheduled time
	last    time.Time // the latest end of a response
	elapsed time.Duration
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{all: newHist(), byKind: map[Kind]*hdrhistogram.Histogram{}, kindN: map[Kind]int64{},
		kindErr: map[Kind]int64{}, errors: map[string]int64{}}
}

// Add records one result, scheduled at the given time.
func (r *Recorder) Add(res *vegeta.Result, scheduled time.Time) {
	kind, errKind := Outcome(res)
	lag := max(res.Timestamp.Sub(scheduled), 0)
	lat := res.Latency + lag
	us := max(lat.Microseconds(), histLowest)
	us = min(us, histHighest)
	_ = r.all.RecordValue(us) // within bounds by construction
	h := r.byKind[kind]
	if h == nil {
		h = newHist()
		r.byKind[kind] = h
	}
	_ = h.RecordValue(us)
	r.count++
	r.kindN[kind]++
	if errKind == "" {
		r.ok++
	} else {
		r.errors[errKind]++
		r.kindErr[kind]++
	}
	r.maxLag = max(r.maxLag, lag)
	if r.first.IsZero() || scheduled.Before(r.first) {
		r.first = scheduled
	}
	if end := res.Timestamp.Add(res.Latency); end.After(r.last) {
		r.last = end
	}
}

// Merge adds o's results to r (steps of the same rate in different repeats).
func (r *Recorder) Merge(o *Recorder) {
	r.all.Merge(o.all)
	for k, h := range o.byKind {
		if r.byKind[k] == nil {
			r.byKind[k] = newHist()
		}
		r.byKind[k].Merge(h)
	}
	for k, n := range o.kindN {
		r.kindN[k] += n
	}
	for k, n := range o.kindErr {
		r.kindErr[k] += n
	}
	for k, n := range o.errors {
		r.errors[k] += n
	}
	r.count += o.count
	r.ok += o.ok
	r.maxLag = max(r.maxLag, o.maxLag)
	r.elapsed += o.span()
}

// span is the time from the first scheduled request to the last response.
func (r *Recorder) span() time.Duration {
	if r.elapsed > 0 {
		return r.elapsed
	}
	if r.first.IsZero() {
		return 0
	}
	return r.last.Sub(r.first)
}

// Latency is a distribution's summary, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000,
	}
}

// KindStats is one kind of request's share of a step.
type KindStats struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Latency  Latency `json:"latency_ms"`
}

// Traffic is what a step's requests saw.
type Traffic struct {
	Requests  int64              `json:"requests"`
	OK        int64              `json:"ok"`
	Achieved  float64            `json:"achieved_rps"` // ok responses per second of the step
	ErrorRate float64            `json:"error_rate"`   // errors / requests
	Errors    map[string]int64   `json:"errors"`       // by kind: "http 503", "timeout", ...
	Latency   Latency            `json:"latency_ms"`   // from the scheduled send time
	ByKind    map[Kind]KindStats `json:"by_kind"`
	MaxLagMS  float64            `json:"max_send_lag_ms"` // the generator's worst delay behind schedule
}

// Traffic summarizes the recorder; seconds is the step's length for the achieved rate
// (0: the span from the first scheduled request to the last response).
func (r *Recorder) Traffic(seconds float64) Traffic {
	if seconds <= 0 {
		seconds = r.span().Seconds()
	}
	t := Traffic{Requests: r.count, OK: r.ok, Errors: maps.Clone(r.errors), Latency: summarize(r.all),
		ByKind: map[Kind]KindStats{}, MaxLagMS: float64(r.maxLag.Microseconds()) / 1000}
	if seconds > 0 {
		t.Achieved = float64(r.ok) / seconds
	}
	if r.count > 0 {
		t.ErrorRate = float64(r.count-r.ok) / float64(r.count)
	}
	for _, k := range slices.Sorted(maps.Keys(r.byKind)) {
		t.ByKind[k] = KindStats{Requests: r.kindN[k], Errors: r.kindErr[k], Latency: summarize(r.byKind[k])}
	}
	return t
}
